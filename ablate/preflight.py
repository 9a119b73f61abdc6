"""Composes a command line's configs with Hydra and checks every variant it would train, before any training.

Hydra's own errors are precise but long; `one_line` turns them (and ablate's) into one line that names
the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from typing import Any, Sequence

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import MissingConfigException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from ablate import results
from ablate.config import AblateConfig, ConfigError, register_schema, validate
from ablate.data import input_spec, load_dataset
from ablate.runner import needs_source, source_config, stale_runs
from ablate.weights import check_weights
from ablate.variants import BASELINE, Variant, plan_variants, variant_from_overrides
from hydra_plugins.ablate_sweeper.ablate_sweeper import check_arguments, register as register_sweeper

CONFIG_MODULE, CONFIG_NAME = "ablate.conf", "config"


def setup_hydra() -> None:
    """Register ablate's schema and sweeper with Hydra; needed once per process before composing."""
    register_schema()
    register_sweeper()


def compose_config(overrides: Sequence[str]) -> DictConfig:
    """The config a command line composes to, Hydra's own `hydra` node included."""
    setup_hydra()
    GlobalHydra.instance().clear()  # a previous in-process Hydra run may have left it initialised
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        return compose(CONFIG_NAME, overrides=list(overrides), return_hydra_config=True)


def sweep_factors(composed: DictConfig) -> dict[str, list]:
    """The factors of the sweep a config selects (`+sweep=NAME`), or {} for a single variant."""
    factors = OmegaConf.select(composed, "hydra.sweeper.factors", default=None)
    return OmegaConf.to_container(factors) if factors is not None else {}


def _refuse_stale(config: AblateConfig, variant: str) -> None:
    stale = stale_runs(config, variant)
    if stale:
        raise ConfigError(
            f"study={config.study!r} already holds runs trained with other settings, e.g. {stale[0]}; "
            f"they will not be mixed: choose a new study name (study=NAME) or move the old runs away"
        )


def check_study(overrides: Sequence[str]) -> list[tuple[Variant, AblateConfig]]:
    """Every variant the command line would train with its config, each checked; raises on the first bad one."""
    check_arguments(overrides, {})  # sweep syntax first: Hydra's own message for it is about --multirun
    composed = compose_config(overrides)
    factors = sweep_factors(composed)
    check_arguments(overrides, factors)
    app = composed.copy()
    with open_dict(app):
        del app["hydra"]
    baseline = {key: OmegaConf.select(app, key) for key in factors}
    checked = []
    for variant in plan_variants(baseline, factors) if factors else [Variant(variant_from_overrides(overrides))]:
        variant_cfg = app.copy()
        if variant.key is not None:
            OmegaConf.update(variant_cfg, variant.key, variant.value)
        config: AblateConfig = OmegaConf.to_object(variant_cfg)  # type: ignore[assignment]
        validate(config)
        _refuse_stale(config, variant.name)
        checked.append((variant, config))
    if "model.transfer" not in factors:
        _refuse_unused_weights(checked[0][1])
    checked += _sources(checked)
    for config in {c.model.weights: c for _, c in checked if c.model.transfer != "scratch" and not needs_source(c)}.values():
        check_weights(config.model, config.seeds, *input_spec(config.data))
    for data in {repr(c.data): c.data for _, c in checked}.values():
        load_dataset(data)  # files, checksums, shapes, classes and subset sizes, before any training
    try:
        results.check_writable(checked[0][1].runs_dir)
    except OSError as error:
        raise ConfigError(f"runs_dir={checked[0][1].runs_dir!r}: cannot write there ({error.strerror or error})") from None
    results.check_locking(checked[0][1].runs_dir)  # RunLock's flock must keep other processes out
    return checked


def _refuse_unused_weights(config: AblateConfig) -> None:
    """model.weights without a transfer strategy would be silently ignored; say so instead (a transfer sweep's
    scratch baseline is the one place where it is meant)."""
    if config.model.weights and config.model.transfer == "scratch":
        raise ConfigError(
            f"model.weights={config.model.weights} is not used with model.transfer=scratch (random init); "
            "choose model.transfer=frozen, partial or finetune, or drop model.weights"
        )


def _sources(checked: list[tuple[Variant, AblateConfig]]) -> list[tuple[Variant, AblateConfig]]:
    """The pretraining runs that model.weights=pretrain variants need, checked like variants (study <study>.source)."""
    needing = [config for _, config in checked if needs_source(config)]
    if not needing:
        return []
    source = source_config(needing[0])
    validate(source)
    _refuse_stale(source, BASELINE)
    return [(Variant(BASELINE), source)]


TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "text"}
ITEM_WORDS = {int: "integers", float: "numbers", bool: "booleans", str: "strings"}


def expected_type(full_key: str) -> str:
    """What the schema accepts at a dotted key, in words ('an integer or null'), or '' for an unknown key."""
    node: Any = AblateConfig
    for part in re.sub(r"\[\d+\]", "", full_key).split("."):
        hints = typing.get_type_hints(node) if dataclasses.is_dataclass(node) else {}
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
                keys = list(OmegaConf.structured(node).keys()) if node is not None else []
                message = f"no such key; {(parent or 'the config') + ' has'}: {', '.join(keys)}"
            return f"{item.full_key}: {message}"
    if isinstance(error, MissingConfigException):
        text = " ".join(str(error).split())
        return text.replace("Available options in", "; available options in").replace("Config search path:", "").split("provider=")[0].strip()
    return " ".join(str(error).split())
