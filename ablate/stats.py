"""Statistics of an ablation: each variant's mean and confidence interval, and its difference to the baseline.

Welch's t-test (unequal variances) compares a variant's seeds with the baseline's; Holm's step-down
correction adjusts the p-values across the study's variants so the verdicts hold for the study as a whole.
Where the two share seeds (same data order), a paired t-test is given as well. All tests come from scipy.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests

ALPHA = 0.05
CONFIDENCE = 0.95


@dataclass
class Comparison:
    """One variant against the baseline. Fields stay None where fewer than two seeds make them undefined."""

    n: int
    mean: Optional[float] = None
    std: Optional[float] = None
    ci_low: Optional[float] = None
    ci_high: Optional[float] = None
    diff: Optional[float] = None
    diff_ci_low: Optional[float] = None
    diff_ci_high: Optional[float] = None
    p_welch: Optional[float] = None
    p_holm: Optional[float] = None
    n_paired: int = 0
    p_paired: Optional[float] = None
    verdict: str = ""
    notes: list[str] = field(default_factory=list)


def _finite(value: float) -> Optional[float]:
    return float(value) if value is not None and math.isfinite(value) else None


def describe(values: Sequence[float]) -> Comparison:
    """n, mean, sample std and the Student-t 95% confidence interval of the mean (the latter two need n >= 2)."""
    sample = np.asarray(values, dtype=float)
    result = Comparison(n=len(sample))
    if len(sample) == 0:
        return result
    result.mean = float(sample.mean())
    if len(sample) < 2:
        result.notes.append("one seed: no std, CI or test")
        return result
    result.std = float(sample.std(ddof=1))
    if result.std == 0:
        result.ci_low = result.ci_high = result.mean
    else:
        interval = stats.ttest_1samp(sample, 0.0).confidence_interval(CONFIDENCE)
        result.ci_low, result.ci_high = float(interval.low), float(interval.high)
    return result


def compare(variant: dict[int, float], baseline: dict[int, float]) -> Comparison:
    """Describe a variant's per-seed values and test them against the baseline's (seed -> value)."""
    result = describe(list(variant.values()))
    if result.n < 2 or len(baseline) < 2:
        if result.n >= 2:
            result.notes.append("baseline has fewer than 2 seeds: no test")
        return result
    a, b = np.asarray(list(variant.values())), np.asarray(list(baseline.values()))
    result.diff = float(a.mean() - b.mean())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # identical values: scipy warns and returns NaN
        welch = stats.ttest_ind(a, b, equal_var=False)
        interval = welch.confidence_interval(CONFIDENCE)
        result.p_welch = _finite(welch.pvalue)
        result.diff_ci_low, result.diff_ci_high = _finite(interval.low), _finite(interval.high)
        shared = sorted(set(variant) & set(baseline))
        result.n_paired = len(shared)
        if len(shared) >= 2:
            result.p_paired = _finite(stats.ttest_rel([variant[s] for s in shared], [baseline[s] for s in shared]).pvalue)
    if result.p_welch is None:
        result.notes.append("no variance in either group: no test")
    return result


def adjust_holm(comparisons: Sequence[Comparison], higher_is_better: bool = True) -> None:
    """Holm-adjust the Welch p-values of a study's variants in place and set each verdict at ALPHA."""
    tested = [c for c in comparisons if c.p_welch is not None]
    if tested:
        _, adjusted, _, _ = multipletests([c.p_welch for c in tested], alpha=ALPHA, method="holm")
        for comparison, p in zip(tested, adjusted):
            comparison.p_holm = float(p)
    for comparison in comparisons:
        if comparison.p_holm is None:
            comparison.verdict = "not tested"
        elif comparison.p_holm >= ALPHA:
            comparison.verdict = "no clear difference"
        else:
            improved = (comparison.diff > 0) == higher_is_better
            comparison.verdict = "better" if improved else "worse"
