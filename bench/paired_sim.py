"""The paired test against Welch's: simulated type-I error and power, and both on the same stored runs.

Seed s of every variant draws the same random numbers as seed s of the baseline (ablate/training/streams.py), so
their results correlate; the report then tests the per-seed differences (ablate/report/stats.py). The simulation
draws per-seed results whose variant and baseline correlate at r, and counts how often each test rejects at
α = 0.05: with no true difference (type-I error, which must stay at α) and with one of one standard deviation
(power). It also runs whole studies of three null variants through the report's own verdicts (compare, then Holm)
and counts those with any false verdict (family-wise error). `--study runs/NAME` prints, for each variant of a
stored study, both tests on the same runs: p, Holm's p, MDE and seeds needed.

    python bench/paired_sim.py                  # the simulation
    python bench/paired_sim.py --study runs/demo
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import stats

from ablate.report import stats as ablate_stats
from ablate.store import results
from ablate.study.variants import BASELINE

REPEATS = 20_000
STUDIES = 1_000
EFFECT = 1.0  # the true difference of the power rows, in standard deviations of one run


def draw(rng: np.random.Generator, shape: tuple[int, ...], n: int, r: float, effect: float) -> tuple[np.ndarray, np.ndarray]:
    """(variant, baseline) results of n seeds, unit std, correlated at r seed for seed, the variant `effect` higher."""
    shared = rng.normal(size=(*shape, n))
    own = lambda: np.sqrt(r) * shared + np.sqrt(1 - r) * rng.normal(size=(*shape, n))  # noqa: E731
    return own() + effect, own()


def rejection_rates(n: int, r: float, effect: float, seed: int = 0) -> tuple[float, float]:
    """The share of REPEATS simulated comparisons that the paired test and Welch's reject at ALPHA."""
    variant, baseline = draw(np.random.default_rng(seed), (REPEATS,), n, r, effect)
    paired = stats.ttest_rel(variant, baseline, axis=-1).pvalue
    welch = stats.ttest_ind(variant, baseline, axis=-1, equal_var=False).pvalue
    return float(np.mean(paired < ablate_stats.ALPHA)), float(np.mean(welch < ablate_stats.ALPHA))


def family_error(n: int, r: float, seed: int = 1) -> float:
    """The share of STUDIES simulated studies of three null variants where the report's verdicts (paired test, Holm)
    call any of them better or worse."""
    rng = np.random.default_rng(seed)
    wrong = 0
    for _ in range(STUDIES):
        shared = rng.normal(size=n)
        runs = [np.sqrt(r) * shared + np.sqrt(1 - r) * rng.normal(size=n) for _ in range(4)]
        comparisons = [ablate_stats.compare(dict(enumerate(runs[k])), dict(enumerate(runs[0]))) for k in (1, 2, 3)]
        ablate_stats.adjust_holm(comparisons)
        wrong += any(c.verdict in ("better", "worse") for c in comparisons)
    return wrong / STUDIES


def simulate() -> None:
    """Print the type-I error and power tables, then the family-wise error of whole studies."""
    print(f"Rejections at α = {ablate_stats.ALPHA:g} over {REPEATS:,} simulated comparisons (results of unit std, "
          f"variant and baseline correlated at r seed for seed)")
    print(f"{'n':>3} {'r':>5} | {'type-I paired':>13} {'type-I Welch':>12} | {f'power paired (Δ={EFFECT:g})':>22} {'power Welch':>11}")
    for n in (3, 5, 10):
        for r in (0.0, 0.5, 0.8):
            null, alternative = rejection_rates(n, r, 0.0), rejection_rates(n, r, EFFECT)
            print(f"{n:>3} {r:>5.1f} | {null[0]:>13.3f} {null[1]:>12.3f} | {alternative[0]:>22.3f} {alternative[1]:>11.3f}")
    print(f"\nFamily-wise error of the report's verdicts (paired, Holm over 3 null variants), {STUDIES:,} studies each")
    for n, r in ((5, 0.0), (5, 0.8)):
        print(f"  n = {n}, r = {r:.1f}: {family_error(n, r):.3f}")


def study(folder: Path, metric: str) -> None:
    """Both tests on the same stored runs of each variant: p, Holm's p, MDE and seeds needed."""
    runs = results.load_runs(folder)
    ok = runs[runs["status"] == "ok"]
    values = {variant: dict(zip(group["seed"], group[metric].astype(float))) for variant, group in ok.groupby("variant")}
    baseline = values.pop(BASELINE)
    print(f"Study {folder.name}, {metric}: each variant against the baseline, on the same runs")
    print(f"{'variant':<22} {'test':<7} {'p':>7} {'p Holm':>7} {'MDE (pt)':>9} {'seeds needed':>12} {'r':>6}  verdict")
    for pair in (True, False):
        comparisons = {name: ablate_stats.compare(mine, baseline, pair=pair) for name, mine in sorted(values.items())}
        ablate_stats.adjust_holm(list(comparisons.values()))
        for name, c in comparisons.items():
            needed = ablate_stats.seeds_needed(c.diff, ablate_stats.design_std(c), paired=c.test == ablate_stats.PAIRED)
            r = f"{c.correlation:+.2f}" if c.correlation is not None else "–"
            print(f"{name:<22} {c.test:<7} {c.p_test:>7.3f} {c.p_holm:>7.3f} {100 * c.mde:>9.2f} {needed or '–':>12} {r:>6}  {c.verdict}")
    print("seeds needed: per variant, for 80 % power at α = 0.05 to detect the observed Δ (before Holm)")


def main(argv: list[str]) -> None:
    """The simulation, or with --study both tests on a stored study."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", type=Path, help="a study folder (runs/NAME): both tests on its runs")
    parser.add_argument("--metric", default="test_acc")
    options = parser.parse_args(argv)
    if options.study:
        study(options.study, options.metric)
    else:
        simulate()


if __name__ == "__main__":
    main(sys.argv[1:])
