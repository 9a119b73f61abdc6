"""The checks of a plan that touch files, made before any training, and config errors as one line.

Planning (ablate/study/plan.py) only computes; here a plan meets the disk: stored runs it must pool with, weights,
datasets and the runs folder. Hydra's own errors are precise but long; `one_line` turns them (and ablate's) into
one line that names the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import os
import re
import typing
from pathlib import Path
from typing import Any

from hydra.errors import MissingConfigException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from ablate import trackers
from ablate.config import OWN_NETWORK_FIELDS, AblateConfig, ConfigError, DataConfig, ModelConfig
from ablate.data import catalog
from ablate.data.catalog import input_spec
from ablate.networks.network import create_network
from ablate.networks.weights import check_weights
from ablate.store import cache, checkpoints, results
from ablate.study import identity
from ablate.study.plan import Plan, VariantPlan, needs_source, seeds_of
from ablate.study.resolve import AUTO_SETTINGS, RESOLVED_KEYS

DATASETS_CHECKED = "datasets-checked"  # the cache's kind for dataset checks that passed (catalog.check_key)


def check(plan: Plan, writing: bool = True) -> str:
    """Refuse, before any training, a plan that would mix settings with stored runs, your own network that does not
    build or run, weights that do not fit, a dataset that cannot be loaded, or a runs_dir that cannot be written;
    not `writing` (a dry run, which writes nothing), the last is returned in words instead ('' where it can be)."""
    check_names(plan)  # before anything touches the disk (Hydra writes runs_dir/.hydra first)
    trackers.check(plan.study.config.logger)  # the chosen tracker's package imports
    for variant in plan.variants:
        refuse_conflicts(variant)
        if not variant.deferred:  # a job that resolves `auto` itself checks its checkpoints where it runs
            checkpoints.refuse_stale([run.folder for run in variant.runs], variant.identity_hash)
    for config in {repr(v.config.model): v.config for v in plan.variants}.values():
        create_network(config.model, *input_spec(config.data)).check()  # your network: it imports, builds and runs a batch
    for config in {v.config.model.weights: v.config for v in plan.variants
                   if v.config.model.transfer != "scratch" and not needs_source(v.config)}.values():
        check_weights(config.model, seeds_of(config), *input_spec(config.data))
    for data in {repr(v.config.data): v.config.data for v in plan.variants}.values():
        check_dataset(data)  # files, checksums, shapes, classes and subset sizes, before any training
    runs_dir = plan.study.config.runs_dir
    try:
        results.check_writable(runs_dir)
    except OSError as error:
        refused = f"runs_dir={runs_dir!r}: cannot write there ({error.strerror or error})"
        if not writing:
            return refused
        raise ConfigError(refused) from None
    if writing:
        results.check_locking(runs_dir)  # RunLock's flock must keep other processes out
    return ""


def check_names(plan: Plan) -> None:
    """Refuse a study or variant whose folder name the runs folder's filesystem cannot hold (NAME_MAX, 255 bytes on
    most), naming it, instead of an OSError once training writes."""
    root = results.existing_folder(plan.study.config.runs_dir)
    most = os.pathconf(root, "PC_NAME_MAX") if root.is_dir() else 255
    for variant in plan.variants:
        for what, name, fix in ((f"study={variant.study!r}", variant.study, "a shorter study=NAME"),
                                (f"variant {variant.variant.name!r}", results.variant_folder(variant.variant.name),
                                 "fewer keys or shorter values in one variant")):
            size = len(os.fsencode(name))
            if size > most:
                raise ConfigError(f"{what if len(what) <= 60 else what[:57] + '...'}: its folder name is {size} bytes, but the "
                                  f"filesystem of {root} takes names of at most {most}; choose {fix}")


def check_dataset(cfg: DataConfig) -> None:
    """Refuse, before any training, what loading would refuse (files, checksums, shapes, classes, subset sizes):
    the dataset is loaded and checked; a passed check of embedded MNIST is remembered under `catalog.check_key`, so
    the next plan of the same data reads no image and imports no torch."""
    catalog.check_name(cfg)
    key = catalog.check_key(cfg)
    if key is not None and cache.recall(DATASETS_CHECKED, key):
        return
    from ablate.data.datasets import load_dataset  # loading needs torch (1.7 s to import); a remembered check does not

    load_dataset(cfg)
    if key is not None:
        cache.remember(DATASETS_CHECKED, key, True)


def refuse_conflicts(variant: VariantPlan) -> None:
    """A planned variant must pool with every stored run of its study: equal identities but for the variants' keys.
    `ablate run` checks every variant before training (but for what `auto` resolves to, where each job resolves it);
    each job checks its own again where it runs, with its own resolution."""
    study_dir = Path(variant.config.runs_dir) / variant.study
    try:
        stored_runs = list(identity.stored_identities(study_dir))
    except results.DamagedRun as error:
        raise ConfigError(f"{error}: that finished run cannot be checked against these settings; restore the file, or "
                          "move the run's folder away to train it again") from None
    for folder, stored in stored_runs:
        found = identity.pool_conflicts((variant.variant.name, variant.identity), (results.variant_of(folder.parent), stored))
        found = [conflict for conflict in found if not (variant.deferred and conflict[0] in RESOLVED_KEYS)]
        if found:
            hints = [f"{key}={theirs}" for key, theirs, _ in found if key in AUTO_SETTINGS]  # what a user can set back
            resume = f"to continue it, add {' '.join(hints)}; or " if hints else ""
            raise ConfigError(
                f"study={variant.study!r} already holds runs trained with other settings, e.g. {folder} "
                f"({identity.describe_conflicts(found)}); they will not be mixed: {resume}choose a new study name "
                "(study=NAME) or move the old runs away"
            )


TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "text"}
ITEM_WORDS = {int: "integers", float: "numbers", bool: "booleans", str: "strings"}


def expected_type(full_key: str) -> str:
    """What the schema accepts at a dotted key, in words ('an integer or null'), or '' for an unknown key."""
    node: Any = AblateConfig
    for part in re.sub(r"\[\d+\]", "", full_key).split("."):
        hints = typing.get_type_hints(node) if dataclasses.is_dataclass(node) else {}
        hints.update({"model": ModelConfig} if node is AblateConfig else {})  # typed Any there, for your own network
        if part not in hints:
            return ""
        node = hints[part]
    args = [a for a in typing.get_args(node) if a is not type(None)]
    if typing.get_origin(node) is list:
        return f"a list of {ITEM_WORDS.get(args[0], 'values')}, like [0,1,2]"
    if args and len(args) < len(typing.get_args(node)):
        return f"{TYPE_WORDS.get(args[0], 'a value')} or null"
    return TYPE_WORDS.get(node, "")


def one_line(error: BaseException) -> str:
    """A one-line message for a config error: the key, what is wrong, what is allowed."""
    chain, cause = [], error
    while cause is not None:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    for item in chain:
        if isinstance(item, OmegaConfBaseException) and getattr(item, "full_key", None):
            message = str(item.msg).splitlines()[0]
            if expected_type(item.full_key):
                message += f"; expected {expected_type(item.full_key)}"
            if isinstance(item, (ConfigAttributeError, ConfigKeyError)):
                parent = item.full_key.rpartition(".")[0]
                node = AblateConfig() if not parent else OmegaConf.select(OmegaConf.structured(AblateConfig), parent)
                keys = [key for key in OmegaConf.structured(node).keys() if key not in OWN_NETWORK_FIELDS] if node is not None else []
                owner = "the built-in model" if parent == "model" else parent or "the config"
                message = f"no such key; {owner} has: {', '.join(keys)}"
                if parent == "model":
                    message += f"; your own network (_target_) has its config file's keys: add one with +{item.full_key}=VALUE"
            return f"{item.full_key}: {message}"
    if isinstance(error, MissingConfigException):
        text = " ".join(str(error).split())
        return text.replace("Available options in", "; available options in").replace("Config search path:", "").split("provider=")[0].strip()
    return " ".join(str(error).split())
