"""The anytime-valid test of seeds=auto: its e-value against a numerical integration of the Bayes factor written out
here, and thousands of simulated adaptive studies (no training) for its error rates and power."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from ablate.study import sequential

DIFFS = [1.1, 1.3, 1.0, 1.2, 0.9, 1.2]


def bayes_factor_by_integration(values: list[float], mu0: float, scale: float) -> float:
    """Marginal likelihood under N(mu0 + delta sigma, sigma^2) with delta ~ N(0, scale) and prior 1/sigma (flat in
    log sigma), over the same with delta = 0: both by Simpson's rule on a grid of log sigma (and delta)."""
    x = np.asarray(values)[:, None, None] - mu0
    log_sigma = np.linspace(-12, 12, 1201)[None, :, None]
    delta = np.linspace(-14, 14, 701)[None, None, :] * math.sqrt(scale)
    sigma = np.exp(log_sigma)

    def likelihood(shift: np.ndarray) -> np.ndarray:
        return np.exp(stats.norm.logpdf(x, shift * sigma, sigma).sum(axis=0))

    alternative = integrate.simpson(integrate.simpson(likelihood(delta) * stats.norm.pdf(delta[0], 0, math.sqrt(scale)),
                                                      x=delta[0, 0]), x=log_sigma[0, :, 0])
    null = integrate.simpson(likelihood(np.zeros((1, 1, 1)))[:, 0], x=log_sigma[0, :, 0])
    return float(alternative / null)


@pytest.mark.parametrize("n, mu0, scale", [(2, 0.0, 2.0), (4, 0.0, 2.0), (6, 0.0, 1.0), (6, 1.5, 2.0), (5, 0.3, 10.0)])
def test_e_value_is_the_bayes_factor_integrated_numerically(n: int, mu0: float, scale: float) -> None:
    values = DIFFS[:n]
    mine = math.exp(float(sequential.log_e_value(np.mean(values), np.std(values, ddof=1), n, mu0, scale)))
    assert mine == pytest.approx(bayes_factor_by_integration(values, mu0, scale), rel=1e-4)


def test_interval_ends_are_where_the_e_value_reaches_one_over_alpha() -> None:
    values, alpha = np.asarray(DIFFS), 0.05 / 12
    low, high = sequential.interval(values, alpha)
    mean, std = values.mean(), values.std(ddof=1)
    for end in (low, high):
        assert math.exp(float(sequential.log_e_value(mean, std, 6, end))) == pytest.approx(1 / alpha, rel=1e-9)
    inside = math.exp(float(sequential.log_e_value(mean, std, 6, (low + high) / 2 + 0.9 * (high - low) / 2)))
    assert inside < 1 / alpha
    assert low > 0  # this clear effect is decided at 6 seeds in a study of 12 comparisons
    assert sequential.decide(low, high, margin=1.0) == "better"
    assert sequential.decide(-high, -low, margin=1.0, higher_is_better=False) == "better"


def test_too_few_seeds_or_no_evidence_decide_nothing() -> None:
    low, high = sequential.interval(np.asarray([1.0, 1.2, 0.9]), 0.05 / 12)
    assert (low, high) == (-np.inf, np.inf)  # three seeds cannot reach e = 240 with this prior
    assert sequential.decide(low, high, 1.0) == "open"
    assert float(sequential.log_e_value(1.0, 0.5, 1)) == 0.0


def simulate(mu: float, std: float, studies: int, comparisons: int = 12, budget: int = 20, batch: int = 3,
             margin: float = 1.0, alpha: float = 0.05, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Adaptive studies as seeds=auto runs them: per comparison, paired differences in seed order, a look after every
    batch (first batch too), stopping at the first decision or at the budget. Returns decisions and seeds used."""
    draws = np.random.default_rng(seed).normal(mu, std, size=(studies, comparisons, budget))
    decision = np.full(draws.shape[:2], "open", dtype=object)
    used = np.full(draws.shape[:2], budget)
    for n in [*range(batch, budget, batch), budget]:
        low, high = sequential.interval(draws[..., :n], alpha / comparisons)
        now = sequential.decide(low, high, margin)
        new = (decision == "open") & (now != "open")
        decision[new], used[new] = now[new], n
    return decision, used


@pytest.mark.parametrize("std", [0.2, 0.5])
def test_simulated_type_one_error_is_at_most_alpha(std: float) -> None:
    """No effect anywhere: a study errs when any of its 12 comparisons is called better or worse. At the margin's
    edge (true difference = margin): it errs when any is called equivalent. Also with a look after every seed."""
    decision, _ = simulate(0.0, std, 4000)
    wrong_difference = np.isin(decision, ["better", "worse"]).any(axis=1).mean()
    decision, _ = simulate(1.0, std, 4000, seed=1)
    wrong_equivalence = (decision == "equivalent").any(axis=1).mean()
    every_seed, _ = simulate(0.0, std, 4000, batch=1, seed=2)
    peeking = np.isin(every_seed, ["better", "worse"]).any(axis=1).mean()
    print(f"\nseed std {std} pt, 4000 studies of 12 comparisons, alpha 0.05: family-wise error "
          f"{wrong_difference:.4f} (no effect), {wrong_equivalence:.4f} (effect = margin, called equivalent), "
          f"{peeking:.4f} (no effect, a look after every seed)")
    assert max(wrong_difference, wrong_equivalence, peeking) <= 0.05


@pytest.mark.parametrize("mu, std, outcome, power", [
    (1.0, 0.4, "better", 0.99), (-0.6, 0.3, "worse", 0.9), (0.0, 0.3, "equivalent", 0.99), (0.0, 0.5, "equivalent", 0.95),
])
def test_simulated_power_is_what_the_guide_states(mu: float, std: float, outcome: str, power: float) -> None:
    """The power docs/guide/adaptive-seeds.md states for its defaults (budget 20, batch 3, margin 1 pt, 12 comparisons)."""
    decision, used = simulate(mu, std, 2000, seed=3)
    reached = (decision == outcome).mean()
    print(f"\nΔ {mu:+.1f} pt, seed std {std} pt: {outcome} in {reached:.3f} of 24,000 comparisons, "
          f"mean seeds {used.mean():.1f} (a fixed-n study would train 20)")
    assert reached >= power
