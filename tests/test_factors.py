"""The factors model.dropout, model.activation, train.augment and train.optimizer=adamw: each changes what it should
and nothing else, its sweep plans the right variants, and a tiny sweep runs end to end."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY, checked, run_ablate
from torch import nn

from ablate.cli import main
from ablate.config import AblateConfig, DataConfig, ModelConfig, TrainConfig
from ablate.data.datasets import load_dataset
from ablate.networks.cnn import parameter_count
from ablate.networks.layer_plan import plan_layers, receptive_field
from ablate.networks.network import build_model
from ablate.report.runs import _order_key
from ablate.store import results
from ablate.study.identity import conflicts, identity, stored_identity
from ablate.study.resolve import Resolved
from ablate.training.augment import draw_shifts, shift_images
from ablate.training.engine import train_seed, train_vectorized
from ablate.training.loop import evaluate
from ablate.training.strategies import EagerTrainer, VectorizedTrainer, init_model, make_optimizer

MNIST = (1, 28, 28)
CPU = torch.device("cpu")
SIMPLE_CNN = 421_642  # the seed's SimpleCNN, see test_model.py
CPU_EAGER = Resolved("cpu", "fp32", "eager")


def tiny(train_size: int = 256):  # noqa: ANN201 - a Dataset
    return load_dataset(DataConfig(name="synthetic", train_size=train_size, test_size=128, image_size=16))


def losses_of(run) -> torch.Tensor:  # noqa: ANN001 - a training call taking an on_step hook
    steps: list[torch.Tensor] = []
    run(lambda epoch, losses: steps.append(losses.clone()))
    return torch.stack(steps)


# model.dropout


@pytest.mark.parametrize(("head", "before", "after"), [("flatten", "relu_fc", "fc2"), ("gap", "flatten", "fc")])
def test_dropout_sits_before_the_last_linear_and_keeps_parameters_and_receptive_field(head: str, before: str, after: str) -> None:
    plain, dropped = ModelConfig(head=head), ModelConfig(head=head, dropout=0.25)
    names = [name for name, _ in build_model(dropped, MNIST, 10).named_children()]
    assert names[-3:] == [before, "dropout", after] and "dropout" not in dict(build_model(plain, MNIST, 10).named_children())
    assert build_model(dropped, MNIST, 10).dropout.p == 0.25
    assert parameter_count(build_model(dropped, MNIST, 10)) == parameter_count(build_model(plain, MNIST, 10))
    assert receptive_field(plan_layers(dropped, MNIST, 10)) == receptive_field(plan_layers(plain, MNIST, 10)) == 10
    if head == "flatten":
        assert parameter_count(build_model(dropped, MNIST, 10)) == SIMPLE_CNN


def test_dropout_drops_in_training_mode_and_is_the_identity_in_evaluation() -> None:
    torch.manual_seed(0)
    plain = build_model(ModelConfig(), MNIST, 10)
    dropped = build_model(ModelConfig(dropout=0.5), MNIST, 10)
    dropped.load_state_dict(plain.state_dict())  # same weights: the dropout layer has none
    x = torch.randn(64, *MNIST)
    plain.eval(), dropped.eval()
    torch.testing.assert_close(dropped(x), plain(x), rtol=0, atol=0)
    dropped.train()
    seen = []
    dropped.dropout.register_forward_hook(lambda module, inputs, output: seen.append((inputs[0], output)))
    first, second = dropped(x), dropped(x)
    assert not torch.allclose(first, second) and not torch.allclose(first, plain(x))
    hidden, out = seen[0]
    alive = hidden != 0  # the ReLU already zeroes some units; count drops among the others
    zeroed = (out[alive] == 0).float().mean().item()
    assert 0.45 < zeroed < 0.55  # 64 x 128 units, p = 0.5
    kept = out[alive] != 0
    torch.testing.assert_close(out[alive][kept], 2 * hidden[alive][kept])  # survivors scaled by 1/(1-p)


def test_inspect_shows_the_dropout_layer(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "--format", "json", "model.dropout=0.5"]) == 0
    (report,) = json.loads(capsys.readouterr().out)
    layers = [(row["layer"], row["kind"], row["params"]) for row in report["layers"]]
    assert layers[-3:] == [("relu_fc", "relu", 0), ("dropout", "dropout", 0), ("fc2", "linear", 10 * 129)]
    assert report["total_params"] == SIMPLE_CNN and report["receptive_field"] == 10
    assert "dropout" in report["head_layers"] and report["model"]["dropout"] == 0.5


def test_vectorized_dropout_draws_its_own_mask_for_each_seed_and_trains() -> None:
    data, train = tiny(), TrainConfig(epochs=1, batch_size=32)
    cfg = ModelConfig(dropout=0.5)
    same = [init_model(cfg, train, data, 0, CPU)[0] for _ in range(3)]  # three identical networks
    trainer = VectorizedTrainer(same, train, CPU, "fp32", dropout_seeds=[0, 1, 2], steps_per_epoch=1)
    x, y = data.train_x[:32].expand(3, -1, -1, -1, -1), data.train_y[:32]
    trainer.train(False)
    evaluated = trainer.logits(x[0])
    assert torch.equal(evaluated[0], evaluated[1]) and torch.equal(evaluated[1], evaluated[2])
    trainer.train(True)
    losses, _ = trainer.step(x, y.expand(3, -1))
    assert len(set(losses.tolist())) == 3  # identical weights and batch: only the dropout masks differ
    results = train_vectorized(cfg, TrainConfig(epochs=2, batch_size=32), data, [0, 1, 2], CPU, "fp32")
    assert [(r.status, r.strategy) for r in results] == [("ok", "vectorized")] * 3
    assert all(r.history[1]["train_loss"] < r.history[0]["train_loss"] for r in results)
    assert len({r.metrics["test_loss"] for r in results}) == 3


# model.activation


def reference_forward(model: nn.Module, x: torch.Tensor, act) -> torch.Tensor:  # noqa: ANN001 - F.gelu or F.silu
    """The baseline SimpleCNN's forward written out with torch.nn.functional and the model's own weights."""
    x = F.max_pool2d(act(F.conv2d(x, model.conv1.weight, model.conv1.bias, padding=1)), 2)
    x = F.max_pool2d(act(F.conv2d(x, model.conv2.weight, model.conv2.bias, padding=1)), 2)
    return F.linear(act(F.linear(x.flatten(1), model.fc1.weight, model.fc1.bias)), model.fc2.weight, model.fc2.bias)


@pytest.mark.parametrize(("name", "module", "function"), [("gelu", nn.GELU, F.gelu), ("silu", nn.SiLU, F.silu)])
def test_activation_replaces_every_relu_and_changes_nothing_else(name: str, module: type, function) -> None:  # noqa: ANN001
    model = build_model(ModelConfig(activation=name), MNIST, 10)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Conv2d", module.__name__, "MaxPool2d", "Conv2d", module.__name__, "MaxPool2d", "Flatten", "Linear",
                     module.__name__, "Linear"]
    assert [n for n, _ in model.named_children() if name in n] == [f"{name}1", f"{name}2", f"{name}_fc"]
    assert parameter_count(model) == SIMPLE_CNN and receptive_field(plan_layers(ModelConfig(activation=name), MNIST, 10)) == 10
    x = torch.randn(4, *MNIST)
    torch.testing.assert_close(model(x), reference_forward(model, x, function))
    assert not torch.allclose(model(x), reference_forward(model, x, F.relu))


def test_activation_also_applies_to_batchnorm_blocks_and_the_gap_head() -> None:
    model = build_model(ModelConfig(activation="silu", batchnorm=True, head="gap", depth=3), MNIST, 10)
    assert [n for n, _ in model.named_children()][:3] == ["conv1", "bn1", "silu1"]
    assert sum(isinstance(m, nn.SiLU) for m in model) == 3 and not any(isinstance(m, nn.ReLU) for m in model)


# train.augment


def test_shift_moves_each_image_by_its_own_shift_with_edge_padding() -> None:
    images = torch.randn(3, 5, 2, 9, 11)  # seeds, batch, channels, height, width
    shifts = draw_shifts([torch.Generator().manual_seed(s) for s in range(3)], 5, 3)
    out = shift_images(images, shifts)
    for k in range(3):
        for b in range(5):
            dy, dx = shifts[k, b].tolist()
            padded = F.pad(images[k, b], (3, 3, 3, 3), mode="replicate")  # torchvision's padding_mode="edge"
            torch.testing.assert_close(out[k, b], padded[:, 3 - dy : 3 - dy + 9, 3 - dx : 3 - dx + 11], rtol=0, atol=0)
    dot = torch.zeros(1, 1, 1, 9, 9)
    dot[..., 4, 4] = 1.0
    moved = shift_images(dot, torch.tensor([[[2, -1]]]))
    assert moved[0, 0, 0, 6, 3] == 1.0 and moved.sum() == 1.0  # two rows down, one column left


def test_shifts_stay_within_n_pixels_repeat_for_a_seed_and_differ_between_seeds() -> None:
    draw = lambda seed: draw_shifts([torch.Generator().manual_seed(seed)], 2000, 2)[0]  # noqa: E731
    shifts = draw(0)
    assert shifts.abs().max() == 2 and set(shifts.flatten().tolist()) == {-2, -1, 0, 1, 2}
    assert torch.equal(draw(0), draw(0)) and not torch.equal(draw(0), draw(1))
    assert (shifts != 0).any(1).float().mean() > 0.9  # 24 of 25 moves shift the image


def test_augmented_training_is_reproducible_per_seed_and_never_shifts_the_test_images() -> None:
    data = tiny(128)
    plain, shifted = TrainConfig(epochs=1, batch_size=32), TrainConfig(epochs=1, batch_size=32, augment="shift", augment_pixels=3)
    runs = [losses_of(lambda hook: train_seed(ModelConfig(), train, data, 0, CPU, "fp32", hook)) for train in (shifted, shifted, plain)]
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)
    assert not torch.equal(runs[0][0], runs[2][0])  # same init and batch, but the first one's images were moved
    together = losses_of(lambda hook: train_vectorized(ModelConfig(), shifted, data, [0, 1], CPU, "fp32", hook))
    torch.testing.assert_close(together[:, 0], runs[0][:, 0], rtol=1e-5, atol=1e-6)  # seed 0 draws the same shifts
    assert not torch.allclose(together[:, 0], together[:, 1])
    result = train_seed(ModelConfig(), shifted, data, 0, CPU, "fp32")
    model = build_model(ModelConfig(), data.input_shape, data.num_classes)
    model.load_state_dict(result.state_dict)
    (loss,), (acc,) = evaluate(EagerTrainer(model, shifted, CPU, "fp32", steps_per_epoch=1), data.test_x, data.test_y)
    assert acc == result.metrics["test_acc"] and loss == pytest.approx(result.metrics["test_loss"], rel=1e-6)


# train.optimizer=adamw


def one_step(optimizer: str, weight_decay: float) -> list[torch.Tensor]:
    torch.manual_seed(0)
    model = build_model(ModelConfig(head="gap", width=4), (1, 8, 8), 3)
    train = TrainConfig(optimizer=optimizer, weight_decay=weight_decay, lr=0.01)
    step = make_optimizer(model.parameters(), train, CPU)
    F.cross_entropy(model(torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))), torch.arange(6) % 3).backward()
    step.step()
    return [p.detach().clone() for p in model.parameters()]


def test_adamw_decays_weights_apart_from_the_gradient_and_is_adam_without_decay() -> None:
    torch.manual_seed(0)
    start = [p.detach().clone() for p in build_model(ModelConfig(head="gap", width=4), (1, 8, 8), 3).parameters()]
    adam, adamw = one_step("adam", 0.0), one_step("adamw", 0.0)
    for a, b in zip(adam, adamw):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    decayed, coupled = one_step("adamw", 0.1), one_step("adam", 0.1)
    for plain, mine, theirs, w0 in zip(adam, decayed, coupled, start):
        torch.testing.assert_close(mine, plain - 0.01 * 0.1 * w0)  # Loshchilov & Hutter: w <- w - lr*wd*w - lr*adam_step
    assert any(not torch.allclose(mine, theirs) for mine, theirs in zip(decayed, coupled))


# identity, sweeps and a run


def test_new_keys_at_their_defaults_leave_the_identity_of_older_runs_unchanged(tmp_path: Path) -> None:
    old = tmp_path / "run"  # a run stored before these keys existed: its config.yaml does not name them
    results.write_run(old, "model: {depth: 2}\nseeds: [0]\n", [], {"status": "ok", "device": "cpu", "precision": "fp32"})
    stored = stored_identity(old, results.read_metrics(old))
    defaults = AblateConfig(model=ModelConfig(dropout=0.0, activation="relu"), train=TrainConfig(augment="none", augment_pixels=2))
    assert stored == identity(defaults, CPU_EAGER)
    changed = {"model.dropout": replace(defaults, model=ModelConfig(dropout=0.25)),
               "model.activation": replace(defaults, model=ModelConfig(activation="gelu")),
               "train.augment": replace(defaults, train=TrainConfig(augment="shift")),
               "train.optimizer": replace(defaults, train=TrainConfig(optimizer="adamw"))}
    for key, config in changed.items():
        assert [found[0] for found in conflicts(identity(config, CPU_EAGER), stored)] == [key]


@pytest.mark.parametrize(("sweep", "key", "variants"), [
    ("dropout", "model.dropout", ["model.dropout=0.25", "model.dropout=0.5"]),
    ("activation", "model.activation", ["model.activation=gelu", "model.activation=silu"]),
    ("augment", "train.augment", ["train.augment=shift"]),
    ("optimizer", "train.optimizer", ["train.optimizer=adamw", "train.optimizer=sgd"]),
])
def test_each_new_sweep_plans_its_variants_changing_only_its_key(sweep: str, key: str, variants: list[str], tmp_path: Path) -> None:
    planned = [(v.variant, v.config) for v in checked([f"+sweep={sweep}", f"runs_dir={tmp_path}"]).variants]
    assert [variant.name for variant, _ in planned] == ["baseline", *variants]
    assert all(config.study == sweep for _, config in planned)
    base = planned[0][1]
    for variant, config in planned[1:]:
        changed = [f"{section}.{k}" for section in ("model", "data", "train")
                   for k, v in vars(getattr(config, section)).items() if v != getattr(getattr(base, section), k)]
        assert changed == [key] and changed == list(variant.keys)
        assert parameter_count(build_model(config.model, MNIST, 10)) == SIMPLE_CNN
    if sweep == "optimizer":
        assert {config.train.weight_decay for _, config in planned} == {0.01}  # at 0 adamw would be adam


@pytest.mark.parametrize("expected", [
    ["model.dropout=0.25", "model.dropout=0.5", "model.dropout=0.75"],
    ["model.activation=relu", "model.activation=gelu", "model.activation=silu"],
    ["train.augment=none", "train.augment=shift"],
    ["train.optimizer=adam", "train.optimizer=adamw", "train.optimizer=sgd"],
])
def test_reports_list_the_new_choices_in_the_schema_order(expected: list[str]) -> None:
    scrambled = sorted(expected, reverse=True)
    assert sorted(scrambled, key=lambda name: _order_key(name, *name.split("=", 1))) == expected


def test_a_tiny_optimizer_study_runs_and_reports_its_variants_in_order(workdir: Path) -> None:
    trained = run_ablate("run", "+sweep=optimizer", "seeds=[0,1]", *TINY, cwd=workdir)
    assert trained.returncode == 0, trained.stderr
    for variant in ("baseline", "train.optimizer=adamw", "train.optimizer=sgd"):
        for seed in (0, 1):
            run = results.run_dir(workdir / "runs", "optimizer", variant, seed)
            assert results.read_metrics(run)["status"] == "ok" and results.read_config(run)["train.weight_decay"] == 0.01
    report = run_ablate("report", "--format", "csv", cwd=workdir)
    assert report.returncode == 0, report.stderr
    summary = (workdir / "reports" / "optimizer" / "summary.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in summary[1:]] == ["baseline", "train.optimizer=adamw", "train.optimizer=sgd"]
