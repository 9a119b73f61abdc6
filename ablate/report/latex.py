"""The report's LaTeX tables: a paper table that fits a column (summary.tex) and the full table (summary-full.tex),
each followed in a tuned study by its table at each variant's own best.

Both are booktabs tabulars to `\\input` inside a table environment (the preamble needs `\\usepackage{booktabs}`, said
in each file's first lines). Numbers carry math minus signs ($-$, not a hyphen); a cell with an interval or a
parenthesis is stacked on two lines, so a column is as wide as a number, not as a number and its interval.
"""

from __future__ import annotations

import re
from typing import Sequence

import pandas as pd

PAPER_COLUMNS = ("variant", "chosen", "mean ± std", "Δ vs baseline", "p Holm", "verdict", "verdict changed", "params", "trainable")
"""The paper table's columns, found in the display table by these words (the mean's and Δ's headers name the metric
and the interval; trainable is there only when not everything trains; chosen and verdict changed only in a tuned
study's table at each variant's own best): what a reader of a paper needs."""

WORDS = ("variant", "chosen", "verdict", "verdict changed")
"""The columns of words, set left; every other column holds numbers, set right."""

_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
            "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}
_SYMBOLS = {"±": r"$\pm$", "Δ": r"$\Delta$", "α": r"$\alpha$", "−": "$-$", "–": "--", "×": r"$\times$", "<": r"$<$",
            ">": r"$>$", "→": r"$\to$"}
_SIGN = re.compile(r"(?<![\w.])([-+])(?=[\d.])")  # a number's sign: not a hyphen inside a word or a name like 1e-05
_BREAKS = re.compile(r" (?=-> )|(?<=,) (?=[\w.]+=)|(?<=no clear) (?=difference)|(?<=^verdict) (?=changed$)")  # each:
# a change's two verdicts, a chosen point's settings, the longest verdict's words, the longest header's
_UNDER = re.compile(r" (?=[\[(±])")  # the first only: what stands under a number
_GROUP = re.compile(r"(^|, ?)([a-z_]+)\.(?=(\w+)=)")  # a key's group: model.depth=3 -> depth=3


def _text(text: str) -> str:
    """One line of a cell in LaTeX: special characters escaped, signs and symbols in math."""
    escaped = "".join(_SPECIAL.get(character, character) for character in text.replace("->", "→"))
    signed = _SIGN.sub(lambda sign: f"${sign.group(1)}$", escaped)
    return "".join(_SYMBOLS.get(character, character) for character in signed)


def _cell(value: object, align: str) -> str:
    """A cell stacked on lines, aligned like its column: each side of a change (`better -> worse`) and each setting of a
    chosen point (`lr=0.01, weight_decay=0`) on a line of its own, `no clear` over `difference` (and `verdict` over
    `changed`), a number over its interval (` [`), its parenthesis (` (`) or its spread (` ±`)."""
    lines = [line for piece in _BREAKS.split(str(value)) for line in _UNDER.split(piece, maxsplit=1)]
    if len(lines) == 1:
        return _text(lines[0])
    stack = r"\\{}".join(map(_text, lines))  # `\\{}`: a `[` after `\\` would be read as a length
    return rf"\begin{{tabular}}[t]{{@{{}}{align}@{{}}}}{stack}\end{{tabular}}"


def tabular(table: pd.DataFrame, comments: Sequence[str]) -> str:
    """A booktabs tabular of a display table: words (variant, verdict) left, numbers right; `comments` as % lines above."""
    aligns = ["l" if column in WORDS else "r" for column in table.columns]
    rows = [" & ".join(_cell(value, align) for value, align in zip(row, aligns)) + r" \\" for row in
            [list(table.columns), *table.itertuples(index=False)]]
    return "\n".join([*(f"% {line}" for line in comments), r"\setlength{\tabcolsep}{4pt}% inside the table's group",
                      rf"\begin{{tabular}}{{@{{}}{''.join(aligns)}@{{}}}}", r"\toprule",
                      rows[0], r"\midrule", *rows[1:], r"\bottomrule", r"\end{tabular}", ""])


def stacked(tabulars: Sequence[str]) -> str:
    """Tabulars one under the other, as one `\\input` inside one table environment."""
    return "\\par\\medskip\n".join(tabulars)


def full_tables(table: pd.DataFrame, comments: Sequence[str]) -> str:
    """Every column of a display table as two tabulars, one under the other, each a landscape page wide at \\footnotesize:
    the comparisons (to the verdict, and whether it changed), then what the study could detect and what each variant cost."""
    headers = [_interval_name(c) for c in table.columns]
    named = table.set_axis(headers, axis=1)
    after = [c for c in headers[headers.index("verdict") + 1:] if c != "verdict changed"]
    later = [c for c in headers if c.startswith(("MDE", "g ", "TOST", "seeds needed"))] + after
    first = [c for c in headers if c not in later]
    return stacked([tabular(named[first], comments), tabular(named[["variant", *later]], [])])


def _interval_name(header: str) -> str:
    """A header's interval named short: `Δ vs baseline [Holm-adjusted 95% CI]` -> `Δ [95% CI, Holm]`."""
    return re.sub(r" \[Holm-adjusted (.*)\]", r" [\1, Holm]", header).replace("Δ vs baseline", "Δ")


def paper_table(table: pd.DataFrame, metric_label: str) -> pd.DataFrame:
    """The columns of a display table that PAPER_COLUMNS name, in its order, with short headers (Δ's interval named
    as in the display table), keys without their group where that leaves them apart, and verdicts without the seeds
    an open comparison needs, so the table fits a column."""
    kept = [c for c in table.columns if any(c == w or c.startswith(f"{w} ") or c.endswith(f" {w}") for w in PAPER_COLUMNS)]
    short = {c: metric_label if c.endswith(" mean ± std") else _interval_name(c) for c in kept}  # its cells say ±
    verdicts = table["verdict"].str.replace(r" \(needs .* seeds\)$", "", regex=True)  # summary-full.tex says how many
    settings = {c: _without_groups(table[c]) for c in ("variant", "chosen") if c in kept}
    return table[kept].assign(verdict=verdicts, **settings).rename(columns=short)


def _without_groups(names: pd.Series) -> pd.Series:
    """Settings as `model.depth=3,train.lr=0.1` with each key's group left off, unless two keys of the column would then
    share a name (each keeps its group)."""
    keys = {(found[2], found[3]) for name in names for found in _GROUP.finditer(name)}
    return names if len({key for _, key in keys}) < len(keys) else names.str.replace(_GROUP, r"\1", regex=True)
