"""seeds=auto: which comparisons with the baseline are decided, and which seeds the next round trains.

Derived from the stored runs alone, so a killed study resumes and decides the same. Each variant trains seeds
0, 1, ... in rounds of `adaptive.batch`; a comparison is judged only at whole rounds (or at the budget) on the
paired differences variant − baseline over the seeds both finished, by the confidence sequence of
ablate/study/sequential.py at alpha / comparisons (Bonferroni, so the family-wise error over the study is at most
alpha however many rounds run). An open comparison gets another round; the baseline trains every seed an open
comparison pairs with.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import numpy as np

from ablate.config import AUTO_SEEDS, AdaptiveConfig, ConfigError
from ablate.store import results
from ablate.study import sequential
from ablate.study.plan import Plan, VariantPlan
from ablate.study.variants import BASELINE

PERCENT = 100.0  # adaptive metrics are accuracies; the margin is in percentage points


@dataclass(frozen=True)
class ComparisonState:
    """One variant against the baseline: the seeds judged, the interval of the mean difference (metric units) and
    the decision (better, worse, equivalent, open; inconclusive once the budget is spent)."""

    variant: str
    seeds: tuple[int, ...]
    low: float
    high: float
    decision: str


@dataclass(frozen=True)
class AdaptiveState:
    """Every comparison's state and the seeds the next round trains, per variant (the baseline's included)."""

    comparisons: tuple[ComparisonState, ...]
    next_seeds: Mapping[str, tuple[int, ...]]
    budget: int
    alpha: float


def is_adaptive(plan: Plan) -> bool:
    """Whether the study adds its seeds adaptively (seeds=auto); refuses seeds=auto where nothing is compared."""
    if plan.study.config.seeds != AUTO_SEEDS:
        return False
    if not any(v.variant.name == BASELINE for v in plan.variants) or len([v for v in plan.variants if v.role == "study"]) < 2:
        raise ConfigError("seeds=auto adds seeds where a variant's comparison with the baseline is open; it needs factors "
                          "(+sweep=NAME or key=a,b), or give a list of seeds such as seeds=[0,1,2]")
    return True


def trained(plan: Plan) -> Plan:
    """The plan narrowed to the runs seeds=auto has finished so far (what a status line counts)."""
    return Plan(tuple(v.with_batch([r.seed for r in v.runs if results.is_finished(r.folder)]) for v in plan.variants))


def next_round(plan: Plan, current: AdaptiveState) -> Plan:
    """The study's variants that train in the next round, each narrowed to that round's seeds (one job each)."""
    return Plan(tuple(v.with_batch(current.next_seeds[v.variant.name]) for v in plan.variants
                      if v.role == "study" and v.variant.name in current.next_seeds), multirun=True)


def _stored(variant: VariantPlan, metric: str) -> tuple[list[int], dict[int, float]]:
    """The seeds a variant has a finished run for (any status, in seed order), and the metric of its ok ones."""
    attempted, values = [], {}
    for run in variant.runs:
        record = results.read_metrics(run.folder)
        if record is not None:
            attempted.append(run.seed)
            if record["status"] == "ok":
                values[run.seed] = float(record[metric])
    return attempted, values


def judged_count(attempted: int, budget: int, batch: int) -> int:
    """How many of a variant's first seeds a decision reads: whole rounds only (a killed round is finished first),
    or all of them at the budget."""
    return attempted if attempted >= budget else attempted - attempted % batch


def judge(differences: np.ndarray, alpha: float, margin: float, spent: bool) -> tuple[float, float, str]:
    """The interval and decision of one comparison's paired differences (variant − baseline, in seed order)."""
    low, high = sequential.interval(differences, alpha)
    decision = str(sequential.decide(low, high, margin))
    return float(low), float(high), "inconclusive" if decision == "open" and spent else decision


def judge_stored(attempted: Sequence[int], values: Mapping[int, float], base_attempted: Sequence[int],
                 base_values: Mapping[int, float], settings: AdaptiveConfig, comparisons: int) -> tuple[ComparisonState, tuple[int, ...]]:
    """One variant's comparison from its stored seeds (attempted: any status, in seed order; values: the ok ones'
    metric) and the baseline's, and the variant's seeds of the next round (none once decided)."""
    judged = list(attempted)[:judged_count(len(attempted), settings.budget, settings.batch)]
    waiting = [s for s in judged if s not in base_attempted]  # the baseline's seeds of a killed round
    paired = tuple(s for s in judged if s in values and s in base_values)
    spent = len(attempted) >= settings.budget and not waiting
    low, high, decision = judge(np.asarray([values[s] - base_values[s] for s in paired]), settings.alpha / max(comparisons, 1),
                                settings.margin / PERCENT, spent)
    decision = "open" if waiting else decision
    upcoming = _next_round(list(attempted), settings.budget, settings.batch, waiting) if decision == "open" else ()
    return ComparisonState("", paired, low, high, decision), upcoming


def state(plan: Plan) -> AdaptiveState:
    """The decisions the stored runs support, and the next round's seeds per variant (empty when all is decided)."""
    settings = plan.study.config.adaptive
    study = [v for v in plan.variants if v.role == "study"]
    stored = {v.variant.name: _stored(v, settings.metric) for v in study}
    base_attempted, base_values = stored.get(BASELINE, ([], {}))
    others = [v.variant.name for v in study if v.variant.name != BASELINE]
    comparisons, wanted = [], {}
    for name in others:
        judged, upcoming = judge_stored(*stored[name], base_attempted, base_values, settings, len(others))
        comparisons.append(replace(judged, variant=name))
        if judged.decision == "open":
            wanted[name] = upcoming
    needed = sorted({s for name, seeds in wanted.items() for s in (*stored[name][0], *seeds)} - set(base_attempted))
    next_seeds = {name: seeds for name, seeds in wanted.items() if seeds}
    if needed:
        next_seeds = {BASELINE: tuple(needed), **next_seeds}
    return AdaptiveState(tuple(comparisons), next_seeds, settings.budget, settings.alpha)


def _next_round(attempted: list[int], budget: int, batch: int, waiting: list[int]) -> tuple[int, ...]:
    """The variant's seeds up to its next whole round (none while the baseline still owes seeds of this one)."""
    if waiting:
        return ()
    target = min(budget, (len(attempted) // batch + 1) * batch)
    return tuple(s for s in range(budget) if s not in attempted)[: max(target - len(attempted), 0)]


def describe(current: AdaptiveState, metric: str) -> str:
    """The state in words: each comparison's seeds, interval (percentage points) and decision, then the next round."""
    lines = [f"seeds=auto: {len(current.comparisons)} comparison(s) with the baseline, family-wise error {current.alpha:g}, "
             f"budget {current.budget} seeds per variant"]
    for c in current.comparisons:
        interval = "–" if not np.isfinite(c.low) else f"[{c.low * PERCENT:+.2f}, {c.high * PERCENT:+.2f}] pt"
        lines.append(f"  {c.variant:28s} {len(c.seeds):3d} paired seed(s)  Δ {metric} {interval:22s} {c.decision}")
    total = sum(len(s) for s in current.next_seeds.values())
    if not total:
        return "\n".join([*lines, "Every comparison is decided or has spent its budget: nothing to train."])
    rounds = [f"  {name}: seeds {', '.join(map(str, seeds))}" for name, seeds in current.next_seeds.items()]
    return "\n".join([*lines, f"Next round: {total} run(s):", *rounds])
