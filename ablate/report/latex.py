"""The report's LaTeX tables: a paper table that fits a column (summary.tex) and the full table (summary-full.tex).

Both are booktabs tabulars to `\\input` inside a table environment (the preamble needs `\\usepackage{booktabs}`, said
in each file's first lines). Numbers carry math minus signs ($-$, not a hyphen); a cell with an interval or a
parenthesis is stacked on two lines, so a column is as wide as a number, not as a number and its interval.
"""

from __future__ import annotations

import re
from typing import Sequence

import pandas as pd

PAPER_COLUMNS = ("variant", "mean ± std", "Δ vs baseline", "p Holm", "verdict", "params", "trainable")
"""The paper table's columns, found in the display table by these words (the mean's and Δ's headers name the metric
and the interval; trainable is there only when not everything trains): what a reader of a paper needs."""

WORDS = ("variant", "verdict")
"""The columns of words, set left; every other column holds numbers, set right."""

_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
            "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}
_SYMBOLS = {"±": r"$\pm$", "Δ": r"$\Delta$", "α": r"$\alpha$", "−": "$-$", "–": "--", "×": r"$\times$", "<": r"$<$"}
_SIGN = re.compile(r"(?<![\w.])([-+])(?=[\d.])")  # a number's sign: not a hyphen inside a word or a name like 1e-05


def _text(text: str) -> str:
    """One line of a cell in LaTeX: special characters escaped, signs and symbols in math."""
    escaped = "".join(_SPECIAL.get(character, character) for character in text)
    signed = _SIGN.sub(lambda sign: f"${sign.group(1)}$", escaped)
    return "".join(_SYMBOLS.get(character, character) for character in signed)


def _cell(value: object, align: str) -> str:
    """A cell; text with an interval (` [`), a parenthesis (` (`) or a spread (` ±`) stacked on two lines, aligned like
    its column."""
    lines = re.split(r" (?=[\[(±])", str(value), maxsplit=1)
    if len(lines) == 1:
        return _text(lines[0])
    # `\\{}`: a `[` after `\\` would be read as a length
    return rf"\begin{{tabular}}[t]{{@{{}}{align}@{{}}}}{_text(lines[0])}\\{{}}{_text(lines[1])}\end{{tabular}}"


def tabular(table: pd.DataFrame, comments: Sequence[str]) -> str:
    """A booktabs tabular of a display table: words (variant, verdict) left, numbers right; `comments` as % lines above."""
    aligns = ["l" if column in WORDS else "r" for column in table.columns]
    rows = [" & ".join(_cell(value, align) for value, align in zip(row, aligns)) + r" \\" for row in
            [list(table.columns), *table.itertuples(index=False)]]
    return "\n".join([*(f"% {line}" for line in comments), r"\setlength{\tabcolsep}{4pt}% inside the table's group",
                      rf"\begin{{tabular}}{{@{{}}{''.join(aligns)}@{{}}}}", r"\toprule",
                      rows[0], r"\midrule", *rows[1:], r"\bottomrule", r"\end{tabular}", ""])


def full_tables(table: pd.DataFrame, comments: list[str]) -> str:
    """Every column of a display table as two tabulars, one under the other, each a landscape page wide at \\footnotesize:
    the comparisons (to the verdict), then what the study could detect and what each variant cost."""
    headers = [_interval_name(c) for c in table.columns]
    named = table.set_axis(headers, axis=1)
    later = [c for c in headers if c.startswith(("MDE", "g ", "TOST", "seeds needed"))] + headers[headers.index("verdict") + 1:]
    first = [c for c in headers if c not in later]
    return tabular(named[first], comments) + "\\par\\medskip\n" + tabular(named[["variant", *later]], [])


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
    keys = table["variant"].str.replace(r"(^|,)[a-z_]+\.(?=\w+=)", r"\1", regex=True)  # model.depth=3 -> depth=3
    variants = keys if keys.is_unique else table["variant"]  # where two keys share a name, each keeps its group
    return table[kept].assign(verdict=verdicts, variant=variants).rename(columns=short)
