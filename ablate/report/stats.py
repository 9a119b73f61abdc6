"""Statistics of an ablation: each variant's mean and confidence interval, and its difference to the baseline.

Where a variant ran exactly the baseline's seeds, seed s of each drew the same random numbers (batch order, shifts,
subset, initial weights where shapes match: ablate/training/streams.py), so the verdict is a paired t-test on the
per-seed differences, and its interval, MDE, seeds needed, TOST and bootstrap are the paired design's; where the seeds
differ, Welch's t-test (unequal variances) compares the two groups, with a paired t-test over the seeds they share
beside it. Holm's step-down correction adjusts the verdicts' p-values across the study's variants so they hold for
the study as a whole, and each difference's interval is then given at the confidence that matches its Holm-adjusted p
(`holm_confidence`), so it excludes 0 exactly when the verdict says better or worse. Beside the tests, each comparison says what the study could have seen: the minimum
detectable effect (80 % power), Hedges' g with its 95 % CI, an equivalence test (TOST) for a margin the user names,
and how many seeds a study would need. Tests come from scipy and statsmodels.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
from scipy import optimize, stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower, TTestPower
from statsmodels.stats.weightstats import ttost_ind, ttost_paired

ALPHA = 0.05
CONFIDENCE = 0.95
POWER = 0.8
CI_METHODS = ("t", "bootstrap")
BOOTSTRAP_RESAMPLES = 9999
PAIRED, WELCH = "paired", "Welch"  # the test a comparison's verdict reads


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
    mde: Optional[float] = None
    hedges_g: Optional[float] = None
    hedges_g_ci_low: Optional[float] = None
    hedges_g_ci_high: Optional[float] = None
    margin: Optional[float] = None
    p_tost: Optional[float] = None
    p_tost_holm: Optional[float] = None
    seeds_needed: Optional[int] = None
    pooled_std: Optional[float] = None
    test: str = WELCH  # paired where the variant ran exactly the baseline's seeds, else Welch
    p_test: Optional[float] = None  # the p-value of `test`, the one Holm adjusts
    diff_std: Optional[float] = None  # paired: std of the per-seed differences
    correlation: Optional[float] = None  # paired: Pearson's r between seed s of the variant and of the baseline
    ci_method: str = "t"
    ci_confidence: float = CONFIDENCE
    verdict: str = ""
    notes: list[str] = field(default_factory=list)
    # the variant's and baseline's values (per shared seed, in seed order, when paired), for the intervals
    samples: tuple[np.ndarray, np.ndarray] = field(default=(), repr=False)


def _finite(value: float) -> Optional[float]:
    return float(value) if value is not None and math.isfinite(value) else None


def pooled_std(*groups: Sequence[float]) -> Optional[float]:
    """The pooled sample standard deviation of groups of two or more values (None when no group has two)."""
    kept = [np.asarray(g, dtype=float) for g in groups if len(g) >= 2]
    if not kept:
        return None
    return float(np.sqrt(sum((len(g) - 1) * g.var(ddof=1) for g in kept) / sum(len(g) - 1 for g in kept)))


def minimum_detectable_effect(n1: int, n2: int, std: Optional[float], paired: bool = False) -> Optional[float]:
    """The difference (in the metric's unit) a two-sided t-test at ALPHA detects with POWER: two-sample, for groups
    of n1 and n2 values with this pooled std, or paired, for n1 pairs whose differences have this std. Below it,
    "no clear difference" is not evidence of no effect."""
    if std is None or n1 < 2 or n2 < 2:
        return None
    if paired:
        effect = TTestPower().solve_power(effect_size=None, nobs=n1, alpha=ALPHA, power=POWER, alternative="two-sided")
    else:
        effect = TTestIndPower().solve_power(effect_size=None, nobs1=n1, ratio=n2 / n1, alpha=ALPHA, power=POWER, alternative="two-sided")
    return _finite(float(effect) * std)


def seeds_needed(effect: Optional[float], std: Optional[float], alpha: float = ALPHA, paired: bool = False) -> Optional[int]:
    """Seeds per group for a two-sided t-test at alpha to detect a difference `effect` with POWER, given this std:
    two-sample (pooled std), or paired (the std of the per-seed differences, one pair per seed)."""
    if effect is None or std is None or effect == 0:
        return None
    if std == 0:
        return 2
    size = abs(effect) / std
    power = (lambda n: TTestPower().power(effect_size=size, nobs=n, alpha=alpha)) if paired else \
        (lambda n: TTestIndPower().power(effect_size=size, nobs1=n, ratio=1.0, alpha=alpha))
    for n in range(2, 11):  # large effects: the solver does not converge below a few seeds, so count them out
        if power(n) >= POWER:
            return n
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        n = (TTestPower().solve_power(effect_size=size, nobs=None, alpha=alpha, power=POWER) if paired else
             TTestIndPower().solve_power(effect_size=size, nobs1=None, ratio=1.0, alpha=alpha, power=POWER))
    return math.ceil(n) if math.isfinite(n) else None


def tost_power(n: np.ndarray, diff: float, std: float, margin: float, alpha: float, paired: bool = False) -> np.ndarray:
    """Power of TOST (two one-sided t-tests at alpha, n seeds per group) to show |Δ| < margin when the true difference
    is `diff`, with this pooled std (or, paired, this std of the per-seed differences): P(both one-sided tests
    reject) >= P(first) + P(second) - 1, from the noncentral t."""
    n = np.asarray(n, dtype=float)
    df, se = (n - 1, std / np.sqrt(n)) if paired else (2 * n - 2, std * np.sqrt(2 / n))
    critical = stats.t.ppf(1 - alpha, df)
    both = stats.nct.sf(critical, df, (margin + diff) / se) + stats.nct.sf(critical, df, (margin - diff) / se) - 1
    return np.maximum(both, 0.0)


def tost_seeds_needed(diff: float, std: Optional[float], margin: float, alpha: float, most: int = 10_001,
                      paired: bool = False) -> Optional[int]:
    """Seeds per group for TOST at alpha to show equivalence within ±margin with POWER, if the true difference is
    `diff` (`paired`: std is the per-seed differences'); None where |diff| >= margin (equivalence is then false) or
    more than `most` would be needed."""
    if std is None or abs(diff) >= margin:
        return None
    if std == 0:
        return 2
    counts = np.arange(2, most + 1)
    enough = np.nonzero(tost_power(counts, diff, std, margin, alpha, paired) >= POWER)[0]
    return int(counts[enough[0]]) if len(enough) else None


def hedges_g(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> tuple[Optional[float], Optional[float], Optional[float]]:
    """Hedges' g of a against b (pooled-std standardised difference times 1 - 3/(4(n1+n2) - 9)) and its CI (95 % unless
    asked), from inverting the noncentral t distribution of the t statistic (exact for normal data, also for 3 seeds)."""
    n1, n2, std = len(a), len(b), pooled_std(a, b)
    if n1 < 2 or n2 < 2 or not std:
        return None, None, None
    correction = 1 - 3 / (4 * (n1 + n2) - 9)
    scale, df = math.sqrt(1 / n1 + 1 / n2), n1 + n2 - 2
    d = (float(np.mean(a)) - float(np.mean(b))) / std
    t = d / scale

    def noncentrality(quantile: float) -> Optional[float]:
        """The noncentrality at which t is this quantile of the noncentral t distribution (the cdf falls as it
        grows); the bracket widens step by step, as scipy's cdf turns NaN far in the tails."""
        gap = lambda ncp: stats.nct.cdf(t, df, ncp) - quantile  # noqa: E731
        for width in (1.0, 2.0, 4.0, 8.0, 16.0, 32.0):
            low, high = t - width * (1 + abs(t)), t + width * (1 + abs(t))
            if gap(low) > 0 > gap(high):
                return optimize.brentq(gap, low, high, xtol=1e-12)
        return None

    upper, lower = noncentrality((1 - confidence) / 2), noncentrality((1 + confidence) / 2)
    if upper is None or lower is None:
        return correction * d, None, None
    return correction * d, correction * lower * scale, correction * upper * scale


def bootstrap_mean_ci(values: Sequence[float]) -> tuple[Optional[float], Optional[float]]:
    """BCa 95 % interval of the mean, resampling seeds (fixed random state: a report is reproducible)."""
    return _bootstrap((np.asarray(values, dtype=float),), lambda x, axis: x.mean(axis=axis), paired=False)


def bootstrap_diff_ci(a: Sequence[float], b: Sequence[float], paired: bool,
                      confidence: float = CONFIDENCE) -> tuple[Optional[float], Optional[float]]:
    """BCa interval (95 % unless asked) of mean(a) - mean(b), resampling seeds; paired resamples a seed's two values
    together."""
    return _bootstrap((np.asarray(a, dtype=float), np.asarray(b, dtype=float)),
                      lambda x, y, axis: x.mean(axis=axis) - y.mean(axis=axis), paired=paired, confidence=confidence)


def _bootstrap(data: tuple[np.ndarray, ...], statistic: Callable[..., np.ndarray], paired: bool,
               confidence: float = CONFIDENCE) -> tuple[Optional[float], Optional[float]]:
    """scipy's BCa interval of a vectorized statistic, or None at either end where it is undefined."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # too few distinct resamples: scipy warns and returns NaN, shown as '–'
        result = stats.bootstrap(data, statistic, paired=paired, vectorized=True, confidence_level=confidence,
                                 n_resamples=BOOTSTRAP_RESAMPLES, method="BCa", random_state=np.random.default_rng(0))
    return _finite(result.confidence_interval.low), _finite(result.confidence_interval.high)


def describe(values: Sequence[float], ci: str = "t") -> Comparison:
    """n, mean, sample std and the 95% confidence interval of the mean (Student t, or BCa bootstrap); n >= 2 for the last two."""
    sample = np.asarray(values, dtype=float)
    result = Comparison(n=len(sample), ci_method=ci)
    if len(sample) == 0:
        return result
    result.mean = float(sample.mean())
    if len(sample) < 2:
        result.notes.append("one seed: no std, CI or test")
        return result
    result.std = float(sample.std(ddof=1))
    if result.std == 0:
        result.ci_low = result.ci_high = result.mean
    elif ci == "bootstrap":
        result.ci_low, result.ci_high = bootstrap_mean_ci(sample)
    else:
        interval = stats.ttest_1samp(sample, 0.0).confidence_interval(CONFIDENCE)
        result.ci_low, result.ci_high = float(interval.low), float(interval.high)
    return result


def compare(variant: dict[int, float], baseline: dict[int, float], margin: Optional[float] = None, ci: str = "t",
            pair: bool = True) -> Comparison:
    """Describe a variant's per-seed values and test them against the baseline's (seed -> value): paired where the
    variant ran exactly the baseline's seeds, else Welch (always Welch with `pair=False`, to set the designs side by
    side); with a margin (in the metric's unit), also test equivalence within ±margin, the same way."""
    result = describe(list(variant.values()), ci)
    result.margin = margin
    if result.n < 2 or len(baseline) < 2:
        if result.n >= 2:
            result.notes.append("baseline has fewer than 2 seeds: no test")
        return result
    a, b = np.asarray(list(variant.values())), np.asarray(list(baseline.values()))
    result.diff = float(a.mean() - b.mean())
    shared = sorted(set(variant) & set(baseline))
    mine, theirs = np.asarray([variant[s] for s in shared]), np.asarray([baseline[s] for s in shared])
    paired = pair and set(variant) == set(baseline)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # identical values: scipy warns and returns NaN
        welch = stats.ttest_ind(a, b, equal_var=False)
        result.p_welch = _finite(welch.pvalue)
        result.n_paired = len(shared)
        pairs = stats.ttest_rel(mine, theirs) if len(shared) >= 2 else None
        result.p_paired = _finite(pairs.pvalue) if pairs else None
        if margin is not None:
            result.p_tost = _finite((ttost_paired(mine, theirs, -margin, margin) if paired else
                                     ttost_ind(a, b, -margin, margin, usevar="unequal"))[0])
        if paired:
            result.test, result.p_test, result.diff_std = PAIRED, result.p_paired, float(np.std(mine - theirs, ddof=1))
            result.correlation = _finite(stats.pearsonr(mine, theirs).statistic) if len(shared) >= 3 else None
        else:
            result.p_test = result.p_welch
    result.samples = (mine, theirs) if paired else (a, b)
    set_intervals(result, CONFIDENCE)
    std = pooled_std(a, b)
    result.mde = minimum_detectable_effect(len(a), len(b), result.diff_std if paired else std, paired)
    result.pooled_std = std
    if result.p_test is None:
        result.notes.append("no variance in either group: no test" if not paired else "the per-seed differences do not vary: no test")
    return result


def set_intervals(comparison: Comparison, confidence: float) -> None:
    """A compared variant's intervals at this confidence: of Δ in the design of the test the verdict reads (paired
    t over the seeds' differences, or Welch's; with `--ci bootstrap` the BCa bootstrap resampling seeds as pairs or
    the groups apart, to match) and of Hedges' g; none for a comparison given without its samples."""
    if not comparison.samples:
        return
    a, b = comparison.samples
    paired = comparison.test == PAIRED
    comparison.ci_confidence = confidence
    if comparison.ci_method == "bootstrap":
        comparison.diff_ci_low, comparison.diff_ci_high = bootstrap_diff_ci(a, b, paired=paired, confidence=confidence)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # identical values: scipy warns and returns NaN
            test = stats.ttest_rel(a, b) if paired else stats.ttest_ind(a, b, equal_var=False)
            interval = test.confidence_interval(confidence)
        comparison.diff_ci_low, comparison.diff_ci_high = _finite(interval.low), _finite(interval.high)
    comparison.hedges_g, comparison.hedges_g_ci_low, comparison.hedges_g_ci_high = hedges_g(a, b, confidence)


def holm_confidence(p: float, p_holm: float, level: float) -> float:
    """The confidence at which the verdict test's interval excludes 0 exactly when Holm rejects at ALPHA:
    1 - ALPHA x p / p_holm (1 - its step's level ALPHA / (m - rank) unless an earlier step raised p_holm; 95 % for a
    single comparison), or 1 - its step's level where p_holm is 0."""
    return 1 - (ALPHA * p / p_holm if p_holm > 0 else level)


def design_std(comparison: Comparison) -> Optional[float]:
    """The std the power of a comparison's test depends on: its per-seed differences' (paired) or the pooled one."""
    return comparison.diff_std if comparison.test == PAIRED else comparison.pooled_std


def _holm(pvalues: list[float]) -> list[float]:
    return [float(p) for p in multipletests(pvalues, alpha=ALPHA, method="holm")[1]] if pvalues else []


def holm_levels(pvalues: list[float]) -> list[float]:
    """The level Holm's step-down tests each p-value at: alpha / (m - its rank), rank 0 for the smallest."""
    ranks = np.argsort(np.argsort(pvalues, kind="stable"), kind="stable")
    return [ALPHA / (len(pvalues) - int(rank)) for rank in ranks]


def adjust_holm(comparisons: Sequence[Comparison], higher_is_better: bool = True) -> None:
    """Holm-adjust the p-values of the tests the verdicts read (paired or Welch, and TOST) of a study's variants in
    place, give each difference's intervals at the matching confidence (`holm_confidence`) and set each verdict at ALPHA: better or worse; with a margin, equivalent or inconclusive. An undecided
    comparison gets the seeds per group the test that would decide it needs for 80 % power at its Holm level (TOST
    within the margin if the observed Δ lies inside it, else the t-test for the observed Δ), in its design (paired
    or not); none where that is no more than the seeds it already has."""
    tested = [c for c in comparisons if c.p_test is not None]
    for comparison, p, level in zip(tested, _holm([c.p_test for c in tested]), holm_levels([c.p_test for c in tested])):
        comparison.p_holm = p
        comparison.seeds_needed = seeds_needed(comparison.diff, design_std(comparison), level, comparison.test == PAIRED)
        set_intervals(comparison, holm_confidence(comparison.p_test, p, level))
    tost = [c for c in comparisons if c.p_tost is not None]
    for comparison, p, level in zip(tost, _holm([c.p_tost for c in tost]), holm_levels([c.p_tost for c in tost])):
        comparison.p_tost_holm = p
        if abs(comparison.diff) < comparison.margin:
            comparison.seeds_needed = tost_seeds_needed(comparison.diff, design_std(comparison), comparison.margin, level,
                                                        paired=comparison.test == PAIRED)
    for comparison in comparisons:
        if (comparison.seeds_needed or 0) <= comparison.n:
            comparison.seeds_needed = None
        comparison.verdict = _verdict(comparison, higher_is_better)
        if comparison.verdict in ("better", "worse", "equivalent"):
            comparison.seeds_needed = None
        if comparison.ci_method == "bootstrap" and comparison.diff_ci_low is not None and comparison.p_holm is not None:
            if (comparison.diff_ci_low > 0 or comparison.diff_ci_high < 0) != (comparison.p_holm < ALPHA):
                comparison.notes.append(f"the BCa interval and the {comparison.test} test, which the verdict reads, "
                                        "disagree at this level")
        if comparison.test == PAIRED and comparison.hedges_g_ci_low is not None and comparison.p_holm is not None:
            if (comparison.hedges_g_ci_low > 0 or comparison.hedges_g_ci_high < 0) != (comparison.p_holm < ALPHA):
                comparison.notes.append("g's interval (two groups, pooled std) and the paired test, which the verdict "
                                        "reads, disagree at this level")


def _verdict(comparison: Comparison, higher_is_better: bool) -> str:
    """One comparison's verdict from its adjusted p-values."""
    if comparison.p_holm is None:
        return "not tested"
    if comparison.p_holm < ALPHA:
        return "better" if (comparison.diff > 0) == higher_is_better else "worse"
    if comparison.margin is None:
        return "no clear difference"
    if comparison.p_tost_holm is not None and comparison.p_tost_holm < ALPHA:
        return "equivalent"
    needed = comparison.seeds_needed
    return f"inconclusive (needs {needed:,} seeds)" if needed else "inconclusive"


def study_sensitivity(baseline: Sequence[float], variants: Sequence[Sequence[float]], n: int,
                      effect: Optional[float], paired: Sequence[float] = ()) -> tuple[Optional[float], Optional[int]]:
    """For a typical comparison of the study (the median of each variant's pooled std with the baseline, so one
    unstable variant does not speak for all; or, where every comparison is paired, the median std of their per-seed
    differences, `paired`): the MDE with n seeds per group, and the seeds needed for `effect`."""
    stds = list(paired) or [pooled_std(v, baseline) for v in variants if len(v) >= 2 and len(baseline) >= 2]
    std = float(np.median(stds)) if stds else None
    return minimum_detectable_effect(n, n, std, bool(paired)), seeds_needed(effect, std, paired=bool(paired))
