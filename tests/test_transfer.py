"""Transfer learning: what trains under each strategy, frozen parts stay frozen, weights load from every source,
and the offline `+sweep=transfer` study runs and reports."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import torchvision
from conftest import TINY, checked, run_ablate

from ablate.config import AblateConfig, ConfigError, DataConfig, ModelConfig, TrainConfig, validate
from ablate.data.catalog import DataError
from ablate.data.datasets import Dataset, load_dataset, select_classes
from ablate.networks import transfer
from ablate.networks.cnn import parameter_count
from ablate.networks.network import build_model, create_network
from ablate.networks.weights import check_weights, load_weights
from ablate.training.engine import train_seed
from ablate.training.strategies import make_optimizer

CPU = torch.device("cpu")
GREY = (1, 28, 28)


def prepared(cfg: ModelConfig, shape: tuple[int, int, int] = GREY, classes: int = 10) -> tuple[torch.nn.Module, transfer.Parts]:
    """A network built and set trainable the way the runner and the engine do it."""
    network = create_network(cfg, shape, classes)
    model = network.build()
    parts = network.parts(model)
    transfer.set_trainable(parts, cfg.transfer)
    return model, parts


def resnet_weights(seed: int = 1) -> dict[str, torch.Tensor]:
    """A resnet18 state_dict as a pretrained file would hold it, with BatchNorm statistics far from their init."""
    torch.manual_seed(seed)
    state = torchvision.models.resnet18(num_classes=1000).state_dict()
    for key, tensor in state.items():
        if key.endswith(("running_mean", "running_var")):
            tensor.copy_(torch.rand_like(tensor) * 0.2 + (0.9 if key.endswith("var") else -0.1))
    return state


@pytest.mark.parametrize("strategy", ["scratch", "frozen", "partial", "finetune"])
def test_resnet18_trainable_and_total_parameters_follow_the_seed_table(strategy: str) -> None:
    model, _ = prepared(ModelConfig(arch="resnet18", transfer=strategy))
    layer4 = sum(p.numel() for p in torchvision.models.resnet18().layer4.parameters())
    expected = {"scratch": 11_181_642, "finetune": 11_181_642, "frozen": 5_130, "partial": layer4 + 5_130}[strategy]
    assert parameter_count(model) == 11_181_642
    assert parameter_count(model, trainable_only=True) == expected


@pytest.mark.parametrize("strategy, trainable", [
    ("frozen", 401_536 + 1_290),             # the head: fc1 and fc2 of the seed's layer table
    ("partial", 18_496 + 401_536 + 1_290),   # conv2 (the last block) and the head
    ("finetune", 421_642),
])
def test_simple_cnn_trains_its_head_last_block_or_everything(strategy: str, trainable: int) -> None:
    model, _ = prepared(ModelConfig(transfer=strategy))
    assert parameter_count(model) == 421_642 and parameter_count(model, trainable_only=True) == trainable


def tiny_grey(classes: int = 10) -> Dataset:
    return load_dataset(DataConfig(name="synthetic", train_size=32, test_size=16, image_size=28, num_classes=classes))


def backbone_keys(state: dict[str, torch.Tensor]) -> list[str]:
    return [key for key in state if not key.startswith("fc.")]


def test_frozen_backbone_weights_and_batchnorm_statistics_stay_bit_identical() -> None:
    weights = resnet_weights()
    cfg = ModelConfig(arch="resnet18", transfer="frozen", weights="test")
    result = train_seed(cfg, TrainConfig(epochs=1, batch_size=32), tiny_grey(), 0, CPU, "fp32", weights=weights)
    assert result.status == "ok", result.error
    keys = backbone_keys(weights)
    assert any(k.endswith("running_var") for k in keys) and any(k.endswith("num_batches_tracked") for k in keys)
    assert all(torch.equal(result.state_dict[k], weights[k]) for k in keys)
    torch.manual_seed(0)
    fresh_head = build_model(cfg, GREY, 10).fc.weight  # the head starts from the seed's own init...
    assert result.state_dict["fc.weight"].shape == (10, 512) and not torch.equal(result.state_dict["fc.weight"], fresh_head)  # ...and trains


def test_partial_trains_only_the_last_stage_and_the_head() -> None:
    weights = resnet_weights()
    cfg = ModelConfig(arch="resnet18", transfer="partial", weights="test")
    result = train_seed(cfg, TrainConfig(epochs=1, batch_size=32), tiny_grey(), 0, CPU, "fp32", weights=weights)
    below = [k for k in backbone_keys(weights) if not k.startswith("layer4.")]
    assert all(torch.equal(result.state_dict[k], weights[k]) for k in below)
    assert not torch.equal(result.state_dict["layer4.1.conv2.weight"], weights["layer4.1.conv2.weight"])
    assert not torch.equal(result.state_dict["layer4.1.bn2.running_mean"], weights["layer4.1.bn2.running_mean"])


def test_finetune_gives_each_stage_below_the_head_a_smaller_learning_rate() -> None:
    cfg, train = ModelConfig(arch="resnet18", transfer="finetune"), TrainConfig(lr=1e-3, finetune_lr_decay=0.5)
    model, parts = prepared(cfg)
    optimizer = make_optimizer(transfer.parameter_groups(parts, cfg, train), train, CPU)
    assert [group["lr"] for group in optimizer.param_groups] == [1e-3, 5e-4, 2.5e-4, 1.25e-4, 6.25e-5, 3.125e-5]
    grouped = [p for group in optimizer.param_groups for p in group["params"]]
    assert len(grouped) == len({id(p) for p in grouped}) and {id(p) for p in grouped} == {id(p) for p in model.parameters()}
    assert optimizer.param_groups[0]["params"] == [model.fc.weight, model.fc.bias]


def test_finetune_learning_rates_reach_training() -> None:
    weights = resnet_weights()
    cfg = ModelConfig(arch="resnet18", transfer="finetune", weights="test")
    train = TrainConfig(epochs=1, batch_size=32, lr=1e-2, finetune_lr_decay=1e-3)  # the stem trains at 1e-2 x 1e-15
    result = train_seed(cfg, train, tiny_grey(), 0, CPU, "fp32", weights=weights)
    stem_moved = (result.state_dict["conv1.weight"] - weights["conv1.weight"]).abs().max().item()
    top_moved = (result.state_dict["layer4.1.conv2.weight"] - weights["layer4.1.conv2.weight"]).abs().max().item()
    assert stem_moved < 1e-12 < 1e-6 < top_moved


def test_weights_load_from_a_state_dict_file_and_must_fit_the_network(tmp_path: Path) -> None:
    file = tmp_path / "backbone.pt"
    torch.save(resnet_weights(), file)
    loaded = load_weights(str(file), 0, "resnet18")
    assert all(torch.equal(loaded[k], v) for k, v in resnet_weights().items())
    check_weights(ModelConfig(arch="resnet18", transfer="frozen", weights=str(file)), [0], GREY, 10)
    with pytest.raises(ConfigError, match=r"model.weights=.*backbone.pt: has no tensor 'conv1.bias'"):
        check_weights(ModelConfig(transfer="frozen", weights=str(file)), [0], GREY, 10)
    with pytest.raises(ConfigError, match="model.weights=.*missing.pt: no such file or folder"):
        load_weights(str(tmp_path / "missing.pt"), 0, "resnet18")


def test_torchvision_weights_by_name_come_from_the_torch_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    url = torchvision.models.ResNet18_Weights.DEFAULT.url
    checkpoint = tmp_path / "hub" / "checkpoints" / Path(url).name
    checkpoint.parent.mkdir(parents=True)
    torch.save(resnet_weights(3), checkpoint)
    loaded = load_weights("DEFAULT", 0, "resnet18")
    assert torch.equal(loaded["layer1.0.conv1.weight"], resnet_weights(3)["layer1.0.conv1.weight"])
    with pytest.raises(ConfigError, match="not a torchvision resnet18 weights name .*DEFAULT, IMAGENET1K_V1"):
        load_weights("IMAGENET9", 0, "resnet18")


def test_data_classes_keep_those_labels_relabelled_in_the_order_given() -> None:
    labels = torch.arange(10).repeat(3)
    data = Dataset("digits", labels.float().view(-1, 1, 1, 1), labels, labels.float().view(-1, 1, 1, 1), labels, 10)
    kept = select_classes(data, [7, 5, 6])
    assert kept.num_classes == 3 and kept.train_y.tolist() == [1, 2, 0] * 3
    assert kept.train_x.view(-1).tolist() == [5.0, 6.0, 7.0] * 3
    mnist = load_dataset(DataConfig(name="mnist", classes=[5, 6, 7, 8, 9], train_size=500, test_size=200))
    assert len(mnist.train_y) == 500 and set(mnist.train_y.tolist()) == {0, 1, 2, 3, 4} and mnist.num_classes == 5
    with pytest.raises(DataError, match=r"data.classes=\[5, 12\]: synthetic has classes 0..9, not \[12\]"):
        load_dataset(DataConfig(name="synthetic", classes=[5, 12]))


@pytest.mark.parametrize("change, message", [
    ({"model": ModelConfig(transfer="frozen")}, "model.transfer=frozen needs model.weights"),
    ({"model": ModelConfig(arch="resnet18", depth=3)}, "model.depth=3 shapes ablate's own CNN only"),
    ({"model": ModelConfig(transfer="finetuned")}, "model.transfer='finetuned' is not allowed; choose one of: scratch, frozen, partial, finetune"),
    ({"train": TrainConfig(finetune_lr_decay=0.0)}, r"train.finetune_lr_decay=0.0 is not allowed; it must be in \(0, 1\]"),
    ({"data": DataConfig(classes=[3])}, r"data.classes=\[3\] is not allowed"),
])
def test_transfer_settings_that_cannot_work_are_refused(change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate(AblateConfig(**change))


def test_a_missing_weights_file_stops_the_run_before_training(workdir: Path) -> None:
    result = run_ablate("run", "model.transfer=frozen", "model.weights=nowhere/backbone.pt", *TINY, cwd=workdir)
    assert result.returncode == 2 and "model.weights=nowhere/backbone.pt: no such file or folder" in result.stderr
    assert not (workdir / "runs").exists() or not any((workdir / "runs").glob("*/*/seed=*"))


def test_weights_without_a_transfer_strategy_are_refused_not_ignored(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model.weights=w.pt is not used with model.transfer=scratch"):
        checked(["model.weights=w.pt", f"runs_dir={tmp_path}", *TINY])


def test_offline_transfer_sweep_pretrains_then_transfers_and_reports(workdir: Path) -> None:
    study = ["+sweep=transfer", "seeds=[0,1]", *TINY, "data.train_size=128", "pretrain.train_size=256"]
    first = run_ablate("run", *study, cwd=workdir)
    assert first.returncode == 0, first.stderr
    runs = workdir / "runs"
    assert sorted(p.relative_to(runs).as_posix() for p in runs.glob("*/*/seed=*/metrics.json")) == sorted(
        f"transfer{source}/{variant}/seed={seed}/metrics.json"
        for source, variant in [("", "baseline"), ("", "model.transfer=finetune"), ("", "model.transfer=frozen"),
                                ("", "model.transfer=partial"), (".source", "baseline")] for seed in (0, 1))
    source = json.loads((runs / "transfer.source/baseline/seed=1/metrics.json").read_text())
    assert source["train_samples"] == 256 and source["epochs"] == 2
    frozen = json.loads((runs / "transfer/model.transfer=frozen/seed=1/metrics.json").read_text())
    assert frozen["params"] == 150_661 and frozen["trainable_params"] == 64 * 4 * 4 * 128 + 128 + 128 * 5 + 5  # 16x16 input, 5 classes
    # seed 1's frozen backbone is seed 1's pretrained one, loaded from the ablate run, bit for bit
    pretrained = load_weights(str(runs / "transfer.source/baseline"), 1, "cnn")
    trained = torch.load(runs / "transfer/model.transfer=frozen/seed=1/model.pt", weights_only=True)
    assert all(torch.equal(trained[k], pretrained[k]) for k in ("conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias"))
    assert not torch.equal(trained["fc2.weight"][:5], pretrained["fc2.weight"][:5])

    stamps = sorted(p.stat().st_mtime_ns for p in runs.glob("*/*/seed=*/metrics.json"))
    again = run_ablate("run", *study, cwd=workdir)  # resume: pretraining and transfer runs are all found finished
    assert again.returncode == 0 and "10 ok" in again.stdout
    assert sorted(p.stat().st_mtime_ns for p in runs.glob("*/*/seed=*/metrics.json")) == stamps
    changed = run_ablate("run", *study, "pretrain.epochs=3", "--dry-run", cwd=workdir)  # another source task: refused
    assert changed.returncode == 2 and "pretrain.epochs: 2 -> 3" in changed.stderr
    report = run_ablate("report", "runs/transfer", cwd=workdir)
    assert report.returncode == 0, report.stderr
    summary = pd.read_csv(workdir / "reports/transfer/summary.csv")
    assert summary["variant"].tolist() == ["baseline", "model.transfer=frozen", "model.transfer=partial", "model.transfer=finetune"]
    assert summary["n"].tolist() == [2, 2, 2, 2]
    header = (workdir / "reports/transfer/summary.md").read_text().splitlines()[2]
    assert [c.strip() for c in header.split("|")].count("trainable") == 1


def test_inspect_describes_resnet18_module_by_module() -> None:
    from ablate.inspect.layers import inspect_overrides

    (report,) = json.loads(inspect_overrides(["model.arch=resnet18"], "json"))
    rows = {row["layer"]: row for row in report["layers"]}
    assert report["total_params"] == sum(p.numel() for p in torchvision.models.resnet18(num_classes=10).parameters())
    assert sum(row["params"] for row in report["layers"]) == report["total_params"]
    assert rows["conv1"]["input"] == "(B, 3, 28, 28)" and rows["fc"]["output"] == "(B, 10)"  # grey images enter as RGB
    assert rows["fc"]["flops"] == 2 * 512 * 10 and report["receptive_field"] is None  # skip connections: no one chain
