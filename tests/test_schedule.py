"""The training recipe's keys (train.schedule, train.warmup_epochs, train.label_smoothing, train.grad_clip): each
changes the numbers, vectorized seeds train as eager ones do, a run stopped mid-epoch resumes exactly, the lr
follows the schedule batch by batch, and the sweep file varies them one at a time."""

from __future__ import annotations

import csv
import signal
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import TINY, checked, run_ablate

from ablate.config import DataConfig, ModelConfig, TrainConfig
from ablate.data.datasets import load_dataset
from ablate.store import checkpoints, results
from ablate.training.engine import train_seed, train_vectorized
from ablate.training.schedule import make_schedule
from ablate.training.stopping import StopSignals

CPU = torch.device("cpu")
BASE = TrainConfig(epochs=2, batch_size=32)
CHANGES = {"train.schedule=cosine": {"schedule": "cosine"}, "train.schedule=onecycle": {"schedule": "onecycle"},
           "train.schedule=step": {"schedule": "step"}, "train.warmup_epochs=0.5": {"warmup_epochs": 0.5},
           "train.label_smoothing=0.1": {"label_smoothing": 0.1}, "train.grad_clip=0.1": {"grad_clip": 0.1}}
TIGHT = {"rtol": 1e-5, "atol": 1e-6}  # as tests/test_vectorized.py: vmap sums in another order, a few ulps apart


def tiny():  # noqa: ANN201 - a Dataset
    return load_dataset(DataConfig(name="synthetic", train_size=128, test_size=64, image_size=16))


def eager_losses(train: TrainConfig, seed: int = 0) -> torch.Tensor:
    steps: list[torch.Tensor] = []
    train_seed(ModelConfig(), train, tiny(), seed, CPU, "fp32", lambda epoch, losses: steps.append(losses.clone()))
    return torch.cat(steps)


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_each_recipe_key_changes_the_losses_and_vectorized_seeds_train_as_eager_ones(change: dict) -> None:
    train = replace(BASE, **change)
    plain, changed = eager_losses(BASE), eager_losses(train)
    assert plain[0] == changed[0] or "label_smoothing" in change  # the first batch's loss comes before any step
    assert not torch.allclose(plain, changed, rtol=0, atol=1e-3)
    steps: list[torch.Tensor] = []
    train_vectorized(ModelConfig(), train, tiny(), [0, 1], CPU, "fp32", lambda epoch, losses: steps.append(losses.clone()))
    together = torch.stack(steps)
    torch.testing.assert_close(together[:, 0], changed, **TIGHT)
    torch.testing.assert_close(together[:, 1], eager_losses(train, seed=1), **TIGHT)


def lrs(train: TrainConfig, steps_per_epoch: int) -> list[float]:
    """The lr each batch trains at under the schedule."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = make_schedule(optimizer, train, steps_per_epoch)
    seen = []
    for _ in range(train.epochs * steps_per_epoch):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if schedule is not None:
            schedule.step()
    return seen


def test_the_lr_follows_each_schedule_batch_by_batch() -> None:
    assert lrs(TrainConfig(epochs=2), 4) == [1.0] * 8
    assert lrs(TrainConfig(epochs=2, warmup_epochs=0.75), 4) == pytest.approx([0.25, 0.5, 0.75, 1, 1, 1, 1, 1])
    assert lrs(TrainConfig(epochs=2, schedule="step", warmup_epochs=0.5), 4) == pytest.approx([1 / 3, 2 / 3, 1, 1, 0.1, 0.1, 0.01, 0.01])
    cosine = lrs(TrainConfig(epochs=2, schedule="cosine"), 4)
    assert cosine[0] == 1.0 and all(a > b for a, b in zip(cosine, cosine[1:])) and cosine[-1] < 0.05
    onecycle = lrs(TrainConfig(epochs=2, schedule="onecycle"), 10)
    peak = onecycle.index(max(onecycle))
    assert onecycle[0] == pytest.approx(1 / 25) and max(onecycle) == pytest.approx(1.0) and 4 <= peak <= 6
    assert onecycle[-1] < 1e-3


@pytest.mark.parametrize(("strategy", "schedule"), [
    ("eager", ["train.schedule=step", "train.warmup_epochs=0.5"]), ("vectorized", ["train.schedule=onecycle"]),
    ("vectorized", ["train.schedule=cosine", "train.warmup_epochs=1.5"]),
])
def test_a_run_stopped_mid_epoch_under_a_schedule_resumes_exactly(workdir: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   strategy: str, schedule: list[str]) -> None:
    command = [*TINY, "train.epochs=2", "seeds=[0,1]", f"train.strategy={strategy}", "train.checkpoint_every=0",
               *schedule, "train.label_smoothing=0.1", "train.grad_clip=1.0"]
    whole = run_ablate("run", *command, "study=whole", cwd=workdir)
    assert whole.returncode == 0, whole.stderr
    asked = []

    def requested(signals: StopSignals) -> bool:  # asked before every step: stop before step 7 (epoch 2, step 3 of 4)
        asked.append(True)
        if len(asked) == 7:
            signals.received = signal.SIGTERM
        return signals.received is not None

    monkeypatch.setattr(StopSignals, "requested", requested)
    monkeypatch.setattr(StopSignals, "hand_on", lambda signals: None)  # in process: the signal is not delivered
    run_ablate("run", *command, "study=stopped", cwd=workdir)
    found = checkpoints.read(results.run_dir(workdir / "runs", "stopped", "baseline", 0))
    assert found is not None and (found[1].epoch, found[1].step) == (1, 2)
    monkeypatch.undo()
    rerun = run_ablate("run", *command, "study=stopped", cwd=workdir)
    assert rerun.returncode == 0, rerun.stderr
    for seed in (0, 1):
        mine, theirs = (results.run_dir(workdir / "runs", study, "baseline", seed) for study in ("stopped", "whole"))
        assert results.read_metrics(mine)["test_loss"] == results.read_metrics(theirs)["test_loss"]
        assert history(mine) == history(theirs)


def history(run: Path) -> list[dict[str, str]]:
    with (run / results.HISTORY_FILE).open() as table:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(table)]


@pytest.mark.parametrize(("override", "allowed"), [
    ("train.schedule=linear", "constant, cosine, onecycle, step"),
    ("train.warmup_epochs=1", "[0, train.epochs) = [0, 1)"),
    ("train.warmup_epochs=-0.5", "[0, train.epochs)"),
    ("train.schedule=onecycle train.warmup_epochs=0.5", "warms up by itself"),
    ("train.label_smoothing=1.0", "[0, 1)"),
    ("train.grad_clip=0", "null (no clipping) or a norm > 0"),
])
def test_bad_recipe_values_get_one_line_and_exit_2_before_training(workdir: Path, override: str, allowed: str) -> None:
    refused = run_ablate("run", *TINY, *override.split(), cwd=workdir)
    key = override.split()[-1].split("=")[0]
    assert refused.returncode == 2 and f"{key}=" in refused.stderr and allowed in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and not (workdir / "runs").exists()


def test_the_recipe_sweep_varies_each_key_alone_around_the_constant_baseline(tmp_path: Path) -> None:
    planned = checked(["+sweep=recipe", f"runs_dir={tmp_path}"])
    names = [v.variant.name for v in planned.variants]
    assert names == ["baseline", "train.schedule=cosine", "train.schedule=onecycle", "train.schedule=step",
                     "train.warmup_epochs=1.0", "train.label_smoothing=0.1", "train.grad_clip=1.0"]
    base = planned.variants[0].config.train
    assert (base.schedule, base.warmup_epochs, base.label_smoothing, base.grad_clip) == ("constant", 0.0, 0.0, None)
    hashes = {v.identity_hash for v in planned.variants}
    assert len(hashes) == len(names)  # each key is identity
