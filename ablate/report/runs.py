"""A study's stored runs as the report reads them: each run's factor and value, the pooling check, the report's
variant order, and the tidy per-run and per-epoch tables (`runs.csv`, `ablate report --format csv|json`,
`ablate.load(...).runs`).

Light on purpose (pandas and the store, no statistics or plotting), so `ablate.load` reads a study quickly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import pandas as pd

from ablate.config import CHOICES, AblateConfig, ConfigError, flatten_config, format_value
from ablate.report.metrics import METRICS
from ablate.store import results
from ablate.study import identity
from ablate.study.variants import BASELINE, keys_of

# Factors are listed in the schema's order of keys (model, data, train, ...); variants changing several keys last.
SCHEMA_ORDER = list(flatten_config(asdict(AblateConfig()), ""))
# What a study folder holds, for the message of a path that is none.
STUDY_FOLDER = "a study folder holds <variant>/seed=<s>/metrics.json for each finished run, e.g. runs/demo/baseline/seed=0"
# The tidy table's columns after variant, seed, status, the factor keys and the identity hash (those the runs recorded).
RECORDED = (*METRICS, "params", "trainable_params", "receptive_field", "device", "precision", "strategy",
            "error", "finished_at")


class ReportError(ValueError):
    """A study that cannot be reported honestly as it stands; the message says why and what to do."""


@dataclass(frozen=True)
class StudyRuns:
    """A study's finished runs (one row each: metrics.json, the config as `cfg.KEY`, identity, factor and value),
    checked to pool, with its variants in the report's order."""

    path: Path
    runs: pd.DataFrame
    order: list[str]

    @property
    def name(self) -> str:
        """The study's name: its folder's."""
        return self.path.name


def _value_rank(factor: str, value: str) -> float:
    """Choices in the schema's order, booleans false first, numbers numerically; other text after them."""
    if factor in CHOICES and value in CHOICES[factor]:
        return float(CHOICES[factor].index(value))
    if value in ("false", "true"):
        return float(value == "true")
    try:
        return float(value)
    except ValueError:
        return math.inf


def _order_key(variant: str, factor: str, value: str) -> tuple:
    """Baseline first, then factors in the schema's order, then values (see `_value_rank`), then by name."""
    if variant == BASELINE:
        return (0, 0, 0.0, "")
    factor_rank = SCHEMA_ORDER.index(factor) if factor in SCHEMA_ORDER else len(SCHEMA_ORDER)
    return (1, factor_rank, _value_rank(factor, value), variant)


def name_factors(runs: pd.DataFrame) -> pd.DataFrame:
    """Each run's factor and value from its variant's name and the config it was trained with (so one-off runs
    that change several keys read as such, whatever older records stored)."""
    def of(row: pd.Series) -> tuple[str, str]:
        keys = keys_of(row["variant"])
        return "+".join(keys), ", ".join(format_value(row.get(f"cfg.{key}")) for key in keys)

    named = [of(row) for _, row in runs.iterrows()]
    return runs.assign(factor=[f for f, _ in named], value=[v for _, v in named])


def check_poolable(runs: pd.DataFrame, study: str) -> None:
    """Refuse a study whose runs do not pool by ablate/study/identity.py's one rule, the rule `ablate run` applies."""
    ordered = sorted(runs.itertuples(), key=lambda run: (run.variant != BASELINE, run.variant, run.seed))
    found = identity.first_conflict((run.variant, f"{run.variant}/seed={run.seed}", run.identity) for run in ordered)
    if found:
        theirs, mine, conflicts = found
        raise ReportError(
            f"study {study!r}: runs differ in {identity.describe_conflicts(conflicts)} besides the swept factor "
            f"({theirs} -> {mine}), so they cannot be pooled. Train the new setting as its own study (study=NAME) or "
            "delete the stale runs."
        )


def _factor_of(runs: pd.DataFrame, variant: str) -> tuple[str, str]:
    """(factor, value) a variant's runs recorded; empty for a variant folder with no finished run."""
    rows = runs[runs["variant"] == variant]
    return (rows["factor"].iloc[0], str(rows["value"].iloc[0])) if len(rows) else ("", "")


def stored_runs(study_dir: Path) -> pd.DataFrame:
    """A study's finished runs with their identities derived again, each run's variant its folder's (which its
    config.yaml must agree with: ReportError naming both otherwise)."""
    try:
        return results.load_runs(study_dir, lambda folder, record: {"identity": identity.stored_identity(folder, record),
                                                                    "variant": results.variant_of(folder.parent)})
    except ConfigError as error:
        raise ReportError(str(error)) from None


def named_study(study_dir: Path, runs: pd.DataFrame) -> StudyRuns:
    """A study's runs (`stored_runs`, or those a report keeps) named, checked to pool and in the report's order."""
    runs = name_factors(runs)
    check_poolable(runs, study_dir.name)
    return StudyRuns(study_dir, runs, in_report_order(results.variant_names(study_dir), runs))


def in_report_order(variants: Iterable[str], runs: pd.DataFrame) -> list[str]:
    """Variants as a report lists them: the baseline, then each factor's values in the schema's order."""
    return sorted(variants, key=lambda v: _order_key(v, *_factor_of(runs, v)))


def load_study(study_dir: str | Path) -> StudyRuns:
    """A study's finished runs, named, checked to pool and ordered; an error naming the path where it holds none."""
    path = Path(study_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a folder; {STUDY_FOLDER}")
    runs = stored_runs(path)
    if runs.empty:
        raise ReportError(f"study {path.name!r} ({path}) has no whole metrics.json; {STUDY_FOLDER}. Re-run its command "
                          "to train the missing runs")
    return named_study(path, runs)


def find_studies(path: str | Path) -> list[Path]:
    """The studies under a runs folder, or the folder itself when it is one study; an error naming the path otherwise."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a folder; give a runs folder (default: runs) or a study folder such as runs/depth")
    found = results.study_dirs(path)
    if not found:
        raise ReportError(f"{path} holds no finished runs; {STUDY_FOLDER}. Train some first, e.g. ablate run +sweep=depth")
    return found


def factor_keys(runs: pd.DataFrame) -> list[str]:
    """Every key a study's variants change, in the schema's order (your own network's keys after it, by name)."""
    keys = {key for variant in runs["variant"].unique() for key in keys_of(variant)}
    return sorted(keys, key=lambda key: (SCHEMA_ORDER.index(key) if key in SCHEMA_ORDER else len(SCHEMA_ORDER), key))


def tidy(study: StudyRuns) -> pd.DataFrame:
    """One row per finished run, in the report's order: study, variant, seed, status, each factor key as its own
    column typed as the run's config holds it (the baseline's value in the baseline's rows), the identity hash, the
    final metrics, parameters, what `auto` resolved to, the error of a failed run, `hardware.*` and the run's folder."""
    runs = study.runs
    rank = runs["variant"].map({v: i for i, v in enumerate(study.order)})
    runs = runs.assign(rank=rank).sort_values(["rank", "seed"], kind="stable").reset_index(drop=True)
    keys = factor_keys(runs)
    table = pd.DataFrame({"study": study.name, "variant": runs["variant"], "seed": runs["seed"], "status": runs["status"]})
    for key in keys:
        table[key] = runs[f"cfg.{key}"].tolist()  # a list, so pandas types the column from its values
    table["identity_hash"] = runs["identity"].map(identity.identity_hash)  # of the identity derived again, as the page shows it
    table = table.join(runs[[c for c in RECORDED if c in runs]])
    if "hardware" in runs:
        hardware = pd.json_normalize([h if isinstance(h, dict) else {} for h in runs["hardware"]]).add_prefix("hardware.")
        table = table.join(hardware)
    return table.assign(run_dir=runs["run_dir"])


def tidy_history(study: StudyRuns, table: pd.DataFrame) -> pd.DataFrame:
    """One row per run and epoch (every finished run's history.csv), with the run's study, variant, seed, status and
    factor columns (`table`: its rows of `tidy`) first."""
    curves = results.load_histories(table)
    if curves.empty:
        return curves
    keep = ["study", "variant", "seed", "status", *factor_keys(study.runs)]
    merged = table[keep].merge(curves, on=["variant", "seed"], how="right", validate="one_to_many")
    return merged[[*keep, *[c for c in curves.columns if c not in keep]]]
