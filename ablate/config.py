"""Typed schema of every key a user can type, and the checks that refuse bad values before training.

The dataclasses are registered with Hydra's ConfigStore, so composition already rejects unknown keys and
wrong types; `validate` adds the range and choice checks that types cannot express. What depends on the machine
(a GPU for device=cuda or fp16, what `auto` means) is ablate/resolve.py's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore

POOLS = ("max", "avg", "strided")
HEADS = ("flatten", "gap")
OPTIMIZERS = ("adam", "adamw", "sgd")
ACTIVATIONS = ("relu", "gelu", "silu")
AUGMENTS = ("none", "shift")
DATASETS = ("mnist", "fashion_mnist", "kmnist", "cifar10", "folder", "synthetic")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
STRATEGIES = ("auto", "eager", "vectorized")
ARCHS = ("cnn", "resnet18")
TRANSFERS = ("scratch", "frozen", "partial", "finetune")

# The model keys that shape ablate's own CNN; model.arch=resnet18 is torchvision's network and ignores them.
CNN_KEYS = ("depth", "width", "kernel_size", "dilation", "pool", "batchnorm", "head", "hidden", "min_map_size", "max_width",
            "dropout", "activation")


# The keys that take one of a few words, with the words in the order reports list their values.
CHOICES = {"model.pool": POOLS, "model.head": HEADS, "model.activation": ACTIVATIONS, "model.arch": ARCHS,
           "model.transfer": TRANSFERS, "train.optimizer": OPTIMIZERS, "train.augment": AUGMENTS, "train.strategy": STRATEGIES, "data.name": DATASETS, "device": DEVICES,
           "precision": PRECISIONS}


class ConfigError(ValueError):
    """A config value that ablate refuses; the message names the key and what is allowed."""


@dataclass
class ModelConfig:
    """The CNN: the baseline is the seed's SimpleCNN; every factor of an ablation is one of these keys."""

    depth: int = 2
    width: int = 32
    kernel_size: int = 3
    dilation: int = 1
    pool: str = "max"
    batchnorm: bool = False
    head: str = "flatten"
    hidden: int = 128
    min_map_size: int = 4
    max_width: int = 256
    dropout: float = 0.0  # dropout before the classifier's last Linear (0: no dropout layer at all)
    activation: str = "relu"  # of every conv block and of the flatten head's hidden layer
    arch: str = "cnn"
    transfer: str = "scratch"
    weights: Optional[str] = None


@dataclass
class DataConfig:
    """Which dataset, and an optional fixed subset of it (the same subset for every seed and variant)."""

    name: str = "mnist"
    train_size: Optional[int] = None
    test_size: Optional[int] = None
    subset_seed: int = 0
    root: str = "data"
    download: bool = False
    image_size: int = 28
    channels: int = 1
    num_classes: int = 10
    classes: Optional[list[int]] = None


@dataclass
class TrainConfig:
    """Hyperparameters held identical across every variant of a study."""

    epochs: int = 5
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    augment: str = "none"  # shift: each training image moved by up to augment_pixels, on the device, per seed
    augment_pixels: int = 2
    # How the engine executes the same training: eager (one seed at a time), vectorized (a variant's seeds as one
    # stacked model), or auto (what measured faster on the device). Recorded in every run; a study uses one.
    strategy: str = "auto"
    seeds_per_group: Optional[int] = None  # vectorized: at most this many seeds at once (null: all, or what fits on a GPU)
    finetune_lr_decay: float = 0.5
    checkpoint_every: int = 1  # epochs between checkpoints of a run still training (0: none); decides no number


@dataclass
class PretrainConfig:
    """The source task of `model.weights=pretrain`: the same network trained first on other classes of the same
    dataset (study `<study>.source`, seed for seed), the way Yosinski et al. (2014) split ImageNet."""

    classes: Optional[list[int]] = None
    train_size: Optional[int] = None
    epochs: int = 2


@dataclass
class AblateConfig:
    """The whole run config: what `ablate run` composes from conf/ and the command line."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    device: str = "auto"
    precision: str = "auto"
    runs_dir: str = "runs"
    study: str = "default"
    variant: Optional[str] = None
    retry_failed: bool = False  # set by `ablate run --retry-failed`: train failed and diverged runs again


def register_schema() -> None:
    """Make the schema available to conf/config.yaml's defaults list as `base_config`."""
    ConfigStore.instance().store(name="base_config", node=AblateConfig)


def _choice(key: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not allowed; choose one of: {', '.join(allowed)}")


def _at_least(key: str, value: Any, low: float, what: str = "an integer") -> None:
    if value < low:
        raise ConfigError(f"{key}={value!r} is not allowed; it must be {what} >= {low:g}")


def validate(cfg: AblateConfig) -> None:
    """Refuse any value that would make a run impossible or meaningless; raise ConfigError."""
    m, d, t = cfg.model, cfg.data, cfg.train
    _at_least("model.depth", m.depth, 1)
    _at_least("model.width", m.width, 1)
    _at_least("model.kernel_size", m.kernel_size, 1)
    if m.kernel_size % 2 == 0:
        raise ConfigError(
            f"model.kernel_size={m.kernel_size} is not allowed; 'same' padding needs an odd size such as 3, 5 or 7"
        )
    _at_least("model.dilation", m.dilation, 1)
    _choice("model.pool", m.pool, POOLS)
    _choice("model.head", m.head, HEADS)
    _at_least("model.hidden", m.hidden, 1)
    _at_least("model.min_map_size", m.min_map_size, 1)
    _at_least("model.max_width", m.max_width, m.width, what=f"an integer no smaller than model.width")
    if not 0 <= m.dropout < 1:
        raise ConfigError(f"model.dropout={m.dropout!r} is not allowed; it must be a probability in [0, 1), e.g. 0.25")
    _choice("model.activation", m.activation, ACTIVATIONS)
    _validate_transfer(cfg)

    _choice("data.name", d.name, DATASETS)
    for key, size in (("data.train_size", d.train_size), ("data.test_size", d.test_size)):
        if size is not None:
            _at_least(key, size, 1, what="null (the whole split) or an integer")
    _at_least("data.image_size", d.image_size, 1)
    _at_least("data.channels", d.channels, 1)
    _at_least("data.num_classes", d.num_classes, 2)
    _check_classes("data.classes", d.classes)

    _at_least("train.epochs", t.epochs, 1)
    _at_least("train.batch_size", t.batch_size, 1)
    if not t.lr > 0:
        raise ConfigError(f"train.lr={t.lr!r} is not allowed; it must be a number > 0")
    _choice("train.optimizer", t.optimizer, OPTIMIZERS)
    _choice("train.strategy", t.strategy, STRATEGIES)
    _choice("train.augment", t.augment, AUGMENTS)
    _at_least("train.augment_pixels", t.augment_pixels, 1)
    _at_least("train.checkpoint_every", t.checkpoint_every, 0, what="0 (no checkpoints) or a number of epochs")
    if t.seeds_per_group is not None:
        _at_least("train.seeds_per_group", t.seeds_per_group, 1, what="null (as many as fit) or an integer")

    if not cfg.seeds:
        raise ConfigError("seeds=[] is not allowed; give at least one seed, e.g. seeds=[0,1,2]")
    if len(set(cfg.seeds)) != len(cfg.seeds):
        raise ConfigError(f"seeds={list(cfg.seeds)} is not allowed; each seed may appear only once")

    _choice("device", cfg.device, DEVICES)
    _choice("precision", cfg.precision, PRECISIONS)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.=+-]*", cfg.study):
        raise ConfigError(
            f"study={cfg.study!r} is not allowed; use letters, digits and . _ = + - (it names a folder under runs_dir)"
        )


def _check_classes(key: str, classes: Optional[list[int]]) -> None:
    if classes is None:
        return
    if len(classes) < 2 or len(set(classes)) != len(classes) or min(classes) < 0:
        raise ConfigError(f"{key}={list(classes)} is not allowed; give null (every class) or two or more distinct labels >= 0, e.g. [5,6,7,8,9]")


def _validate_transfer(cfg: AblateConfig) -> None:
    """model.arch, model.transfer and model.weights fit together; the pretraining task is sound when it is used."""
    m = cfg.model
    _choice("model.arch", m.arch, ARCHS)
    _choice("model.transfer", m.transfer, TRANSFERS)
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
