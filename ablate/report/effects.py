"""Effects of a two-level design, as pure functions: which stored runs form one, what is aliased, and the OLS fit.

A study is read as a two-level design when its variants change at least two keys between them, some variant
changes several at once, every changed key took exactly two values, and the main effects are estimable from the
design points that have results. Each key is coded -1 at its reference value (the one variants that leave it
alone keep) and +1 at the other. An effect is the change in the mean response from -1 to +1 (twice the OLS
coefficient), fitted on every finished seed with the main effects and the two-factor interactions that the
points can tell apart; aliased terms (equal up to sign over the points) are fitted once and named together.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from ablate.config import format_value
from ablate.report.stats import ALPHA, holm_confidence, holm_levels
from ablate.study.designs import resolution
from ablate.study.variants import keys_of

ALIAS_ORDER = 3  # aliases are named up to three-factor interactions; longer words are left out of the text
ROMAN = {3: "III", 4: "IV", 5: "V", 6: "VI", 7: "VII", 8: "VIII"}


@dataclass(frozen=True)
class EffectsSection:
    """A two-level design's effects as a report shows them: a title, the table (cells as displayed) and what it means;
    summary.md and the console take its markdown, the page its table."""

    title: str
    table: pd.DataFrame
    note: str

    def markdown_table(self) -> str:
        """The table in markdown, every cell as displayed (`1.000` stays `1.000`, not a number tabulate reformats)."""
        return self.table.to_markdown(index=False, disable_numparse=True)

    def markdown(self) -> str:
        """The section as summary.md holds it."""
        return f"## {self.title}\n\n{self.markdown_table()}\n\n{self.note}\n"


@dataclass(frozen=True)
class TwoLevelRuns:
    """The finished runs of a two-level study: factor keys, their (reference, other) values as written, and one
    row per run with each factor coded -1/+1, the seed and the response."""

    factors: tuple[str, ...]
    levels: dict[str, tuple[str, str]]
    coded: pd.DataFrame


@dataclass(frozen=True)
class EffectsFit:
    """Effects with Holm-adjusted 95 % CIs (`_holm_intervals`), p-values and Holm-adjusted p-values; the design in words; the residual degrees of freedom."""

    design: str
    effects: pd.DataFrame
    residual_df: int


def two_level_runs(runs: pd.DataFrame, metric: str, scale: float = 1.0) -> Optional[TwoLevelRuns]:
    """The study's finished runs as a two-level design (response = metric × scale), or None when they are not one."""
    ok = runs[runs["status"] == "ok"]
    changed = [keys_of(variant) for variant in ok["variant"]]
    factors = tuple(sorted({key for keys in changed for key in keys}))
    if len(factors) < 2 or max(map(len, changed)) < 2:
        return None
    values = {key: ok[f"cfg.{key}"].map(format_value) for key in factors}
    if any(column.nunique() != 2 for column in values.values()):
        return None
    levels = {}
    for key, column in values.items():
        kept = column[[key not in keys for keys in changed]]
        reference = kept.iloc[0] if len(kept) else sorted(column.unique())[0]
        levels[key] = (reference, next(v for v in column.unique() if v != reference))
    coded = pd.DataFrame({key: np.where(values[key] == levels[key][0], -1.0, 1.0) for key in factors})
    coded = coded.assign(seed=ok["seed"].to_numpy(), response=ok[metric].astype(float).to_numpy() * scale)
    points = coded[list(factors)].drop_duplicates().to_numpy()
    if np.linalg.matrix_rank(np.column_stack([np.ones(len(points)), points])) < len(factors) + 1:
        return None
    return TwoLevelRuns(factors, levels, coded)


def _word(points: np.ndarray, columns: Sequence[int]) -> np.ndarray:
    """The contrast of a word (the product of its factors' columns; all ones for the mean) over the points."""
    return np.prod(points[:, list(columns)], axis=1) if columns else np.ones(len(points))


def _name(factors: Sequence[str], columns: Sequence[int]) -> str:
    return " × ".join(factors[c].removeprefix("model.") for c in columns) if columns else "mean"


def alias_groups(factors: Sequence[str], points: np.ndarray) -> dict[tuple[int, ...], list[str]]:
    """For each word of one or two factors, the other words (up to ALIAS_ORDER factors, and the mean) whose
    contrast over the points is the same (`depth × pool`) or its negative (`−depth × pool`): the points cannot
    tell them apart, so the fitted effect is their sum (or difference)."""
    words = [c for size in range(0, min(ALIAS_ORDER, len(factors)) + 1) for c in itertools.combinations(range(len(factors)), size)]
    contrasts = {word: _word(points, word) for word in words}
    groups = {}
    for word in (w for w in words if 1 <= len(w) <= 2):
        mine = contrasts[word]
        groups[word] = [("" if np.array_equal(contrasts[other], mine) else "−") + _name(factors, other) for other in words
                        if other != word and abs(contrasts[other] @ mine) == len(mine)]
    return groups


def _estimable(points: np.ndarray, candidates: Sequence[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """The candidate terms, in order, that add a direction the points can estimate (an alias of a term kept
    before, or a combination of kept terms, is left out)."""
    kept: list[tuple[int, ...]] = []
    basis = np.ones((len(points), 1))
    for term in candidates:
        trial = np.column_stack([basis, _word(points, term)])
        if np.linalg.matrix_rank(trial) > basis.shape[1]:
            kept, basis = kept + [term], trial
    return kept


def design_name(factors: Sequence[str], points: np.ndarray) -> str:
    """The design in words: `2^4 full factorial` or `2^(4-1) fraction, resolution IV`, or a count of points when
    the points are not a regular fraction (a point without results)."""
    k, m = len(factors), len(points)
    if m == 2 ** k:
        return f"2^{k} full factorial"
    p = k - int(np.log2(m)) if m & (m - 1) == 0 else None
    found = resolution(points) if p is not None else None
    if found is None:
        return f"{m} of the 2^{k} points (not a regular fraction)"
    return f"2^({k}-{p}) fraction, resolution {ROMAN.get(found, found)}"


def _holm_intervals(model, pvalues: np.ndarray, holm: np.ndarray) -> np.ndarray:
    """Each term's coefficient interval at the confidence that matches its Holm-adjusted p (`holm_confidence`, as the
    comparison table's), so it excludes 0 exactly where p Holm < ALPHA."""
    levels = holm_levels(list(pvalues))
    return np.array([model.conf_int(1 - holm_confidence(p, adjusted, level))[index]
                     for index, (p, adjusted, level) in enumerate(zip(pvalues, holm, levels), start=1)])


def fit_effects(design: TwoLevelRuns) -> EffectsFit:
    """OLS of the response on the estimable main effects and two-factor interactions, one observation per seed."""
    from statsmodels.regression.linear_model import OLS  # 0.13 s to import, and only a two-level design needs it

    factors = design.factors
    points = design.coded[list(factors)].drop_duplicates().to_numpy()
    candidates = [(i,) for i in range(len(factors))] + list(itertools.combinations(range(len(factors)), 2))
    terms = _estimable(points, candidates)
    runs = design.coded[list(factors)].to_numpy()
    columns = np.column_stack([np.ones(len(runs))] + [np.prod(runs[:, list(term)], axis=1) for term in terms])
    model = OLS(design.coded["response"].to_numpy(), columns).fit()
    residual_df = int(round(model.df_resid))
    pvalues = np.asarray(model.pvalues) if residual_df > 0 else np.full(len(terms) + 1, np.nan)
    errors = np.asarray(model.bse) if residual_df > 0 else np.full(len(terms) + 1, np.nan)
    holm = multipletests(pvalues[1:], method="holm")[1] if residual_df > 0 else np.full(len(terms), np.nan)
    intervals = _holm_intervals(model, pvalues[1:], holm) if residual_df > 0 else np.full((len(terms), 2), np.nan)
    aliases = alias_groups(factors, points)
    rows = []
    for index, term in enumerate(terms, start=1):
        change = " × ".join(f"{factors[c].removeprefix('model.')} {design.levels[factors[c]][0]}→{design.levels[factors[c]][1]}" for c in term)
        rows.append({"term": _name(factors, term), "order": len(term), "change": change,
                     "effect": 2 * model.params[index], "se": 2 * errors[index], "ci_low": 2 * intervals[index - 1, 0], "ci_high": 2 * intervals[index - 1, 1],
                     "p": pvalues[index], "p_holm": holm[index - 1], "aliases": " = ".join(aliases[term])})
    return EffectsFit(design_name(factors, points), pd.DataFrame(rows), residual_df)


def interaction_means(design: TwoLevelRuns) -> pd.DataFrame:
    """For every pair of factors, the mean response at each of their four level combinations (averaged over the
    other factors and the seeds), and the other two-factor interactions the pair's is aliased with: what an
    interaction plot draws."""
    frames = []
    points = design.coded[list(design.factors)].drop_duplicates().to_numpy()
    aliases = alias_groups(design.factors, points)
    for (i, a), (j, b) in itertools.combinations(enumerate(design.factors), 2):
        means = design.coded.groupby([a, b])["response"].mean().reset_index()
        frames.append(pd.DataFrame({
            "x_factor": a, "line_factor": b, "aliases": " = ".join(w for w in aliases[(i, j)] if w.count("×") == 1),
            "x": [design.levels[a][int(code > 0)] for code in means[a]],
            "line": [design.levels[b][int(code > 0)] for code in means[b]],
            "x_code": means[a], "mean": means["response"],
        }))
    return pd.concat(frames, ignore_index=True)


def half_normal_scores(effects: pd.DataFrame) -> pd.DataFrame:
    """|effect| in ascending order beside its half-normal quantile (Daniel's plot), and `noise`: where an effect
    that is only noise would lie, the quantile times the fit's standard error of an effect (NaN without one)."""
    ordered = effects.assign(size=effects["effect"].abs()).sort_values("size").reset_index(drop=True)
    ordered = ordered.assign(quantile=stats.halfnorm.ppf((np.arange(1, len(ordered) + 1) - 0.5) / len(ordered)))
    return ordered.assign(noise=float(ordered["se"].median()) * ordered["quantile"])
