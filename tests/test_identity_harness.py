"""Identity proven by training, not by a list: every key of the schema (read from the dataclasses, so a key added
later is walked without editing this file), in each setting that makes it matter, is changed to another allowed
value and a tiny deterministic run (CPU, fp32, eager, two steps) is trained through the runner. Equal identities
must give bit-equal metrics.json and history.csv numbers, and different identities different numbers (a key that
is identity but changes nothing is a refusal without a cause). Keys the harness cannot change say why in
CANNOT_CHANGE."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import shutil
import sys
import typing
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np
import pytest
import torch
from conftest import image_folder
from PIL import Image

from ablate.config import CHOICES, AblateConfig, DataConfig, ModelConfig, TrainConfig
from ablate.store import results
from ablate.study import identity as ident
from ablate.study import plan
from ablate.study.variants import BASELINE, Variant
from ablate.training.runner import run_variant

BASE = AblateConfig(
    data=DataConfig(name="synthetic", train_size=64, test_size=32, image_size=8, num_classes=3),
    train=TrainConfig(epochs=1, batch_size=32, strategy="eager", checkpoint_every=0),
    seeds=[0], device="cpu", precision="fp32", study="h",
)
# Values the generic rule (next choice, flipped bool, +1, half, a short list) would make invalid or show nothing with.
ALTERNATIVES: dict[str, Any] = {
    "model.kernel_size": 5, "model.max_width": 32, "model.min_map_size": 8, "model.weights": "w.pt",
    "data.classes": [0, 1], "data.validation_size": 16, "data.train_size": 48, "train.optimizer": "sgd",
    "pretrain.classes": [0, 1], "pretrain.train_size": 32, "variant": "other", "seeds": [0, 1],
    "train.seeds_per_group": 1, "logger.tracking_uri": "sqlite:///x.db",
    "train.warmup_epochs": 0.5,  # one of the two batches: 0.25 epochs would warm up over none
    "tune.grid": {"train.lr": [0.01]}, "tune.seeds": [7], "variance.sources": ["init", "order"],
    **{f"seed_streams.{name}": 5 for name in ("init", "order", "augment", "dropout")},
}
# Keys the harness does not change, with the reason; every other key of the schema is walked.
CANNOT_CHANGE = {
    "runs_dir": "every case trains in a runs_dir of its own, so each case already changes it",
    "logger.name": "a tracker logs after the run's files are written and needs its optional package; the other logger.* keys are walked",
}
# Keys the synthetic setting leaves to a setting where they can take another value.
ELSEWHERE = ("model.transfer", "model._target_", "model.params", "seed_streams.split")
# A case: key, how it changes ('' = to another value), the change (base config, its folder -> changed config), and
# optionally a base of its own (base config, its folder -> config), trained first in place of the setting's base.
Change = Callable[[AblateConfig, Path], AblateConfig]
Case = tuple[str, str, Change, Optional[Change]]


def _get(cfg: AblateConfig, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    return node


def _set(cfg: Any, key: str, value: Any) -> Any:
    head, _, rest = key.partition(".")
    if isinstance(cfg, dict):
        return {**cfg, head: _set(cfg[head], rest, value) if rest else value}
    return replace(cfg, **{head: _set(getattr(cfg, head), rest, value) if rest else value})


def schema_keys(node: type = AblateConfig, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, type) of every leaf of the schema; `model` is the built-in ModelConfig (typed Any for your own network)."""
    hints = typing.get_type_hints(node)
    for field in dataclasses.fields(node):
        kind = ModelConfig if (node is AblateConfig and field.name == "model") else hints[field.name]
        if dataclasses.is_dataclass(kind):
            yield from schema_keys(kind, f"{prefix}{field.name}.")
        else:
            yield f"{prefix}{field.name}", kind


def other_value(cfg: AblateConfig, key: str, alternatives: Optional[dict[str, Any]] = None) -> Any:
    """Another allowed value of `key`: the setting's or ALTERNATIVES', else the next allowed word, the other bool,
    +1, half, or a longer word."""
    given = {**ALTERNATIVES, **(alternatives or {})}
    if key in given:
        return given[key]
    kind = dict(schema_keys())[key]
    value = _get(cfg, key)
    if key in CHOICES:
        return next(word for word in CHOICES[key] if word != value)
    base = next((a for a in typing.get_args(kind) if a is not type(None)), kind)
    if base is bool:
        return not value
    if base is int:
        return 1 if value is None else value + 1
    if base is float:
        return value / 2 if value else 0.25
    if base is str:
        return f"{value or ''}x"
    raise AssertionError(f"{key}: give it a value in ALTERNATIVES (no rule makes another {kind!r})")


def _changed(key: str, value: Any, how: str = "") -> Case:
    return key, how, lambda cfg, where: _set(cfg, key, value), None


def _walk(cfg: AblateConfig, keys: Iterator[str], alternatives: Optional[dict[str, Any]] = None) -> list[Case]:
    return [_changed(key, other_value(cfg, key, alternatives)) for key in keys]


# ---- the settings, each with the keys it makes matter ------------------------------------------------------------

OWN_NETWORK = '''
from torch import nn


class Net(nn.Module):
    def __init__(self, in_channels, num_classes, hidden=8, dropout=0.0):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_channels, hidden, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten(), nn.Dropout(dropout), nn.Linear(hidden, num_classes))

    def forward(self, x):
        return self.body(x)


class Wide(Net):
    def __init__(self, in_channels, num_classes, hidden=8, dropout=0.0):
        super().__init__(in_channels, num_classes, 2 * hidden, dropout)
'''


@dataclasses.dataclass
class Setting:
    """A base config and the cases that change one key of it."""

    name: str
    base: AblateConfig
    cases: list[Case]


def settings(files: Path) -> list[Setting]:
    """Every setting the harness trains in, with its cases (files: where its image folders and weights live)."""
    walked = (key for key, _ in schema_keys() if key not in CANNOT_CHANGE and not key.startswith(ELSEWHERE))
    data_keys = ("data.train_size", "data.test_size", "data.subset_seed", "data.validation_size", "data.classes",
                 "data.image_size", "data.channels", "data.num_classes")
    folder = replace(BASE, data=DataConfig(name="folder", root=str(files / "images"), image_size=8, channels=1))
    mnist = replace(BASE, data=DataConfig(name="mnist", train_size=64, test_size=32))
    weights = replace(BASE, model=replace(BASE.model, transfer="frozen", weights=str(files / "w.pt")))
    run = replace(BASE, model=replace(BASE.model, transfer="finetune", weights=str(files / "source" / "seed=0")))
    pretrained = replace(BASE, model=replace(BASE.model, transfer="frozen", weights="pretrain"),
                         pretrain=replace(BASE.pretrain, epochs=1, train_size=64))
    vectorized = replace(BASE, model=replace(BASE.model, dropout=0.5), train=replace(BASE.train, strategy="vectorized"), seeds=[0, 1])
    own = replace(BASE, model=ModelConfig(_target_="identity_net.Net", params={"hidden": 8, "dropout": 0.0}))
    return [
        Setting("synthetic", BASE, _walk(BASE, walked) + [
            _changed("train.schedule", "onecycle", "onecycle"), _changed("train.schedule", "step", "step"),
        ]),
        Setting("cosine", _set(BASE, "train.schedule", "cosine"), [_changed("train.warmup_epochs", 0.5, "warm-up before a schedule")]),
        Setting("folder", folder, _walk(folder, data_keys, {"data.train_size": 16, "data.test_size": 8, "data.validation_size": 4}) + [
            _changed("data.root", str(files / "images-copy"), "a copy of the same images"),
            _changed("data.root", str(files / "other-images"), "other images"),
            ("data.root", "one image changed in place", _edit_image, _own_images),
        ]),
        Setting("mnist", mnist, _walk(mnist, ("data.subset_seed", "data.validation_size", "data.classes", "data.image_size", "data.root",
                                              "seed_streams.split"))),
        Setting("sgd", _set(BASE, "train.optimizer", "sgd"), [_changed("train.momentum", 0.5)]),
        Setting("augment", _set(BASE, "train.augment", "shift"), [_changed("train.augment_pixels", 1), _changed("seed_streams.augment", 5)]),
        Setting("gap head", _set(BASE, "model.head", "gap"), [_changed("model.hidden", 64)]),
        Setting("weights file", weights, [
            _changed("model.transfer", "finetune"),
            _changed("model.weights", str(files / "copy" / "w.pt"), "the same file elsewhere"),
            _changed("model.weights", str(files / "other.pt"), "other weights"),
            ("model.weights", "the file's content changed in place", _edit_weights, _own_weights),
            _changed("train.finetune_lr_decay", 0.25, "unused under frozen"),
        ]),
        Setting("weights of a run", run, [
            _changed("model.weights", str(files / "source-copy" / "seed=0"), "the same run elsewhere"),
            _changed("train.finetune_lr_decay", 0.25),
        ]),
        Setting("pretrain", pretrained, [
            _changed("pretrain.classes", [0, 1]), _changed("pretrain.train_size", 32), _changed("pretrain.epochs", 2),
        ]),
        Setting("vectorized dropout", vectorized, [_changed("seeds", [0, 1, 2]), _changed("train.seeds_per_group", 1),
                                                   _changed("seed_streams.dropout", 5)]),
        Setting("own network", own, [
            _changed("model._target_", "identity_net.Wide"), _changed("model.params.hidden", 4),
            _changed("model.params.dropout", 0.5),
        ]),
    ]


def _own_images(cfg: AblateConfig, where: Path) -> AblateConfig:
    """The setting's images copied into the case's folder, so they can be changed there."""
    return _set(cfg, "data.root", shutil.copytree(cfg.data.root, where / "images"))


def _edit_image(cfg: AblateConfig, where: Path) -> AblateConfig:
    """One training image of the case's own folder inverted; the config stays as it was."""
    image = where / "images" / "train" / "0" / "0.png"
    Image.fromarray(255 - np.asarray(Image.open(image)), mode="L").save(image)
    return cfg


def _own_weights(cfg: AblateConfig, where: Path) -> AblateConfig:
    """The setting's weights file copied into the case's folder (other weights beside it), so its content can be
    changed there."""
    shutil.copy(Path(cfg.model.weights).with_name("other.pt"), where / "other.pt")
    return _set(cfg, "model.weights", str(shutil.copy(cfg.model.weights, where / "w.pt")))


def _edit_weights(cfg: AblateConfig, where: Path) -> AblateConfig:
    """The case's weights file overwritten by other weights; the config stays as it was."""
    shutil.copy(where / "other.pt", where / "w.pt")
    return cfg


# ---- training and reading the numbers ----------------------------------------------------------------------------

def numbers(folder: Path) -> dict[str, Any]:
    """What a run measured: metrics.json's numbers (not its clock) and history.csv's rows (not the seconds column)."""
    record = json.loads((folder / results.METRICS_FILE).read_text())
    assert record["status"] == "ok", record["error"]
    kept = {key: value for key, value in record.items() if isinstance(value, (int, float)) and not isinstance(value, bool)
            and not key.endswith("seconds")}
    with (folder / results.HISTORY_FILE).open() as handle:
        rows = [{key: value for key, value in row.items() if key != "seconds"} for row in csv.DictReader(handle)]
    return {**kept, "history": rows}


def train(cfg: AblateConfig, runs_dir: Path) -> tuple[str, dict[str, Any]]:
    """Train seed 0 of `cfg` in runs_dir as a job would; its planned identity hash and its numbers, after checking
    that the identity derived again from the stored run is the planned one."""
    cfg = replace(cfg, runs_dir=str(runs_dir))
    variant = plan.plan_variant(cfg, Variant(cfg.variant or BASELINE))
    run_variant(variant)
    folder = variant.runs[0].folder
    assert variant.runs[0].seed == 0
    stored = ident.stored_identity(folder, json.loads((folder / results.METRICS_FILE).read_text()))
    assert ident.identity_hash(stored) == variant.identity_hash, "the stored run's identity is not the planned one"
    return variant.identity_hash, numbers(folder)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Image folders, weights files and a source run the settings read, and your own network's module on sys.path."""
    root = tmp_path_factory.mktemp("harness-files")
    image_folder(root / "images", 0)
    shutil.copytree(root / "images", root / "images-copy")
    image_folder(root / "other-images", 1)
    torch.manual_seed(1)
    from ablate.networks.network import build_model

    for name, seed in (("w.pt", 1), ("other.pt", 2)):
        torch.manual_seed(seed)
        torch.save(build_model(BASE.model, (1, 8, 8), 3).state_dict(), root / name)
    (root / "copy").mkdir()
    shutil.copy(root / "w.pt", root / "copy" / "w.pt")
    source = plan.plan_variant(replace(BASE, runs_dir=str(root / "runs"), study="source"), Variant(BASELINE))
    run_variant(source)
    shutil.copytree(source.runs[0].folder.parent, root / "source")
    shutil.copytree(source.runs[0].folder.parent, root / "source-copy")
    (root / "identity_net.py").write_text(OWN_NETWORK)
    sys.path.insert(0, str(root))
    yield root
    sys.path.remove(str(root))


class Harness:
    """Trains each setting's base once and each case once, in folders of their own."""

    def __init__(self, files: Path, where: Path) -> None:
        self.files, self.where = files, where
        self.settings = {setting.name: setting for setting in settings(files)}
        self.bases: dict[str, tuple[str, dict[str, Any]]] = {}

    def base(self, name: str) -> tuple[str, dict[str, Any]]:
        """The identity hash and numbers of a setting's base run, trained on first use."""
        if name not in self.bases:
            self.bases[name] = train(self.settings[name].base, self.where / name.replace(" ", "-") / "base")
        return self.bases[name]


CASES = [(s.name, key, how) for s in settings(Path("files")) for key, how, _, _ in s.cases]
IDS = [f"{s}:{k}{':' + h if h else ''}" for s, k, h in CASES]
PARAMS = [pytest.param(*case, id=name) for case, name in zip(CASES, IDS)]
# The one place equal identities give equal numbers only to float rounding: a vectorized group's size decides which
# batched kernels compute each seed (their summation order), so the same seed's loss may differ in the 7th digit
# beside other seeds. Masks, order and init are its own (bit-equal training loss); everything else is bit-equal.
ROUNDING_ONLY = {("vectorized dropout", "seeds"), ("vectorized dropout", "train.seeds_per_group")}


def close(mine: Any, theirs: Any) -> bool:
    """Equal up to float rounding (relative 1e-6), numbers written as text included."""
    if isinstance(mine, dict) and isinstance(theirs, dict):
        return mine.keys() == theirs.keys() and all(close(mine[k], theirs[k]) for k in mine)
    if isinstance(mine, list) and isinstance(theirs, list):
        return len(mine) == len(theirs) and all(close(a, b) for a, b in zip(mine, theirs))
    try:
        return math.isclose(float(mine), float(theirs), rel_tol=1e-6)
    except (TypeError, ValueError):
        return mine == theirs


@pytest.fixture(scope="module")
def harness(files: Path, tmp_path_factory: pytest.TempPathFactory) -> Harness:
    """One harness for the module: the settings' base runs are shared by their cases."""
    return Harness(files, tmp_path_factory.mktemp("harness-runs"))


def test_every_schema_key_is_walked_or_says_why_not() -> None:
    walked = {key for _, key, _ in CASES}
    schema = {key for key, _ in schema_keys()}
    missing = {key for key in schema - set(CANNOT_CHANGE) if not any(w == key or w.startswith(f"{key}.") for w in walked)}
    assert not missing, f"keys no setting changes and CANNOT_CHANGE does not explain: {sorted(missing)}"
    assert set(CANNOT_CHANGE) <= schema, "CANNOT_CHANGE names a key the schema does not have"


@pytest.mark.parametrize(("setting", "key", "how"), PARAMS)
def test_identity_is_equal_exactly_when_the_numbers_are(harness: Harness, setting: str, key: str, how: str) -> None:
    _, _, change, own_base = next(case for case in harness.settings[setting].cases if case[:2] == (key, how))
    where = harness.where / setting.replace(" ", "-") / f"{key}-{how}".replace(" ", "-")
    where.mkdir(parents=True)
    base = harness.settings[setting].base
    if own_base is None:
        base_hash, base_numbers = harness.base(setting)
    else:
        base = own_base(base, where)
        base_hash, base_numbers = train(base, where / "base")
    changed_hash, changed_numbers = train(change(base, where), where / "runs")
    what = f"{setting}: {key} ({how or 'another value'})"
    if base_hash == changed_hash and (setting, key) in ROUNDING_ONLY:
        assert close(changed_numbers, base_numbers), f"{what} changes the numbers beyond rounding but not the identity"
    elif base_hash == changed_hash:
        assert changed_numbers == base_numbers, f"{what} changes the numbers but not the identity"
    else:
        assert changed_numbers != base_numbers, f"{what} changes the identity but no number: a refusal without a cause"


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_seeds_numbers_beside_other_seeds_agree_to_rounding_in_fp32_and_bf16_is_refused_for_groups(precision: str) -> None:
    """The group-size case in both precisions, at the engine (which takes any precision): seed 0 trained alone and in
    a group of 3 agree to float rounding in fp32, which is why `seeds` and `train.seeds_per_group` are ROUNDING_ONLY;
    in bf16 they do not, which is why resolve.py refuses vectorized bf16 (ONLY_EAGER_PRECISIONS)."""
    from ablate.data.datasets import load_dataset
    from ablate.training.engine import train_vectorized

    data = load_dataset(DataConfig(name="synthetic", train_size=256, test_size=64, image_size=16))
    train_cfg = TrainConfig(epochs=2, batch_size=32)

    def losses(seeds: list[int]) -> torch.Tensor:
        steps: list[torch.Tensor] = []
        train_vectorized(ModelConfig(), train_cfg, data, seeds, torch.device("cpu"), precision, lambda _, loss: steps.append(loss[0].clone()))
        return torch.stack(steps).double()

    alone, grouped = losses([0]), losses([0, 1, 2])
    relative = ((alone - grouped).abs() / alone.abs()).max().item()
    if precision == "fp32":
        assert relative <= 1e-6, f"seed 0 beside two others moves its loss by {relative:.1e} relative in fp32"
    else:
        assert relative > 1e-6, f"vectorized bf16 no longer depends on the group ({relative:.1e}): the refusal can go"
        with pytest.raises(Exception, match="precision=bf16"):
            from ablate.study.resolve import resolve

            resolve(replace(BASE, precision="bf16", train=replace(BASE.train, strategy="vectorized")))
