"""+tune=NAME: the same tuning effort for every variant. Each variant of the study (the baseline included) trains every
point of `tune.grid` at `tune.seeds`, as ordinary runs of study `<study>.tune`; its best point is the one with the best
mean of `tune.metric` (a validation metric) over those seeds; the study's seeds then train at that point, in the
study itself, as the variant that changes the variant's key and the chosen values (the baseline's own values are
the plain variant, so a variant whose best is the baseline's setting is its untuned runs). Everything is computed
from the stored runs, so a killed tuned study resumes and chooses the same.
"""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass, replace
from typing import Any, Mapping, Optional

from omegaconf import OmegaConf

from ablate.config import AUTO_SEEDS, AblateConfig, ConfigError, format_value, to_node, typed
from ablate.store import results
from ablate.study.plan import Plan, VariantPlan, plan_variant
from ablate.study.variants import Variant, make_variant

HIGHER_IS_BETTER = {"val_acc": True, "val_loss": False}


def enabled(planned: Plan) -> bool:
    """Whether the command asks for tuning (`+tune=NAME`: a non-empty tune.grid)."""
    return bool(planned.study.config.tune.grid)


def points(grid: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in the grid's order (first key slowest)."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[key] for key in keys))]


def _at(config: AblateConfig, point: Mapping[str, Any], **settings: Any) -> AblateConfig:
    """The config with the grid point's values, typed through the schema, and other top-level settings."""
    node = to_node(config)
    for key, value in point.items():
        OmegaConf.update(node, key, value)
    return replace(typed(node), **settings)


def _study_variants(planned: Plan) -> list[VariantPlan]:
    return [v for v in planned.variants if v.role == "study"]


def refuse(planned: Plan) -> None:
    """The refusals before anything trains: no validation split, tuning seeds among the study's, a grid key that is
    a factor of the study or no key at all, seeds=auto, a pretrained source."""
    config = planned.study.config
    tune = config.tune
    if config.data.validation_size is None:
        raise ConfigError(f"tune.metric={tune.metric} needs data.validation_size (images held out to choose on), e.g. 1000: "
                          "a test set that chooses a hyperparameter no longer tests it")
    if config.seeds == AUTO_SEEDS:
        raise ConfigError("seeds=auto is not allowed with +tune; give the study's seeds as a list, e.g. seeds=[0,1,2]")
    if not tune.seeds or len(set(tune.seeds)) != len(tune.seeds):
        raise ConfigError(f"tune.seeds={format_value(tune.seeds)} is not allowed; give distinct seeds, e.g. [100,101]")
    overlap = sorted(set(tune.seeds) & set(config.seeds))
    if overlap:
        raise ConfigError(f"tune.seeds={format_value(tune.seeds)} is not allowed; seed(s) {format_value(overlap)} are also the "
                          f"study's seeds {format_value(config.seeds)}: tuning seeds must be others, e.g. [100,101]")
    factors = {key for v in _study_variants(planned) for key in v.variant.keys}
    for key, values in tune.grid.items():
        if key in factors:
            raise ConfigError(f"tune.grid.{key} is not allowed; {key} is a factor of this study: a grid tunes a setting "
                              "the variants share, such as train.lr")
        if OmegaConf.select(to_node(config), key, default=_ABSENT) is _ABSENT:
            raise ConfigError(f"tune.grid.{key}: not a key of the config; `ablate run --cfg job` lists the keys")
        if not values:
            raise ConfigError(f"tune.grid.{key}=[] is not allowed; give the values to try, e.g. [0.001,0.01]")
    if any(v.config.model.weights == "pretrain" for v in planned.variants):
        raise ConfigError("model.weights=pretrain is not allowed with +tune: the source task would be tuned too; pretrain "
                          "to a file first, then give model.weights=FILE")


_ABSENT = object()


@dataclass(frozen=True)
class Arm:
    """One variant of the study under tuning: its tuning runs (one VariantPlan per grid point, in grid order)."""

    variant: VariantPlan
    points: tuple[dict[str, Any], ...]
    tuning: tuple[VariantPlan, ...]


def _variant_at(variant: VariantPlan, point: Mapping[str, Any], baseline: AblateConfig) -> Variant:
    """The variant that changes the variant's own keys and the point's values that differ from the baseline's."""
    changed = {key: value for key, value in point.items() if format_value(value) != format_value(OmegaConf.select(to_node(baseline), key))}
    return make_variant({**dict(variant.variant.overrides), **changed})


def arms(planned: Plan) -> list[Arm]:
    """Every study variant with its tuning runs: each grid point at tune.seeds, in study `<study>.tune`."""
    refuse(planned)
    baseline = planned.study.config
    tune = baseline.tune
    found = []
    for variant in _study_variants(planned):
        grid = points(tune.grid)
        typed_points = [{key: OmegaConf.select(to_node(_at(variant.config, point)), key) for key in point} for point in grid]
        tuning = tuple(plan_variant(_at(variant.config, point, study=f"{variant.study}.tune", seeds=list(tune.seeds)),
                                    _variant_at(variant, point, baseline), deferred=variant.deferred)
                       for point in typed_points)
        found.append(Arm(variant, tuple(typed_points), tuning))
    return found


def tuning_plan(found: list[Arm]) -> Plan:
    """The tuning runs of every arm, as one plan (to check, list and train)."""
    return Plan(tuple(t for arm in found for t in arm.tuning), multirun=True)


# A tuning run that ends so is a result: its point trained it to a blow-up or to chance (a learning rate too large).
SCORED = ("ok", "diverged")


def score(record: dict[str, Any], metric: str) -> float:
    """A finished tuning run's score: its metric, or for a diverged run the worst value there is, so its point is never
    chosen over one whose seeds all trained (and the tuning of a grid that reaches a diverging lr still ends)."""
    if record.get("status") == "diverged":
        return -math.inf if HIGHER_IS_BETTER[metric] else math.inf
    return float(record[metric])


def scores(arm: Arm, metric: str) -> list[Optional[list[float]]]:
    """Per grid point the score of each tuning seed, from the stored runs; None while any of them is not finished ok
    or diverged (a failed run waits for --retry-failed)."""
    found = []
    for tuning in arm.tuning:
        records = [results.read_metrics(run.folder) for run in tuning.runs]
        done = all(record is not None and record.get("status") in SCORED for record in records)
        found.append([score(record, metric) for record in records] if done else None)  # type: ignore[arg-type]
    return found


def best(values: list[Optional[list[float]]], metric: str) -> Optional[int]:
    """The index of the point with the best mean (the first of equal ones), or None while any point is unfinished."""
    if any(v is None for v in values):
        return None
    means = [statistics.fmean(v) for v in values]  # type: ignore[arg-type]
    sign = 1 if HIGHER_IS_BETTER[metric] else -1
    return max(range(len(means)), key=lambda i: (sign * means[i], -i))


def final(arm: Arm, chosen: int, baseline: AblateConfig) -> VariantPlan:
    """The study's seeds of the arm's variant at its chosen point, in the study itself."""
    point = arm.points[chosen]
    return plan_variant(_at(arm.variant.config, point), _variant_at(arm.variant, point, baseline), deferred=arm.variant.deferred)


def finals(planned: Plan, found: list[Arm]) -> Optional[Plan]:
    """The final runs of every arm at its chosen point, once every tuning run is finished (ok or diverged); None before."""
    metric = planned.study.config.tune.metric
    chosen = [best(scores(arm, metric), metric) for arm in found]
    if any(c is None for c in chosen):
        return None
    plans = [final(arm, c, planned.study.config) for arm, c in zip(found, chosen)]  # type: ignore[arg-type]
    return Plan(tuple(plans), multirun=True)


def describe(planned: Plan, found: list[Arm]) -> str:
    """Per variant: its tuning runs (finished of planned), its chosen point or that it is chosen after tuning, and its
    final runs; then the total against the untuned study."""
    tune = planned.study.config.tune
    grid = ", ".join(f"{key} in {format_value(values)}" for key, values in tune.grid.items())
    lines = [f"Tuning {grid} at seeds {format_value(tune.seeds)} by mean {tune.metric}, in study {planned.study.study}.tune:"]
    tuning_runs = final_runs = 0
    for arm in found:
        values = scores(arm, tune.metric)
        done = sum(len(v) for v in values if v is not None)
        planned_runs = sum(len(t.runs) for t in arm.tuning)
        chosen = best(values, tune.metric)
        at = ("at its best, chosen after tuning" if chosen is None else
              f"at its best {', '.join(f'{k}={format_value(v)}' for k, v in arm.points[chosen].items())}")
        runs = len(arm.variant.runs)
        lines.append(f"  {arm.variant.variant.name}: {planned_runs} tuning run(s) ({done} finished), then {runs} final run(s) {at}")
        tuning_runs, final_runs = tuning_runs + planned_runs, final_runs + runs
    untuned = sum(len(v.runs) for v in _study_variants(planned))
    lines.append(f"{tuning_runs + final_runs} run(s) in all: {tuning_runs} tuning, {final_runs} final "
                 f"(the untuned study: {untuned})")
    return "\n".join(lines)
