"""The report of a variance study (+variance=sources): each source's std with its interval, its share of the whole,
and whether the parts add up to the whole, as pure functions of the stored runs (`variance.csv`, the page's section).

Intervals: the chi-square interval of a variance, (n - 1) s² / χ²(1 - α/2, n - 1) .. (n - 1) s² / χ²(α/2, n - 1)
(scipy.stats.chi2), square-rooted for the std; it assumes a source's values are normal. share = the source's
variance / the variance with every stream varied (`all`). The parts are checked against the whole by the ratio
Σ source variances / all's variance, with an F interval whose numerator degrees of freedom are Satterthwaite's for a
sum of variances (scipy.stats.f): 1 inside it means the sources add up to the whole (no interaction shows).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
from scipy import stats

from ablate.config import STREAMS
from ablate.store import results
from ablate.report.metrics import metric as metric_named
from ablate.report.stats import ALPHA
from ablate.study.variance import ALL, source_of
from ablate.study.variants import keys_of

COLUMNS = ("source", "n", "std", "ci_low", "ci_high", "share")
CI_METHOD = f"chi-square interval of the variance ({(1 - ALPHA) * 100:g} %, scipy.stats.chi2)"


def is_variance(runs: pd.DataFrame) -> bool:
    """Whether a study's runs were planned by +variance=sources (their configs list variance.sources)."""
    column = runs.get("cfg.variance.sources")
    return column is not None and any(isinstance(value, (list, tuple)) and len(value) for value in column)


def sources(runs: pd.DataFrame) -> pd.Series:
    """Each run's source (init, order, ..., all; '' for a run no variance variant), from its stored config."""
    return pd.Series([source_of(results.stored_config(Path(folder))) for folder in runs["run_dir"]], index=runs.index, dtype=object)


def std_interval(values: np.ndarray, alpha: float = ALPHA) -> tuple[float, float, float]:
    """(std, low, high): the sample std and its chi-square interval."""
    n = len(values)
    variance = float(np.var(values, ddof=1))
    low = (n - 1) * variance / stats.chi2.ppf(1 - alpha / 2, n - 1)
    high = (n - 1) * variance / stats.chi2.ppf(alpha / 2, n - 1)
    return float(np.sqrt(variance)), float(np.sqrt(low)), float(np.sqrt(high))


def table(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """variance.csv: one row per source (STREAMS' order, then all) with n ok runs, std and its interval (the metric's
    unit) and share of all's variance; a source with fewer than two ok runs has no std."""
    ok = runs[runs["status"] == "ok"].assign(source=sources(runs))
    rows = []
    for source in [*STREAMS, ALL]:
        values = ok.loc[ok["source"] == source, metric].astype(float).to_numpy()
        if source != ALL and not len(values) and source not in set(sources(runs)):
            continue
        std, low, high = std_interval(values) if len(values) >= 2 else (np.nan, np.nan, np.nan)
        rows.append({"source": source, "n": len(values), "std": std, "ci_low": low, "ci_high": high})
    found = pd.DataFrame(rows, columns=COLUMNS[:-1])
    whole = found.loc[found["source"] == ALL, "std"]
    total = float(whole.iloc[0]) ** 2 if len(whole) else np.nan
    return found.assign(share=found["std"] ** 2 / total if total > 0 else np.nan)


@dataclass(frozen=True)
class Additivity:
    """Σ source variances / all's variance with its interval, and the sentence that reads it."""

    ratio: float
    low: float
    high: float
    sentence: str


def additivity(found: pd.DataFrame, alpha: float = ALPHA) -> Optional[Additivity]:
    """Whether the parts explain the whole: the ratio of the sources' summed variance to all's, with its F interval
    (Satterthwaite's degrees of freedom for the sum); None without two sources and all each of two runs or more."""
    parts, whole = found[(found["source"] != ALL) & (found["n"] >= 2)], found[(found["source"] == ALL) & (found["n"] >= 2)]
    if len(parts) < 2 or whole.empty or not whole["std"].iloc[0] > 0:
        return None
    variances, dfs = parts["std"].to_numpy() ** 2, parts["n"].to_numpy() - 1
    total, df_all = float(variances.sum()), int(whole["n"].iloc[0]) - 1
    if total == 0:
        return None
    df_sum = total ** 2 / float(np.sum(variances ** 2 / dfs))
    ratio = total / float(whole["std"].iloc[0]) ** 2
    low, high = ratio / stats.f.ppf(1 - alpha / 2, df_sum, df_all), ratio / stats.f.ppf(alpha / 2, df_sum, df_all)
    if low <= 1 <= high:
        words = "the sources' variances add up to the whole's (1 lies inside the interval): no interaction shows at these seeds"
    elif high < 1:
        words = "the whole varies more than its sources add up to: the streams interact (or a source is missing)"
    else:
        words = "the sources add up to more than the whole: their effects overlap (they interact)"
    sentence = (f"Σ source variance / all's variance = {ratio:.2f} ({(1 - alpha) * 100:g} % CI {low:.2f} to {high:.2f}, "
                f"F interval with Satterthwaite's degrees of freedom); {words}.")
    return Additivity(ratio, low, high, sentence)


def variants(runs: pd.DataFrame) -> dict[str, str]:
    """Each source's variant (its folder under the study), from the runs' stored configs, in variance.csv's order."""
    named = dict(zip(sources(runs), runs["variant"]))
    return {source: named[source] for source in [*STREAMS, ALL] if source in named}


def streams(runs: pd.DataFrame) -> dict[str, str]:
    """Each source's streams in words (`init per seed, order 0`), from its first run's identity: the streams that
    some source varies, each per seed or at the value held."""
    named = variants(runs)
    varied = {key for variant in named.values() for key in keys_of(variant)}
    first = runs.groupby("variant", sort=False)["identity"].first()
    return {source: ", ".join(f"{key.removeprefix('seed_streams.')} {str(value).replace('_', ' ')}"
                              for key, value in first[variant].items() if key in varied)
            for source, variant in named.items()}


def display(found: pd.DataFrame, summary: pd.DataFrame, named: dict[str, str], metric: str) -> pd.DataFrame:
    """The variance study's table for people: each source's n, mean, std and its interval in the metric's display unit,
    its share as a percentage, and its failed, in-progress or missing seeds (`summary`'s problems of its variant)."""
    declared = metric_named(metric)

    def number(value: Any, digits: int = 3) -> str:
        return "–" if pd.isna(value) else f"{value * declared.scale:.{digits}f}"

    by_variant = summary.set_index("variant")
    of = [by_variant.loc[named[source]] if source in named else None for source in found["source"]]
    return pd.DataFrame({"source": found["source"], "n": found["n"],
                         f"{declared.label} mean": [number(row["mean"], 2) if row is not None else "–" for row in of],
                         "std": found["std"].map(number),
                         "95% CI of std": ["–" if pd.isna(lo) else f"{number(lo)} to {number(hi)}" for lo, hi in zip(found["ci_low"], found["ci_high"])],
                         "share of all": found["share"].map(lambda s: "–" if pd.isna(s) else f"{s * 100:.0f} %"),
                         "failed / missing": [row["problems"] if row is not None else "no run" for row in of]})


NO_CHECK = "No check of the parts against the whole: it needs two sources and all, each with two ok runs or more."


INTRO = ("A variance study (+variance=sources): each source of randomness varied alone over the seeds, the other "
         "streams held (at variance.fixed; split at data.subset_seed), then all of them together; there is no baseline. "
         f"std: the sample std of a source's runs, with the {CI_METHOD}; share: its variance / all's variance.")
