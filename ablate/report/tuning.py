"""What +tune chose, from the stored runs: per variant (arm) and grid point the tuning metric's mean, std and n over
the tuning seeds (study `<study>.tune`), the chosen point (ablate/study/tune.py's rule), and which final runs of the
study are each arm at its own best; whether each verdict changed from the baseline's settings; which choices sit at
the grid's edge."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pandas as pd

from ablate.config import format_value
from ablate.store import results
from ablate.study.tune import SCORED, best, score
from ablate.study.variants import keys_of, make_variant

GRID_PREFIX = "cfg.tune.grid."


@dataclass(frozen=True)
class Tuning:
    """A tuned study's choices: tuning.csv's rows, each tuning seed's value (the curve's dots), each arm's final
    variant, the chosen values and grid-edge notes."""

    metric: str  # the tuning metric (tune.metric)
    rows: pd.DataFrame
    seeds: pd.DataFrame  # arm, each grid key's value, seed, the tuning metric
    final_of: dict[str, str]  # arm -> the study's variant trained at its best point
    chosen: dict[str, str]  # arm -> the chosen values, as `key=value, ...`
    edges: list[str]  # arms whose choice sits at an end of a key's grid


def grid_keys(runs: pd.DataFrame) -> set[str]:
    """The keys a study's runs were tuned over (`tune.grid`, recorded in every run's config); empty when untuned."""
    return {column.removeprefix(GRID_PREFIX) for column in runs.columns if column.startswith(GRID_PREFIX) and runs[column].notna().any()}


def tune_dir(study_dir: Path) -> Path:
    """Where a study's tuning runs live: the study `<study>.tune` beside it."""
    return study_dir.with_name(f"{study_dir.name}.tune")


def load(study_dir: Path) -> Optional[Tuning]:
    """The choices of a tuned study (None when it has no finished tuning runs)."""
    folder = tune_dir(study_dir)
    runs = results.load_runs(folder) if folder.is_dir() else pd.DataFrame()
    if runs.empty:
        return None
    runs = runs[runs["status"].isin(SCORED)]  # a diverged tuning run scores the worst value, as tune.py chooses
    grid = {column.removeprefix(GRID_PREFIX): runs[column].iloc[0] for column in runs.columns if column.startswith(GRID_PREFIX)}
    metric = str(runs["cfg.tune.metric"].iloc[0])
    rows, seed_rows, final_of, chosen, edges = [], [], {}, {}, []
    arms = runs.assign(arm=[make_variant({k: row[f"cfg.{k}"] for k in keys_of(row["variant"]) if k not in grid}).name
                            for _, row in runs.iterrows()])
    for arm, group in arms.groupby("arm", sort=False):
        points = []
        for variant, seeds in group.groupby("variant", sort=False):
            values = {key: seeds[f"cfg.{key}"].iloc[0] for key in grid}
            place = tuple(_index(grid[key], values[key]) for key in grid)
            scored = [score(record, metric) for record in seeds[["status", metric]].to_dict("records")]
            points.append((place, variant, values, scored))
            seed_rows += [{"variant": arm, **values, "seed": int(seed), metric: value} for seed, value in zip(seeds["seed"], scored)]
        points.sort(key=lambda point: point[0])
        pick = best([p[3] for p in points], metric)
        for i, (place, variant, values, scores) in enumerate(points):
            rows.append({"variant": arm, **values, f"{metric}_mean": statistics.fmean(scores),
                         f"{metric}_std": statistics.stdev(scores) if len(scores) > 1 and all(map(math.isfinite, scores)) else float("nan"),
                         "n": len(scores), "chosen": int(i == pick)})
        place, final_of[arm], values, _ = points[pick]  # type: ignore[index]
        chosen[arm] = ", ".join(f"{key}={format_value(value)}" for key, value in values.items())
        if any(index in (0, len(grid[key]) - 1) and len(grid[key]) > 1 for key, index in zip(grid, place)):
            edges.append(arm)
    return Tuning(metric, pd.DataFrame(rows), pd.DataFrame(seed_rows), final_of, chosen, edges)


def _index(values: list, value: object) -> int:
    """Where a value sits in its grid list (as typed text, so 0.01 and 1e-2 are one)."""
    texts = [format_value(v) for v in values]
    return texts.index(format_value(value)) if format_value(value) in texts else len(texts)


def verdict_changes(at_best: pd.DataFrame, at_baseline: pd.DataFrame) -> list[str]:
    """Per row of the tuned summary: 'better -> no clear difference' where its verdict differs from the same variant's
    at the baseline's settings, '' where it agrees or there is no untuned verdict to compare."""
    untuned = {row.variant: row.verdict for row in at_baseline.itertuples() if row.n > 0}
    return [f"{untuned[row.variant]} -> {row.verdict}" if row.variant in untuned and untuned[row.variant] != row.verdict else ""
            for row in at_best.itertuples()]
