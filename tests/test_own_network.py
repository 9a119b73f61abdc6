"""Your own network, Hydra's way: the guide's mynet.py and myconf/model/mynet.yaml, copied into an empty folder,
train a study through the real command, report the network's own parameter count, show its layers in `inspect`,
resume without training, train vectorized as eager, and refuse a bad `_target_` or constructor key in one line."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import re
import shlex
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest
import torch
from conftest import TINY, run_ablate
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ablate import recipe
from ablate.config import ConfigError, ModelConfig, TrainConfig
from ablate.data.datasets import load_dataset
from ablate.inspect.layers import inspect_overrides
from ablate.networks import own as network
from ablate.study import plan, preflight
from ablate.training.engine import train_seeds

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "guide" / "your-own-network.md"
OWN = ["--config-dir", "myconf", "model=mynet"]
SEEDS = "seeds=[0,1]"


def guide_files() -> dict[str, str]:
    """The files docs/guide/your-own-network.md shows, by the name in their first comment line."""
    blocks = re.findall(r"```(?:python|yaml)\n# (\S+)[^\n]*\n(.*?)```", GUIDE.read_text(), re.S)
    return {name: body for name, body in blocks}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty folder holding only the guide's mynet.py and myconf/model/mynet.yaml."""
    here = tmp_path_factory.mktemp("own")
    for name, body in guide_files().items():
        (here / name).parent.mkdir(parents=True, exist_ok=True)
        (here / name).write_text(body)
    assert {p.relative_to(here).as_posix() for p in here.rglob("*.*")} == {"mynet.py", "myconf/model/mynet.yaml", "myconf/model/resnet18.yaml"}
    return here


@pytest.fixture
def mynet(folder: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The guide's mynet module, imported by the test itself; the working folder is the example's."""
    monkeypatch.chdir(folder)
    monkeypatch.delitem(sys.modules, "mynet", raising=False)
    spec = importlib.util.spec_from_file_location("mynet", folder / "mynet.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="module")
def trained(folder: Path) -> Path:
    """The issue's study, 3 variants × 2 seeds, trained through `python -m ablate run`."""
    done = run_ablate("run", *OWN, "-m", "model.dropout=0.0,0.5", "train.optimizer=adam,sgd", "study=mine", SEEDS, *TINY, cwd=folder)
    assert done.returncode == 0, done.stderr[-2000:]
    return folder / "runs" / "mine"


def test_the_guides_study_trains_three_variants_and_reports_the_networks_own_parameters(trained: Path, mynet: ModuleType) -> None:
    folders = sorted(p.relative_to(trained).as_posix() for p in trained.glob("*/seed=*"))
    assert folders == [f"{v}/seed={s}" for v in ("baseline", "model.dropout=0.5", "train.optimizer=sgd") for s in (0, 1)]
    params = sum(p.numel() for p in mynet.Net(in_channels=1, num_classes=10, hidden=32, dropout=0.0).parameters())
    record = json.loads((trained / "model.dropout=0.5" / "seed=1" / "metrics.json").read_text())
    assert record["status"] == "ok" and record["params"] == params
    assert record["identity"]["model._target_"] == "mynet.Net" and record["identity"]["model.dropout"] == 0.5
    assert "model.depth" not in record["identity"]  # the built-in CNN's keys decide nothing here

    done = run_ablate("report", "runs/mine", cwd=trained.parents[1])
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader((trained.parents[1] / "reports" / "mine" / "summary.csv").open()))
    assert [row["variant"] for row in rows] == ["baseline", "model.dropout=0.5", "train.optimizer=sgd"]
    assert {int(float(row["params"])) for row in rows} == {params}
    assert f"{params:,}" in (trained.parents[1] / "reports" / "mine" / "summary.md").read_text()


def test_running_the_study_again_trains_nothing(trained: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in trained.glob("*/seed=*/metrics.json")}
    again = run_ablate("run", *OWN, "-m", "model.dropout=0.0,0.5", "train.optimizer=adam,sgd", "study=mine", SEEDS, *TINY, cwd=trained.parents[1])
    assert again.returncode == 0, again.stderr[-2000:]
    assert (again.stdout + again.stderr).count("2 finished run(s) skipped, 0 to train") == 3
    assert {p: p.stat().st_mtime_ns for p in trained.glob("*/seed=*/metrics.json")} == before


def test_inspect_shows_every_layer_as_torch_counts_it(folder: Path, mynet: ModuleType) -> None:
    shown = run_ablate("inspect", *OWN, *TINY, "--format", "json", cwd=folder)
    assert shown.returncode == 0, shown.stderr
    (report,) = json.loads(shown.stdout)
    net = mynet.Net(in_channels=1, num_classes=10).eval()
    x = torch.zeros(1, 1, 16, 16)
    expected = []
    for part in (net.features, net.classifier):
        for name, layer in part.named_children():
            out = layer(x)
            with FlopCounterMode(display=False) as counter:
                layer(x)
            prefix = "features" if part is net.features else "classifier"
            expected.append((f"{prefix}.{name}", f"(B, {', '.join(map(str, x.shape[1:]))})",
                             f"(B, {', '.join(map(str, out.shape[1:]))})", sum(p.numel() for p in layer.parameters()), counter.get_total_flops()))
            x = out
    assert [(r["layer"], r["input"], r["output"], r["params"], r["flops"]) for r in report["layers"]] == expected
    conv = net.features[3]  # 2 × multiply-accumulates: 64 maps of 8×8, each tap over 32 channels × 3×3
    assert report["layers"][3]["flops"] == 2 * 64 * 8 * 8 * 32 * 9 and conv.weight.shape == (64, 32, 3, 3)
    with FlopCounterMode(display=False) as whole:
        net(torch.zeros(1, 1, 16, 16))
    assert report["flops"] == whole.get_total_flops() and report["total_params"] == sum(p.numel() for p in net.parameters())
    # 3×3 conv: 3; 2×2 pool: 3 + 1 = 4, stride 2; 3×3 conv: 4 + 2·2 = 8; the global pool and classifier are the head.
    assert report["receptive_field"] == 8 and [r["receptive_field"] for r in report["layers"]][:5] == [3, 3, 4, 8, 8]
    markdown = inspect_overrides(["model=mynet", *TINY], "md", "myconf")
    assert "| features.3   | Conv2d" in markdown and f"parameters: {report['total_params']:,}" in markdown


def test_receptive_field_only_along_one_chain_of_maps_and_ops_outside_modules_counted() -> None:
    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3, padding=1)
            self.fc = nn.Linear(64, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc((x + self.conv(x)).flatten(1)) @ torch.eye(2)

    rows, total = network.layer_table(Residual(), (1, 8, 8))
    assert [row["receptive_field"] for row in rows] == [None, None]  # the last map is x + conv(x): no single chain
    with FlopCounterMode(display=False) as counter:
        Residual()(torch.zeros(1, 1, 8, 8))
    assert total == counter.get_total_flops() > sum(row["flops"] for row in rows)  # the @ is outside any module
    chain = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(2, 2, 3, dilation=2), nn.Flatten(), nn.LazyLinear(2))
    rows, _ = network.layer_table(chain, (1, 16, 16))
    assert [row["receptive_field"] for row in rows] == [3, 3, 4, 4 + 2 * 2 * 2, None, None]  # R += (K-1)·D·jump


@pytest.mark.parametrize(("override", "message"), [
    ("model._target_=mynet.Nett", "model._target_=mynet.Nett: Nett does not exist in mynet; its nn.Module classes: Net"),
    ("model._target_=mynett.Net", "model._target_=mynett.Net: cannot import mynett (ModuleNotFoundError: No module named 'mynett'); "
                                  "put mynett.py in the folder you run ablate in"),
    ("model.dropout=1.5", "model.dropout=1.5: Net(in_channels=1, num_classes=10, hidden=32, dropout=1.5) failed: "
                          "ValueError: dropout probability has to be between 0 and 1, but got 1.5"),
    ("+model.width=3", "model.width=3: got an unexpected keyword argument 'width'; Net takes: in_channels, num_classes, hidden, dropout"),
])
def test_a_bad_target_or_constructor_key_is_one_line_naming_the_key(mynet: ModuleType, override: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        preflight.check(plan.build(["model=mynet", override, *TINY], "myconf"))
    assert preflight.one_line(caught.value) == message
    assert not Path("runs/default").exists()


def test_the_command_refuses_a_bad_target_before_training(folder: Path) -> None:
    done = run_ablate("run", *OWN, "-m", "model.dropout=0.0,0.5", "model._target_=mynet.Nett", "study=bad", *TINY, cwd=folder)
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        "ablate: error: model._target_=mynet.Nett: Nett does not exist in mynet; its nn.Module classes: Net"]
    assert not (folder / "runs" / "bad").exists()


def test_vectorized_seeds_train_as_eager_ones_and_a_network_vmap_cannot_run_is_refused(mynet: ModuleType, folder: Path) -> None:
    planned = plan.build(["model=mynet", "train.strategy=vectorized", SEEDS, *TINY], "myconf").study
    assert planned.resolved.strategy == "vectorized"
    data, cfg = load_dataset(planned.config.data), planned.config.model
    eager, together = (train_seeds(cfg, TrainConfig(epochs=1, strategy=s), data, [0, 1], torch.device("cpu"), "fp32", progress=False)
                       for s in ("eager", "vectorized"))
    for one, other in zip(eager, together):
        assert other.strategy == "vectorized" and math.isclose(one.metrics["test_loss"], other.metrics["test_loss"], rel_tol=1e-4)

    (folder / "itemnet.py").write_text(
        "from torch import nn\n\n\nclass Net(nn.Module):\n    def __init__(self, in_channels, num_classes):\n"
        "        super().__init__()\n        self.fc = nn.Linear(in_channels * 16 * 16, num_classes)\n\n"
        "    def forward(self, x):\n        return self.fc(x.flatten(1)) * (1 + 0 * x.sum().item())\n")
    own = ModelConfig(_target_="itemnet.Net")
    assert ".item()" in str(network.not_vectorizable(own, (1, 16, 16), 10))
    with pytest.raises(ConfigError, match=r"train.strategy=vectorized is not allowed with model._target_=itemnet.Net \(it does not run under torch.func.vmap"):
        plan.build(["model=mynet", "model._target_=itemnet.Net", "~model.hidden", "~model.dropout", "train.strategy=vectorized", *TINY], "myconf")


def test_your_network_drawing_dropout_masks_trains_eagerly_and_vectorized_is_refused(mynet: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"train.strategy=vectorized is not allowed with model._target_=mynet.Net \(its forward draws random numbers"):
        plan.build(["model=mynet", "model.dropout=0.5", "train.strategy=vectorized", *TINY], "myconf")
    with pytest.raises(ConfigError, match=r"^variant model.dropout=0.5: train.strategy=vectorized is not allowed with model._target_=mynet.Net"):
        plan.build(["model=mynet", "model.dropout=0.0,0.5", "train.strategy=vectorized", *TINY], "myconf")  # the baseline can
    monkeypatch.setitem(recipe.AUTO_STRATEGY, "cpu", "vectorized")  # a device where vectorized is the faster
    dropped, plain = (plan.build(["model=mynet", f"model.dropout={p}", *TINY], "myconf").study.resolved for p in (0.5, 0.0))
    assert dropped.strategy == "eager" and "its forward draws random numbers" in dropped.strategy_note
    assert plain.strategy == "vectorized" and plain.strategy_note is None


def test_your_networks_keys_are_typed_as_its_constructor_declares_them(mynet: ModuleType) -> None:
    """`dropout: float = 0.0` in the guide's Net: `model.dropout=0` is 0.0, as ablate's schema types its own float keys,
    so a sweep 0,0.5 keeps the file's 0.0 as its baseline and 0 and 0.0 are one variant with one identity."""
    swept = plan.build(["model=mynet", "model.dropout=0,0.5", *TINY], "myconf")
    assert [v.variant.name for v in swept.variants] == ["baseline", "model.dropout=0.5"]
    ints, floats = (plan.build(["model=mynet", f"model.dropout={value}", *TINY], "myconf").study for value in ("0", "0.0"))
    assert ints.variant.name == floats.variant.name == "baseline"  # the config file's own 0.0: the baseline, not a variant
    assert ints.identity == floats.identity and ints.identity["model.dropout"] == 0.0
    assert ints.config.model.params["hidden"] == 32 and isinstance(ints.config.model.params["hidden"], int)  # an int stays one


def guide_command(start: str) -> list[str]:
    """The arguments of the guide's command line that begins `$ ablate START`, its continuation lines joined."""
    text = GUIDE.read_text().replace("\\\n", " ")
    line = next(line for line in text.splitlines() if line.strip().startswith(f"$ ablate {start}"))
    return shlex.split(line.strip().removeprefix("$ ablate "))


def test_a_torchvision_factory_is_ablated_as_the_guide_shows_its_first_conv_fitted_to_the_data(folder: Path) -> None:
    done = run_ablate(*guide_command("run --config-dir myconf model=resnet18"), cwd=folder)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Study tv: 4 ok" in done.stdout
    params = {json.loads(p.read_text())["params"] for p in (folder / "runs/tv").glob("*/seed=*/metrics.json")}
    assert params == {11_181_642 - 2 * 7 * 7 * 64} and "11,175,370" in GUIDE.read_text()  # one input channel, 10 classes


def test_timm_and_a_local_factory_get_the_data_by_the_names_they_take(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "factories", raising=False)
    (tmp_path / "factories.py").write_text(textwrap.dedent("""
        from torch import nn

        def small(num_classes, in_chans=3, width=4):
            return nn.Sequential(nn.Conv2d(in_chans, width, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))

        class Fixed(nn.Module):
            def __init__(self):
                super().__init__()
    """))
    timm = network.build(ModelConfig(_target_="timm.create_model", params={"model_name": "resnet18"}), 1, 10)
    assert timm.conv1.in_channels == 1 and timm.fc.out_features == 10  # timm's in_chans, not a fitted conv
    small = network.build(ModelConfig(_target_="factories.small", params={"width": 6}), 1, 7)
    assert (small[0].in_channels, small[0].out_channels, small[3].out_features) == (1, 6, 7)
    with pytest.raises(ConfigError) as caught:
        network.build(ModelConfig(_target_="factories.Fixed"), 1, 10)
    assert str(caught.value) == ("model._target_=factories.Fixed: Fixed takes no arguments, and ablate builds it for the data as "
                                 "Fixed(in_channels=1, num_classes=10, <your keys>): give it those two parameters, e.g. "
                                 "def __init__(self, in_channels, num_classes)")
    for target, message in [("timm.create_model", "model.model_name: create_model needs it; add +model.model_name=VALUE"),
                            ("torchvision.models.resnet19", "model._target_=torchvision.models.resnet19: resnet19 does not "
                                                            "exist in torchvision.models; did you mean resnet18, resnet, resnet152?")]:
        with pytest.raises(ConfigError) as caught:
            preflight.check(plan.build([f"+model._target_={target}", *TINY]))
        assert preflight.one_line(caught.value) == message
