"""What every run of a study shares and how to train each variant again: the settings and commands of its page."""

from __future__ import annotations

import functools
import shlex
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd
from omegaconf import OmegaConf, open_dict

from ablate.config import flatten_config, format_value, to_node, typed
from ablate.store import results
from ablate.study import identity, plan
from ablate.study.resolve import AUTO_SETTINGS
from ablate.study.variants import BASELINE, keys_of

# Keys a command sets by other means (study=, seeds=) or that decide nothing a reader reproduces.
NOT_SETTINGS = ("seeds", "study", "variant", "runs_dir", "retry_failed")
VARIANCE = "+variance=sources"  # the override that plans a variance study
# What metrics.json records beside the identity, shown among the settings, in this order (not the resolved strategy:
# the identity holds it as train.strategy).
RECORDED = {"dataset": "dataset", "train_samples": "training images", "validation_samples": "validation images",
            "test_samples": "test images", "hardware": "hardware", "versions": "versions", "git_commit": "ablate commit"}


@functools.lru_cache(maxsize=2)
def defaults(*overrides: str) -> dict[str, Any]:
    """The flat config `ablate run OVERRIDES` composes (none: conf/config.yaml's), as a run's config.yaml reads."""
    composed = plan.compose_config(list(overrides))
    with open_dict(composed):
        del composed["hydra"]
    return flatten_config(OmegaConf.to_container(to_node(typed(composed))))  # type: ignore[arg-type]


def _text(value: Any) -> str:
    """A recorded value in words: a dict (versions, hardware) as `key value` pairs."""
    if isinstance(value, Mapping):
        return ", ".join(f"{key} {format_value(item)}" for key, item in value.items())
    return format_value(value)


def common_settings(runs: pd.DataFrame) -> dict[str, str]:
    """Every identity setting with the one value all runs share (the keys any variant changes left out: they differ
    between runs), then what the runs recorded about data, strategy, machine and code (several values joined by ' | '
    where runs differ)."""
    changed = {key for variant in set(runs["variant"]) for key in keys_of(variant)}
    found: dict[str, set[str]] = {}
    for run in runs.itertuples():
        for key, value in run.identity.items():
            if key not in changed:
                found.setdefault(key, set()).add(format_value(value))
    settings = {key: " | ".join(sorted(values)) for key, values in sorted(found.items())}
    for column, name in RECORDED.items():
        if column in runs:
            settings[name] = " | ".join(sorted({_text(v) for v in runs[column] if v is not None and not (isinstance(v, float) and pd.isna(v))}))
    if BASELINE in set(runs["variant"]):
        settings["identity hash (baseline)"] = identity_hashes(runs)[BASELINE]
    return settings


def identity_hashes(runs: pd.DataFrame) -> dict[str, str]:
    """Each variant's identity hash, of the identity derived from its stored config (as the report compares them)."""
    return {variant: identity.identity_hash(rows["identity"].iloc[0]) for variant, rows in runs.groupby("variant", sort=False)}


def command(config: Mapping[str, Any], variant: str, baseline: Mapping[str, Any], seeds: list[int], resolved: Mapping[str, Any]) -> str:
    """The `ablate run` line that trains `variant` again under its study: one key as a factor (`-m key=baseline,value`,
    so the variant keeps its name and the baseline is trained or found), several keys as a one-off, every other
    setting that differs from conf/config.yaml as an override, and what `auto` resolved to (`resolved`, from its
    identity) pinned, so another machine trains the same thing or refuses."""
    own = keys_of(variant)
    arguments = _settings(config, resolved, own, defaults())
    if len(own) == 1:
        key = own[0]
        arguments = ["-m", f"{key}={format_value(baseline.get(key, defaults().get(key)))},{format_value(config[key])}"] + arguments
    else:
        arguments = [f"{key}={format_value(config[key])}" for key in own] + arguments
    arguments += [f"seeds={format_value(seeds)}", f"study={config['study']}"]
    return shlex.join(["ablate", "run", *arguments])


def _settings(config: Mapping[str, Any], resolved: Mapping[str, Any], own: Sequence[str], default: Mapping[str, Any]) -> list[str]:
    """A command's `key=value` overrides: every setting of `config` that differs from `default`, but the `own` keys
    (the variant's, or those a variance study sets per source), the loggers and NOT_SETTINGS, with what `auto`
    resolved to (`resolved`, from the identity) pinned."""
    config = {**config, **{key: resolved[key] for key in AUTO_SETTINGS if config.get(key) == "auto" and key in resolved}}
    return [f"{key}={format_value(value)}" for key, value in sorted(config.items())
            if not key.startswith("logger.") and key not in NOT_SETTINGS and key not in own and value != default.get(key)]


def study_command(runs: pd.DataFrame) -> str:
    """The `ablate run +variance=sources` line that trains a variance study again, every source's runs: its settings
    that differ from what +variance=sources composes (the seed streams left out: it sets them per source)."""
    first = runs.iloc[0]
    config = results.read_config(Path(first["run_dir"]))
    streams = [key for key in config if key.startswith("seed_streams.")]
    seeds = sorted({int(s) for planned in runs["planned_seeds"] for s in planned}) if "planned_seeds" in runs else sorted(set(runs["seed"]))
    arguments = _settings(config, first["identity"], streams, defaults(VARIANCE))
    return shlex.join(["ablate", "run", VARIANCE, *arguments, f"seeds={format_value(seeds)}", f"study={config['study']}"])


def commands(runs: pd.DataFrame) -> dict[str, str]:
    """For each variant with a finished run, the command that trains it again (see `command`)."""
    def config(rows: pd.DataFrame) -> dict[str, Any]:
        return results.read_config(Path(rows["run_dir"].iloc[0]))

    baseline = runs[runs["variant"] == BASELINE]
    base = config(baseline) if len(baseline) else {}
    found = {}
    for variant, rows in runs.groupby("variant", sort=False):
        seeds = sorted({int(s) for planned in rows["planned_seeds"] for s in planned}) if "planned_seeds" in rows else sorted(rows["seed"])
        found[variant] = command(config(rows), variant, base, seeds, rows["identity"].iloc[0])
    return found
