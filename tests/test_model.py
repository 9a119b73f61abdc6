"""The model builder against the seed's SimpleCNN tables, and every variant of every sweep."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import checked
from torch import nn

from ablate.config import ModelConfig
from ablate.networks.cnn import parameter_count
from ablate.networks.layer_plan import plan_layers, receptive_field, receptive_fields
from ablate.networks.network import build_model

MNIST = (1, 28, 28)
SWEEPS = sorted(p.stem for p in (Path(__file__).parents[1] / "conf" / "sweep").glob("*.yaml"))
ONE_FACTOR_SWEEPS = [sweep for sweep in SWEEPS if sweep != "all"]  # `all` is their union: no variant of its own


def test_baseline_matches_the_seed_simplecnn_layer_for_layer() -> None:
    model = build_model(ModelConfig(), MNIST, 10)
    per_layer = {name: sum(p.numel() for p in module.parameters()) for name, module in model.named_children()}
    assert {k: v for k, v in per_layer.items() if v} == {"conv1": 320, "conv2": 18_496, "fc1": 401_536, "fc2": 1_290}
    assert parameter_count(model) == 421_642
    assert [type(m).__name__ for m in model] == [
        "Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear", "ReLU", "Linear"]


def test_baseline_shapes_and_receptive_field_follow_the_seed_tables() -> None:
    layers = plan_layers(ModelConfig(), MNIST, 10)
    spatial = [layer for layer in layers if layer.kind in ("conv", "maxpool")]
    assert [layer.out_shape[1] for layer in spatial] == [28, 14, 14, 7]
    assert next(layer for layer in layers if layer.kind == "flatten").out_shape == (3136,)
    fields = dict(zip((layer.name for layer in layers), receptive_fields(layers)))
    assert [fields[n] for n in ("conv1", "pool1", "conv2", "pool2")] == [3, 4, 8, 10]
    assert receptive_field(layers) == 10
    out = build_model(ModelConfig(), MNIST, 10)(torch.zeros(2, *MNIST))
    assert out.shape == (2, 10)


def test_depth_eight_keeps_the_map_at_least_min_map_size_and_caps_the_width() -> None:
    cfg = ModelConfig(depth=8)
    layers = plan_layers(cfg, MNIST, 10)
    convs = [layer for layer in layers if layer.kind == "conv"]
    assert len(convs) == 8
    assert min(layer.out_shape[1] for layer in layers if len(layer.out_shape) == 3) == 7
    assert [c.out_shape[0] for c in convs] == [32, 64, 128, 128, 128, 128, 128, 128]
    assert build_model(cfg, MNIST, 10)(torch.zeros(2, *MNIST)).shape == (2, 10)
    wide = plan_layers(ModelConfig(depth=3, width=128, max_width=200), MNIST, 10)
    assert max(layer.out_shape[0] for layer in wide if layer.kind == "conv") == 200


def test_strided_replaces_each_pool_by_a_stride_two_conv() -> None:
    model = build_model(ModelConfig(pool="strided"), MNIST, 10)
    assert not any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) for m in model.modules())
    strided = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.stride == (2, 2)]
    assert [(m.in_channels, m.out_channels, m.kernel_size) for m in strided] == [(32, 32, (2, 2)), (64, 64, (2, 2))]
    assert parameter_count(model) == 421_642 + (32 * 32 * 4 + 32) + (64 * 64 * 4 + 64)


def test_gap_head_and_batchnorm_placement() -> None:
    gap = build_model(ModelConfig(head="gap"), MNIST, 10)
    assert isinstance(gap.gap, nn.AdaptiveAvgPool2d) and gap.fc.in_features == 64
    assert parameter_count(gap) == 320 + 18_496 + 64 * 10 + 10
    bn = build_model(ModelConfig(batchnorm=True), MNIST, 10)
    names = [name for name, _ in bn.named_children()]
    assert names[:3] == ["conv1", "bn1", "relu1"] and names[4:7] == ["conv2", "bn2", "relu2"]


def test_kernel_size_keeps_same_padding_and_grows_the_receptive_field() -> None:
    layers = plan_layers(ModelConfig(kernel_size=7), MNIST, 10)
    assert layers[0].out_shape == (32, 28, 28)
    assert receptive_field(layers) == 1 + 6 + 1 + 6 * 2 + 2  # conv7, pool2, conv7 (jump 2), pool2 (jump 2)


def test_dilation_keeps_same_size_adds_no_weights_and_widens_the_receptive_field() -> None:
    layers = plan_layers(ModelConfig(dilation=2), MNIST, 10)
    assert (layers[0].padding, layers[0].dilation, layers[0].out_shape) == (2, 2, (32, 28, 28))
    assert [layer.out_shape[1] for layer in layers if layer.kind in ("conv", "maxpool")] == [28, 14, 14, 7]
    assert receptive_field(layers) == 1 + 2 * 2 + 1 + 2 * 2 * 2 + 2  # conv3 d2, pool2, conv3 d2 (jump 2), pool2 (jump 2)
    model = build_model(ModelConfig(dilation=3, kernel_size=5), MNIST, 10)
    assert model.conv2.dilation == (3, 3) and model.conv2.padding == (6, 6)
    assert parameter_count(build_model(ModelConfig(dilation=2), MNIST, 10)) == 421_642


@pytest.mark.parametrize("sweep", ONE_FACTOR_SWEEPS)
def test_every_planned_shape_is_the_shape_torch_computes(sweep: str) -> None:
    for config in (v.config for v in checked([f"+sweep={sweep}"]).variants):
        for shape in (MNIST, (3, 20, 20)):
            layers = plan_layers(config.model, shape, 7)
            x, model = torch.zeros(2, *shape), build_model(config.model, shape, 7)
            for layer, module in zip(layers, model):
                x = module(x)
                assert tuple(x.shape[1:]) == layer.out_shape, f"{layer.name} of {config.model}"


@pytest.mark.parametrize("sweep", SWEEPS)
def test_every_sweep_composes_and_each_variant_builds_and_runs_forward(sweep: str, tmp_path: Path) -> None:
    planned = [(v.variant, v.config) for v in checked([f"+sweep={sweep}", f"runs_dir={tmp_path}"]).variants]
    assert planned[0][0].name == "baseline"
    assert len({(config.study, variant.name) for variant, config in planned}) == len(planned)
    for variant, config in planned:
        assert config.study in (sweep, f"{sweep}.source")  # a transfer sweep pretrains in <study>.source
        for key, value in variant.overrides:
            assert str(value).lower() == str(eval(f"config.{key}")).lower()  # noqa: S307
        out = build_model(config.model, MNIST, 10)(torch.randn(2, *MNIST))
        assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_sweep_all_trains_the_baseline_once_and_twelve_single_changes(tmp_path: Path) -> None:
    planned = [(v.variant, v.config) for v in checked(["+sweep=all", f"runs_dir={tmp_path}"]).variants]
    names = [variant.name for variant, _ in planned]
    assert names[0] == "baseline" and names.count("baseline") == 1 and len(names) == 13
    assert "model.depth=2" not in names and "model.pool=max" not in names
    baseline = planned[0][1].model
    for variant, config in planned[1:]:
        changed = [k for k in vars(baseline) if getattr(baseline, k) != getattr(config.model, k)]
        assert [f"model.{key}" for key in changed] == list(variant.keys)
