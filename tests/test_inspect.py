"""`ablate inspect`: the seed's tables, parameters and FLOPs against independent counts, receptive fields measured by gradients."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import checked
from torch.utils.flop_counter import FlopCounterMode

from ablate.cli import main
from ablate.config import AblateConfig, DataConfig, ModelConfig
from ablate.data.catalog import input_spec
from ablate.inspect.layers import describe
from ablate.networks.cnn import parameter_count
from ablate.networks.layer_plan import plan_layers
from ablate.networks.network import build_model

MNIST = (1, 28, 28)
# Every one-factor sweep; `all` is their union, so it adds no variant.
SWEEPS = sorted(p.stem for p in (Path(__file__).parents[1] / "conf" / "sweep").glob("*.yaml") if p.stem != "all")


def test_baseline_table_is_the_seeds_table() -> None:
    report = describe("baseline", AblateConfig())
    rows = {row["layer"]: row for row in report["layers"]}
    assert rows["conv1"]["input"] == "(B, 1, 28, 28)"
    assert [rows[n]["output"] for n in ("conv1", "pool1", "conv2", "pool2", "flatten")] == [
        "(B, 32, 28, 28)", "(B, 32, 14, 14)", "(B, 64, 14, 14)", "(B, 64, 7, 7)", "(B, 3136)"]
    assert rows["conv1"]["output_size"] == "floor((28 + 2×1 - 1×(3-1) - 1)/1 + 1) = 28"
    assert rows["pool2"]["output_size"] == "floor((14 + 2×0 - 1×(2-1) - 1)/2 + 1) = 7"
    assert {n: r["params"] for n, r in rows.items() if r["params"]} == {"conv1": 320, "conv2": 18_496, "fc1": 401_536, "fc2": 1_290}
    assert [rows[n]["params_formula"] for n in ("conv1", "conv2", "fc1", "fc2")] == [
        "32 × (1 × 3² + 1)", "64 × (32 × 3² + 1)", "128 × (3136 + 1)", "10 × (128 + 1)"]
    assert report["total_params"] == 421_642 and report["head_params"] == 401_536 + 1_290
    assert [rows[n]["receptive_field"] for n in ("conv1", "pool1", "conv2", "pool2")] == [3, 4, 8, 10]
    assert report["receptive_field"] == 10 and rows["fc1"]["receptive_field"] is None
    # FLOPs = 2 x multiply-accumulates: a conv output value costs C_in*K*K of them, a linear output value C_in.
    macs = 28 * 28 * 32 * (1 * 3 * 3) + 14 * 14 * 64 * (32 * 3 * 3) + 128 * 3136 + 10 * 128
    assert report["flops"] == 2 * macs == 8_482_304


@pytest.mark.parametrize("sweep", SWEEPS)
def test_parameters_and_flops_of_every_variant_equal_what_torch_counts(sweep: str) -> None:
    for variant, config in ((v.variant, v.config) for v in checked([f"+sweep={sweep}"]).variants):
        report = describe(variant.name, config)
        model = build_model(config.model, *input_spec(config.data))
        assert {r["layer"]: r["params"] for r in report["layers"]} == {
            name: sum(p.numel() for p in module.parameters()) for name, module in model.named_children()}
        assert report["total_params"] == parameter_count(model)
        with FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, *MNIST))
        assert report["flops"] == counter.get_total_flops(), variant.name


def measured_receptive_field(cfg: ModelConfig, shape: tuple[int, int, int]) -> tuple[int, int]:
    """Rows and columns of input that one central unit of the last feature map depends on, found by backpropagation.

    All weights and inputs are positive, so no ReLU blocks a path; a max pool passes gradient to one input of
    each window only, so |grad| is summed over a batch of random images, whose maxima fall in different places.
    """
    torch.manual_seed(0)
    features = sum(not layer.head for layer in plan_layers(cfg, shape, 10))
    model = build_model(cfg, shape, 10)[:features].double()
    for parameter in model.parameters():
        parameter.data.uniform_(0.1, 1.0)
    x = torch.rand(16, *shape, dtype=torch.float64, requires_grad=True)
    out = model(x)
    out[:, 0, out.shape[2] // 2, out.shape[3] // 2].sum().backward()
    reached = x.grad.abs().sum(dim=(0, 1)) > 0
    rows, cols = reached.any(dim=1).nonzero(), reached.any(dim=0).nonzero()
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


@pytest.mark.parametrize(("cfg", "shape", "expected"), [
    pytest.param(ModelConfig(), MNIST, 10, id="baseline"),
    pytest.param(ModelConfig(dilation=2), MNIST, 16, id="dilation2"),
    pytest.param(ModelConfig(dilation=3), MNIST, 22, id="dilation3"),
    pytest.param(ModelConfig(pool="strided"), MNIST, 10, id="strided"),
    pytest.param(ModelConfig(pool="avg", dilation=2), MNIST, 16, id="avg-dilation2"),
    pytest.param(ModelConfig(kernel_size=5), MNIST, 16, id="kernel5"),
    pytest.param(ModelConfig(kernel_size=7), MNIST, 22, id="kernel7"),
    pytest.param(ModelConfig(depth=5), MNIST, 34, id="depth5-larger-than-the-image"),
    pytest.param(ModelConfig(depth=5, min_map_size=7), (1, 64, 64), 54, id="depth5-64px"),
    pytest.param(ModelConfig(depth=3, kernel_size=5, dilation=2, pool="strided", min_map_size=9), (1, 64, 64), 60,
                 id="depth3-kernel5-dilation2-strided-64px"),
])
def test_reported_receptive_field_is_the_extent_of_the_input_gradient(cfg: ModelConfig, shape: tuple[int, int, int], expected: int) -> None:
    report = describe("variant", AblateConfig(model=cfg, data=DataConfig(name="synthetic", channels=shape[0], image_size=shape[1])))
    assert report["receptive_field"] == expected
    clipped = min(expected, shape[1])
    assert measured_receptive_field(cfg, shape) == (clipped, clipped)


def test_inspect_json_is_a_list_of_variants_with_the_totals(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "--format", "json", "model.depth=5", "model.head=gap", "model.batchnorm=true"]) == 0
    (report,) = json.loads(capsys.readouterr().out)
    convs = 32 * (1 * 9 + 1) + 64 * (32 * 9 + 1) + 128 * (64 * 9 + 1) + 2 * 128 * (128 * 9 + 1)
    assert report["total_params"] == convs + 2 * (32 + 64 + 3 * 128) + 10 * (128 + 1)
    assert report["head_layers"] == ["gap", "flatten", "fc"] and report["receptive_field"] == 34
    assert main(["inspect", "--format", "json", "+sweep=dilation"]) == 0
    assert [(r["variant"], r["receptive_field"]) for r in json.loads(capsys.readouterr().out)] == [
        ("baseline", 10), ("model.dilation=2", 16), ("model.dilation=3", 22)]


def test_inspect_csv_has_one_row_per_layer_and_markdown_shows_the_totals(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "--format", "csv", "data=synthetic", "data.image_size=16", "data.channels=3"]) == 0
    table = pd.read_csv(StringIO(capsys.readouterr().out))
    assert table["layer"].tolist() == ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten", "fc1", "relu_fc", "fc2"]
    assert table["input"][0] == "(B, 3, 16, 16)" and table["output"][6] == "(B, 1024)" and table["params"][0] == 32 * (3 * 9 + 1)
    assert main(["inspect"]) == 0
    text = capsys.readouterr().out
    assert "| conv1" in text and "(B, 3136)" in text and "parameters: 421,642" in text and "= 95.5%" in text
    assert "FLOPs per forward pass: 8,482,304 = 2 × multiply-accumulates" in text


def test_inspect_refuses_a_bad_value_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "model.dilation=0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ablate: error: model.dilation=0") and ">= 1" in err and "\n" not in err
