"""The plan of a command: its overrides turned, once, into every run it means, each fully described.

A run spec holds the study, the variant (its name and the overrides that make it), the seed, the typed config,
what `auto` resolved to, the run's identity and its folder. `ablate run` plans, checks and hands each variant to
its job as a serialised spec (`job_spec`); the sweeper launches those jobs and plans nothing; each job verifies
its spec where it runs (`job_plan`), resolving `auto` there. `--dry-run` prints the plan (ablate/study/status.py) and `inspect` reads it.
Planning writes no file and reads no image: it composes configs and computes (docs/DESIGN.md lists what it reads).
"""

from __future__ import annotations

import base64
import functools
import json
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, ValueType
from omegaconf import DictConfig, OmegaConf, open_dict

from ablate.config import (AUTO_SEEDS, AblateConfig, ConfigError, complete, format_value, key_type, no_such_key, refuse_unknown_keys, register_schema, schema_typed,
                           to_node, typed, validate)
from ablate.data.catalog import input_spec
from ablate.networks.network import Description, Network, create_network
from ablate.store import results
from ablate.study import gpu_share, identity, launchers, resolve, variance
from ablate.study.designs import DESIGNS, design_variants
from ablate.study.variants import BASELINE, Variant, make_variant, one_off_keys, plan_variants

CONFIG_MODULE, CONFIG_NAME = "ablate.conf", "config"
ROLES = ("study", "source")  # a variant of the study, or the pretraining run a transfer variant starts from
# The environment variable (set through hydra.job.env_set, so it rides with the job to any launcher's worker)
# that holds a job's planned variant.
SPEC_VARIABLE = "ABLATE_JOB_SPEC"


def setup_hydra() -> None:
    """Register ablate's schema, resolver and sweeper with Hydra; needed once per process before composing."""
    from hydra_plugins.ablate_sweeper.ablate_sweeper import register as register_sweeper

    register_schema()
    OmegaConf.register_new_resolver("ablate.gpus_per_job", gpu_share.gpus_per_job, replace=True)
    register_sweeper()


def search_path(config_dir: str) -> str:
    """The override that adds a folder of the user's configs (`--config-dir DIR`, e.g. DIR/model/mynet.yaml) to
    Hydra's search path, as Hydra's own --config-dir does for the jobs."""
    folder = Path(config_dir).resolve()
    if not folder.is_dir():
        raise ConfigError(f"--config-dir {config_dir}: no such folder; give the folder that holds your config groups, e.g. myconf with myconf/model/mynet.yaml")
    return f"hydra.searchpath=[file://{folder}]"


def compose_config(overrides: Sequence[str], config_dir: Optional[str] = None) -> DictConfig:
    """The config a command line composes to, Hydra's own `hydra` node included; sweeps (`key=a,b`) left out; the
    configs of `config_dir` (Hydra's --config-dir) found beside ablate's own."""
    setup_hydra()
    GlobalHydra.instance().clear()  # a previous in-process Hydra run may have left it initialised
    plain = [override.input_line for override in _parse(overrides) if not override.is_sweep_override()]
    plain += [search_path(config_dir)] if config_dir else []
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        return compose(CONFIG_NAME, overrides=plain, return_hydra_config=True)


def _parse(overrides: Sequence[str]) -> list[Override]:
    return OverridesParser.create().parse_overrides(list(overrides))


def _sweep_values(override: Override) -> list[Any]:
    if override.value_type == ValueType.GLOB_CHOICE_SWEEP or override.is_hydra_override():
        raise ConfigError(f"{override.input_line}: a factor lists its values, e.g. model.depth=2,3,5 (no glob, no hydra.* keys)")
    return list(override.sweep_iterator())


def factors_of(composed: DictConfig, overrides: Sequence[str]) -> dict[str, list[Any]]:
    """The study's factors: the sweep file's (`+sweep=NAME`), then every `key=v1,v2` of the command line (which
    replaces a sweep file's values for the same key). A factor also set to one value is refused."""
    from_file = OmegaConf.select(composed, "hydra.sweeper.factors", default=None)
    factors: dict[str, list[Any]] = OmegaConf.to_container(from_file) if from_file is not None else {}  # type: ignore[assignment]
    parsed = _parse(overrides)
    factors.update({o.get_key_element().lstrip("+~"): _sweep_values(o) for o in parsed if o.is_sweep_override()})
    for override in parsed:
        key = override.get_key_element().lstrip("+~")
        if key in factors and not override.is_sweep_override():
            raise ConfigError(f"{key} is a factor this study varies; drop {override.input_line}, or list it as {key}=a,b")
    own_network = OmegaConf.select(composed, "model._target_", default=None) is not None
    for key, values in factors.items():  # your own network's keys are its constructor's to accept, when the plan is checked
        if key_type(key) is None and not (own_network and key.startswith("model.")):
            raise ConfigError(f"{no_such_key(key)} (a factor must be a key of the config)")
        if key == "seeds":
            listed = ",".join(format_value(value) for value in values)
            raise ConfigError(f"seeds={listed} is not allowed; seeds are no factor (every variant trains every seed): "
                              f"list them in brackets, seeds=[{listed}]")
        refuse_loose_booleans(key, values)
    return factors


def refuse_loose_booleans(key: str, values: Sequence[Any]) -> None:
    """A true/false key takes true or false only: OmegaConf would read yes, on or 1 as true, silently."""
    loose = [value for value in values if not isinstance(value, bool)]
    if key_type(key) in (bool, Optional[bool]) and loose:
        raise ConfigError(f"{key}={format_value(loose[0])} is not allowed; write true or false")


def refuse_loose_values(overrides: Sequence[str]) -> None:
    """The command line's single values checked before Hydra converts them (see `refuse_loose_booleans`)."""
    for override in _parse(overrides):
        if not override.is_sweep_override() and not override.is_delete():
            refuse_loose_booleans(override.get_key_element().lstrip("+~"), [override.value()])


def typed_value(app: DictConfig, key: str, value: Any) -> Any:
    """A factor's value as the schema types it (`0` at a float key is 0.0), so equal values make one variant: by the
    schema's section alone where it can (`schema_typed`, a whole config's merge costing some 0.1 s a value), else in
    the whole config (your own network's keys, kept as written for its constructor to type)."""
    own_network = key.startswith("model.") and OmegaConf.select(app, "model._target_", default=None) is not None
    done, typed = (False, value) if own_network else schema_typed(key, value)
    if done:
        return typed
    node = app.copy()
    OmegaConf.update(node, key, value)
    return OmegaConf.select(complete(node), key)


def study_variants(composed: DictConfig, overrides: Sequence[str], config_dir: Optional[str] = None) -> list[Variant]:
    """Every variant a command line trains: one factor at a time around the config's own values when it has
    factors (or the points of a two-level design, `+design=factorial|fractional`), else the one variant its model
    overrides make, less those equal to the config's own without them (`config_dir`: Hydra's --config-dir). Values are
    typed first (through the schema; your network's keys as its constructor declares them), so `0` and `0.0` are one
    value."""
    factors = factors_of(composed, overrides)
    app = composed.copy()
    with open_dict(app):
        app.pop("hydra", None)
    network = functools.cache(lambda: _network(app))  # made once, when a model key is first typed

    def declared(key: str, value: Any) -> Any:  # typed by the schema, and your network's keys as its constructor takes them
        value = typed_value(app, key, value)
        return network().declared(key.removeprefix("model."), value) if key.startswith("model.") else value

    typed_factors = {key: [declared(key, value) for value in values] for key, values in factors.items()}
    config_values = {key: declared(key, OmegaConf.select(app, key)) for key in factors}
    design = OmegaConf.select(composed, "hydra.sweeper.design", default=DESIGNS[0])
    if design != DESIGNS[0]:
        return design_variants(config_values, typed_factors, design, OmegaConf.select(composed, "hydra.sweeper.resolution", default=None))
    _refuse_empty_sweep(composed, config_values, typed_factors)
    if factors:
        return plan_variants(config_values, typed_factors)
    one_off = {key: declared(key, OmegaConf.select(app, key)) for key in one_off_keys(overrides)}
    baseline = _baseline_of_one_off(overrides, config_dir) if one_off else app
    return [make_variant({key: value for key, value in one_off.items()
                          if OmegaConf.select(baseline, key, default=None) is None or value != declared(key, OmegaConf.select(baseline, key))})]


def _baseline_of_one_off(overrides: Sequence[str], config_dir: Optional[str]) -> DictConfig:
    """The config without a one-off run's model overrides: a one-off value equal to its own (model.depth=2,
    model.dropout=0) is the baseline, not a new variant."""
    keys = one_off_keys(overrides)
    baseline = compose_config([o for o in overrides if o.partition("=")[0].lstrip("+~") not in keys], config_dir)
    with open_dict(baseline):
        baseline.pop("hydra")
    return baseline


def _refuse_empty_sweep(composed: DictConfig, baseline: Mapping[str, Any], factors: Mapping[str, Sequence[Any]]) -> None:
    """A sweep that would train the baseline alone is refused: a sweep file without factors, or a factor whose
    values are all the baseline's own."""
    sweep = OmegaConf.select(composed, "hydra.runtime.choices.sweep", default=None)
    if sweep is not None and not factors:
        raise ConfigError(f"+sweep={sweep} varies nothing: its file lists no factors (hydra.sweeper.factors: {{KEY: [values]}})")
    for key, values in factors.items():
        if all(value == baseline[key] for value in values):
            raise ConfigError(f"{key}={','.join(format_value(v) for v in values)} lists only the baseline's own value "
                              f"({format_value(baseline[key])}), so it varies nothing; add another value")


def _network(app: DictConfig) -> Network:
    """The network of a composed config's own values, once they are valid (the baseline, or a one-off run's)."""
    config = typed(app)
    validate(config)
    return create_network(config.model, *input_spec(config.data))


@dataclass(frozen=True)
class RunSpec:
    """One run: which seed of which variant, where it lives, and (through its variant plan) how it trains."""

    variant: "VariantPlan"
    seed: int
    folder: Path


def seeds_of(config: AblateConfig) -> list[int]:
    """The seeds a config may train: its list, or under seeds=auto every seed of the budget (0 .. budget - 1)."""
    return list(range(config.adaptive.budget)) if config.seeds == AUTO_SEEDS else list(config.seeds)


@dataclass(frozen=True)
class VariantPlan:
    """A variant with its config (all seeds), what auto resolved to, its identity and hash, and its runs; under
    seeds=auto, `batch` names the seeds one round trains (`with_batch`); `deferred` when each job resolves `auto`
    where it runs (a launcher that runs jobs elsewhere): `resolved` then holds the values as requested."""

    role: str
    variant: Variant
    config: AblateConfig
    resolved: resolve.Resolved
    identity: Mapping[str, Any]
    identity_hash: str
    batch: Optional[tuple[int, ...]] = None
    deferred: bool = False

    @property
    def study(self) -> str:
        """The study this variant belongs to (a source run's is `<study>.source`)."""
        return self.config.study

    @property
    def runs(self) -> list[RunSpec]:
        """One spec per seed, in the config's seed order (the batch's, when one is set)."""
        seeds = seeds_of(self.config) if self.batch is None else self.batch
        return [RunSpec(self, seed, results.run_dir(self.config.runs_dir, self.study, self.variant.name, seed)) for seed in seeds]

    @functools.cached_property
    def network(self) -> Description:
        """The variant's network described (layers, parameters, receptive field, FLOPs; see networks/network.py),
        once per process that asks: the job that trains the variant records it in every run's metrics.json and the
        engine plans a vectorized group's memory from it. A plan that only lists runs never builds it."""
        return create_network(self.config.model, *input_spec(self.config.data)).describe()

    def with_batch(self, seeds: Sequence[int]) -> "VariantPlan":
        """The same variant training only these seeds (one round of seeds=auto)."""
        return replace(self, batch=tuple(seeds))


@dataclass(frozen=True)
class Plan:
    """Everything one command trains: the study's variants, then the pretraining runs they need; `multirun` when
    Hydra sweeps them (a factor or a sweep file), else its one variant is a single run; `hydra`, the command line's
    composed `hydra` node, says where its jobs run and how they log (a phase of it, a seeds=auto round or a +tune
    phase, launches with its command's)."""

    variants: tuple[VariantPlan, ...]
    multirun: bool = False
    notes: tuple[str, ...] = ()  # lines the dry run prints under its header (a variance study's streams left out)
    hydra: Optional[DictConfig] = field(default=None, compare=False)

    @property
    def study(self) -> VariantPlan:
        """The first variant of the study itself (where runs_dir and the study name come from)."""
        return next(v for v in self.variants if v.role == "study")

    @property
    def runs(self) -> list[RunSpec]:
        """Every run of the plan."""
        return [run for variant in self.variants for run in variant.runs]


def plan_variant(config: AblateConfig, variant: Variant, role: str = "study", deferred: bool = False) -> VariantPlan:
    """Validate a variant's config, resolve its `auto` settings (or, `deferred`, leave them to the job) and compute
    its identity."""
    validate(config)
    config = replace(config, model=create_network(config.model, *input_spec(config.data)).declared_config())
    try:
        resolved = resolve.requested(config) if deferred else resolve.resolve(config)
    except ConfigError as error:  # name the variant that cannot have what is asked (train.strategy=vectorized, ...)
        raise ConfigError(f"variant {variant.name}: {error}" if variant.overrides else str(error)) from None
    settings = identity.identity(config, resolved)
    return VariantPlan(role, variant, replace(config, variant=variant.name), resolved, settings, identity.identity_hash(settings), deferred=deferred)


def needs_source(cfg: AblateConfig) -> bool:
    """Whether this variant starts from a backbone that ablate pretrains itself (model.weights=pretrain)."""
    return cfg.model.transfer != "scratch" and cfg.model.weights == "pretrain"


def source_config(cfg: AblateConfig) -> AblateConfig:
    """The pretraining run behind model.weights=pretrain: the same network from scratch on the pretrain.* task,
    stored as study `<study>.source`, variant baseline, one run per seed of the study."""
    return replace(
        cfg, study=f"{cfg.study}.source", variant=BASELINE,
        model=replace(cfg.model, transfer="scratch", weights=None),
        data=replace(cfg.data, classes=cfg.pretrain.classes, train_size=cfg.pretrain.train_size),
        train=replace(cfg.train, epochs=cfg.pretrain.epochs),
    )


def _apply(app: DictConfig, variant: Variant) -> AblateConfig:
    config = app.copy()
    for key, value in variant.overrides:
        OmegaConf.update(config, key, value)
    return typed(config)


def build(overrides: Sequence[str], config_dir: Optional[str] = None) -> Plan:
    """The plan of a command line (with Hydra's --config-dir, if given); raises ConfigError (or Hydra's own error)
    for the first bad setting."""
    refuse_loose_values(overrides)
    composed = compose_config(overrides, config_dir)
    app = composed.copy()
    with open_dict(app):
        del app["hydra"]
    refuse_unknown_keys(app)
    validate(typed(app))  # the command line's own values first: a bad value is named before any factor's conflict
    deferred = launchers.runs_elsewhere(composed.hydra)
    config = typed(app)
    chosen = variance_variants(composed, overrides, config) if variance.enabled(config) else study_variants(composed, overrides, config_dir)
    planned = [plan_variant(_apply(app, variant), variant, deferred=deferred) for variant in chosen]
    if "model.transfer" not in factors_of(composed, overrides):
        _refuse_unused_weights(planned[0].config)
    sources = [v.config for v in planned if needs_source(v.config)]
    if sources:
        planned.append(plan_variant(source_config(sources[0]), Variant(BASELINE), role="source", deferred=deferred))
    multirun = str(OmegaConf.select(composed, "hydra.mode", default="")).endswith("MULTIRUN") or bool(factors_of(composed, overrides))
    return Plan(tuple(planned), multirun, tuple(variance.left_out(config)) if variance.enabled(config) else (), composed.hydra)


def variance_variants(composed: DictConfig, overrides: Sequence[str], config: AblateConfig) -> list[Variant]:
    """+variance=sources: the variants of ablate/study/variance.py around the command line's config; factors, designs,
    +tune, seeds=auto and seed_streams.* values are refused (a variance study sets the seed streams itself)."""
    factors = factors_of(composed, overrides)
    if factors:
        raise ConfigError(f"{next(iter(factors))} is a factor, and +variance=sources varies seed streams only; set one value "
                          "(the config whose spread it measures), or run the factor as a study of its own")
    streams = [key for key in (o.split("=", 1)[0].lstrip("+~") for o in overrides) if key.startswith("seed_streams.")]
    if streams:  # each source's variant sets every stream itself: a value given here would be overwritten
        raise ConfigError(f"{streams[0]} is set by +variance=sources for each source (per seed, or held at variance.fixed); "
                          "leave it out, and choose the streams with variance.sources=[...] and the held value with variance.fixed=N")
    if config.seeds == AUTO_SEEDS or config.tune.grid:
        raise ConfigError(f"{'seeds=auto' if config.seeds == AUTO_SEEDS else '+tune'} is not allowed with +variance=sources; "
                          "it trains a fixed list of seeds per source, e.g. seeds=[0,1,2,3,4]")
    return variance.variants(config)


def _plain(values: Any) -> Any:
    """Values as JSON gives them back (tuples as lists), so a spec and what a job computes compare alike."""
    return json.loads(json.dumps(values, default=str))


def job_spec(variant: VariantPlan) -> str:
    """A planned variant as its job receives it: name, overrides, identity, whether `auto` is the job's to resolve,
    and which runs it trains (study, seeds, and a seeds=auto round's batch, which no command-line key can say: a
    tuning phase's study is `<study>.tune`); compressed JSON in URL-safe base64, which Hydra's override grammar
    passes unchanged."""
    spec = {"variant": variant.variant.name, "overrides": [[key, value] for key, value in variant.variant.overrides],
            "identity": dict(variant.identity), "deferred": variant.deferred, "study": variant.study,
            "seeds": variant.config.seeds if variant.config.seeds == AUTO_SEEDS else [int(s) for s in variant.config.seeds], "batch": None if variant.batch is None else list(variant.batch)}
    return base64.urlsafe_b64encode(zlib.compress(json.dumps(spec, default=str).encode(), 9)).decode()


def spec_override(variant: VariantPlan) -> str:
    """The Hydra override that hands a job its planned variant (`job_spec`) in its environment: a key of
    conf/config.yaml set without `+`, as every launcher's line per job leaves hydra.* overrides out."""
    return f"hydra.job.env_set.{SPEC_VARIABLE}='{job_spec(variant)}'"


def read_spec(text: Optional[str]) -> dict[str, Any]:
    """A job's spec as `job_spec` wrote it; a job started without one (not through `ablate run`) is refused."""
    if not text:
        raise ConfigError(f"{SPEC_VARIABLE}: this job has no planned variant; start studies with `ablate run`")
    return json.loads(zlib.decompress(base64.urlsafe_b64decode(text)))


def job_plan(config: AblateConfig, spec: Mapping[str, Any]) -> VariantPlan:
    """The variant a job was planned to train, verified where it runs: the spec's overrides applied to the job's
    config, `auto` resolved on this machine, and the identity the plan's (but for what `auto` resolved to, where the
    plan left that to the job); a ConfigError names the first key that differs. Nothing is planned again."""
    variant = Variant(spec["variant"], tuple((key, value) for key, value in spec["overrides"]))
    config = replace(config, variant=None, study=spec["study"], seeds=spec["seeds"])
    here = plan_variant(_apply(to_node(config), variant), variant)
    mine, planned = _plain(here.identity), spec["identity"]
    skipped = resolve.RESOLVED_KEYS if spec["deferred"] else frozenset()
    for key in sorted((set(mine) | set(planned)) - skipped):
        if mine.get(key) != planned.get(key):
            raise ConfigError(f"{key}: this job's config gives {mine.get(key)!r} where its plan has {planned.get(key)!r}; "
                              "the job trains nothing (a worker with other configs or files than the submitting host?)")
    return here if spec["batch"] is None else here.with_batch(spec["batch"])


def _refuse_unused_weights(config: AblateConfig) -> None:
    """model.weights without a transfer strategy would be silently ignored; say so instead (a transfer sweep's
    scratch baseline is the one place where it is meant)."""
    if config.model.weights and config.model.transfer == "scratch":
        raise ConfigError(
            f"model.weights={config.model.weights} is not used with model.transfer=scratch (random init); "
            "choose model.transfer=frozen, partial or finetune, or drop model.weights"
        )
