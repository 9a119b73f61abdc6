"""Statistics written out by hand from scipy's distributions, independently of statsmodels and of the project's
code: what tests/test_stats.py and tests/test_report.py compare ablate's numbers with."""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy import optimize, stats


def pooled(a: list[float], b: list[float]) -> float:
    return math.sqrt(((len(a) - 1) * np.var(a, ddof=1) + (len(b) - 1) * np.var(b, ddof=1)) / (len(a) + len(b) - 2))


def power(d: float, n1: int, n2: int, alpha: float = 0.05) -> float:
    """Power of the two-sided two-sample t-test at alpha for a standardised effect d, from the noncentral t."""
    df, ncp = n1 + n2 - 2, d / math.sqrt(1 / n1 + 1 / n2)
    critical = stats.t.ppf(1 - alpha / 2, df)
    return stats.nct.sf(critical, df, ncp) + stats.nct.cdf(-critical, df, ncp)


def paired_power(d: float, n: int, alpha: float = 0.05) -> float:
    """Power of the two-sided paired t-test on n pairs at alpha, d = mean difference / std of the differences."""
    df, ncp = n - 1, d * math.sqrt(n)
    critical = stats.t.ppf(1 - alpha / 2, df)
    return stats.nct.sf(critical, df, ncp) + stats.nct.cdf(-critical, df, ncp)


def mde_by_hand(a: list[float], b: list[float]) -> float:
    return optimize.brentq(lambda d: power(d, len(a), len(b)) - 0.8, 1e-6, 4) * pooled(a, b)


def seeds_by_search(effect: float, std: float, alpha: float = 0.05) -> int:
    return next(n for n in range(2, 100_000) if power(effect / std, n, n, alpha) >= 0.8)


def tost_by_hand(a: list[float], b: list[float], margin: float) -> float:
    """Two one-sided Welch tests: Δ > -margin and Δ < +margin; the TOST p is the larger one-sided p."""
    above = stats.ttest_ind(np.add(a, margin), b, equal_var=False, alternative="greater").pvalue
    below = stats.ttest_ind(np.subtract(a, margin), b, equal_var=False, alternative="less").pvalue
    return max(above, below)


def tost_paired_by_hand(a: list[float], b: list[float], margin: float) -> float:
    """Two one-sided paired t-tests on the per-seed differences: Δ > -margin and Δ < +margin; the larger p."""
    above = stats.ttest_rel(np.add(a, margin), b, alternative="greater").pvalue
    below = stats.ttest_rel(np.subtract(a, margin), b, alternative="less").pvalue
    return max(above, below)


def paired_mde_by_hand(a: list[float], b: list[float]) -> float:
    """The paired t-test's MDE: the standardised effect with 80 % power times the std of the differences."""
    return optimize.brentq(lambda d: paired_power(d, len(a)) - 0.8, 1e-6, 3) * np.std(np.subtract(a, b), ddof=1)


def hedges_by_hand(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """g = J·d and its CI from the noncentral-t quantiles found on a fine grid of noncentralities."""
    n1, n2 = len(a), len(b)
    d = (np.mean(a) - np.mean(b)) / pooled(a, b)
    j = 1 - 3 / (4 * (n1 + n2) - 9)
    scale, df = math.sqrt(1 / n1 + 1 / n2), n1 + n2 - 2
    t = d / scale
    grid = np.linspace(t - 15, t + 15, 300_001)
    cdf = stats.nct.cdf(t, df, grid)
    low = grid[np.nanargmin(np.abs(cdf - 0.975))]
    high = grid[np.nanargmin(np.abs(cdf - 0.025))]
    return j * d, j * low * scale, j * high * scale


def bca_by_enumeration(values: list[float]) -> tuple[float, float]:
    """The BCa 95 % interval of the mean over every one of the n^n equally likely resamples (Efron 1987)."""
    x = np.asarray(values)
    n, estimate = len(x), x.mean()
    means = np.sort(np.array([x[list(i)].mean() for i in itertools.product(range(n), repeat=n)]))
    z0 = stats.norm.ppf(np.mean(means < estimate))
    jack = np.array([np.delete(x, i).mean() for i in range(n)])
    spread = jack.mean() - jack
    acceleration = (spread**3).sum() / (6 * ((spread**2).sum()) ** 1.5)
    bounds = []
    for z in stats.norm.ppf([0.025, 0.975]):
        level = stats.norm.cdf(z0 + (z0 + z) / (1 - acceleration * (z0 + z)))
        bounds.append(float(np.quantile(means, level)))
    return bounds[0], bounds[1]


def tost_power_by_simulation(n: int, diff: float, std: float, margin: float, alpha: float) -> float:
    """The share of 40,000 simulated pairs of n-seed groups whose two one-sided pooled t-tests both reject."""
    rng = np.random.default_rng(5)
    a, b = rng.normal(diff, std, (40_000, n)), rng.normal(0, std, (40_000, n))
    se = np.sqrt((a.var(axis=1, ddof=1) + b.var(axis=1, ddof=1)) / n)
    delta, critical = a.mean(axis=1) - b.mean(axis=1), stats.t.ppf(1 - alpha, 2 * n - 2)
    return float(np.mean(((delta + margin) / se > critical) & ((margin - delta) / se > critical)))


def tost_power_by_hand(n: int, diff: float, std: float, margin: float, alpha: float) -> float:
    """P(both one-sided t-tests reject) bounded below by P(first) + P(second) - 1, each from the noncentral t."""
    df, se = 2 * n - 2, std * math.sqrt(2 / n)
    critical = stats.t.ppf(1 - alpha, df)
    return max(0.0, stats.nct.sf(critical, df, (margin + diff) / se) + stats.nct.sf(critical, df, (margin - diff) / se) - 1)
