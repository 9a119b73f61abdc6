"""Runs that survive a kill mid-run: per-epoch checkpoints, exact resume, stop signals, refused and damaged checkpoints."""

from __future__ import annotations

import csv
import os
import signal
from pathlib import Path
from typing import Callable

import pytest
import torch
from conftest import TINY, checked, run_ablate, signalled_at_step

from ablate.config import ConfigError
from ablate.store import checkpoints, results
from ablate.training import checkpoint
from ablate.training.stopping import StopSignals

# 3 epochs of 16 steps (1024 images, batches of 64) per seed: room to be stopped in the middle.
LONG = [*TINY, "data.train_size=1024", "train.epochs=3", "seeds=[0,1]", "study=long"]
STEPS_PER_EPOCH = 16
TIMINGS = {"train_seconds", "wall_seconds", "started_at", "finished_at", "resumed", "process"}  # resumed: where it stopped, compared apart; process: which one trained it


def numbers(root: Path) -> dict[str, dict]:
    """Every run under root/runs: its metrics.json without timings, and its history.csv rows without seconds."""
    found = {}
    for run in sorted(root.glob("runs/long/*/seed=*")):
        record = results.read_metrics(run)
        assert record is not None, f"{run} did not finish"
        with (run / results.HISTORY_FILE).open() as table:
            history = [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(table)]
        found[run.relative_to(root).as_posix()] = {
            "metrics": {k: v for k, v in record.items() if k not in TIMINGS}, "history": history}
    return found


_references: dict[str, dict] = {}


@pytest.fixture
def reference(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., dict]:
    """The uninterrupted study's numbers for a strategy and further overrides (each trained once per test process)."""
    def numbers_for(strategy: str, *more: str) -> dict:
        key = " ".join([strategy, *more])
        if key not in _references:
            root = tmp_path_factory.mktemp("uninterrupted")
            finished = run_ablate("run", *LONG, f"train.strategy={strategy}", *more, cwd=root)
            assert finished.returncode == 0, finished.stderr
            assert not list(root.glob("runs/**/checkpoint.pt")), "a finished run keeps no checkpoint"
            _references[key] = numbers(root)
        return _references[key]
    return numbers_for


def first_checkpoint(root: Path) -> Path:
    return root / "runs/long/baseline/seed=0" / checkpoints.CHECKPOINT_FILE


@pytest.mark.parametrize("strategy", ["eager", "vectorized"])
def test_sigkill_after_epoch_one_then_rerun_gives_the_uninterrupted_numbers(
        tmp_path: Path, strategy: str, reference: Callable[..., dict]) -> None:
    command = [*LONG, f"train.strategy={strategy}"]
    killed = signalled_at_step(STEPS_PER_EPOCH + 4, signal.SIGKILL, "run", *command, cwd=tmp_path)  # in epoch 2
    assert killed.returncode == -signal.SIGKILL
    assert first_checkpoint(tmp_path).is_file()  # epoch 1's, of seed 0 (eager) or of the group (vectorized)
    run = first_checkpoint(tmp_path).parent
    assert not results.is_finished(run), "a checkpoint is never a finished run"
    rows = list(csv.DictReader((run / results.HISTORY_FILE).open()))
    assert len(rows) >= 1 and rows[0]["epoch"] == "1"  # live progress: a row per finished epoch
    listing = run_ablate("run", *command, "--dry-run", cwd=tmp_path)
    assert f"{run.relative_to(tmp_path)} (in progress: " in listing.stdout and "epochs done, resumes at epoch" in listing.stdout

    rerun = run_ablate("run", *command, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming seed 0 of variant long/baseline at epoch " in rerun.stdout + rerun.stderr
    assert numbers(tmp_path) == reference(strategy)
    resumed = results.read_metrics(run)["resumed"]
    assert resumed and resumed[0]["epoch"] >= 1 and resumed[0]["step"] == 0  # went on from an epoch's end
    assert not list(tmp_path.glob("runs/**/checkpoint.pt")) and not list(tmp_path.glob("runs/**/*.tmp"))


@pytest.mark.parametrize("stop, strategy", [(signal.SIGTERM, "eager"), (signal.SIGUSR1, "vectorized")])
def test_stop_signal_checkpoints_mid_epoch_and_exits_by_that_signal(
        tmp_path: Path, stop: signal.Signals, strategy: str, reference: Callable[..., dict]) -> None:
    augment = "train.augment=shift"  # random shifts drawn per epoch: a mid-epoch resume must draw the same ones
    command = [*LONG, f"train.strategy={strategy}", augment, "train.checkpoint_every=0"]  # only the signal writes one
    stopped = signalled_at_step(STEPS_PER_EPOCH + 7, stop, "run", *command, cwd=tmp_path)  # step 7 of epoch 2
    assert stopped.returncode == -stop, stopped.stderr  # ended by the signal: 128 + its number in a shell
    assert f"stopped by {stop.name}; checkpoint written" in stopped.stdout + stopped.stderr
    found = checkpoints.read(first_checkpoint(tmp_path).parent)
    assert found is not None and (found[1].epoch, found[1].step) == (1, 6)  # 1 epoch and 6 steps done: mid-epoch

    rerun = run_ablate("run", *command, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert numbers(tmp_path) == reference(strategy, augment)


@pytest.mark.parametrize("every, written", [(0, [False] * 8), (1, [False] * 4 + [True] * 4)])
def test_checkpoint_every_epochs_decides_whether_an_epoch_leaves_a_checkpoint(
        workdir: Path, monkeypatch: pytest.MonkeyPatch, every: int, written: list[bool]) -> None:
    seen, plain = [], StopSignals.requested

    def requested(signals: StopSignals) -> bool:  # asked before each of the 2 x 4 steps
        seen.append(first_checkpoint(workdir).is_file())
        return plain(signals)

    monkeypatch.setattr(StopSignals, "requested", requested)
    done = run_ablate("run", *TINY, "train.epochs=2", "seeds=[0]", "study=long", f"train.checkpoint_every={every}", cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert seen == written and not first_checkpoint(workdir).is_file()  # a finished run keeps none


def test_damaged_checkpoint_is_ignored_with_a_warning(tmp_path: Path) -> None:
    folder = tmp_path / "runs/tiny/baseline/seed=0"
    folder.mkdir(parents=True)
    (folder / checkpoints.CHECKPOINT_FILE).write_bytes(b"PK\x03\x04 cut short")
    done = run_ablate("run", *TINY, "seeds=[0]", "study=tiny", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "checkpoint.pt is damaged" in done.stdout and "the run starts over" in done.stdout
    record = results.read_metrics(folder)
    assert record["status"] == "ok" and record["resumed"] == []


def test_checkpoint_of_other_settings_is_refused_before_training(workdir: Path) -> None:
    overrides = [*TINY, "seeds=[0]", "study=tiny", f"runs_dir={workdir / 'runs'}"]
    folder = workdir / "runs/tiny/baseline/seed=0"
    state = checkpoints.SeedState(seed=0, group=[0], strategy="eager", epoch=1, step=0, order=checkpoint.rng_state()["cpu"],
                                 trainer={}, rng=checkpoint.rng_state())
    checkpoints.write({0: folder}, [state], settings="written-under-other-settings")
    with pytest.raises(ConfigError, match="checkpoint.pt was written by a run with other settings"):
        checked(overrides)
    assert (folder / checkpoints.CHECKPOINT_FILE).is_file()  # refused, never deleted


def test_runs_dir_where_flock_keeps_a_second_process_out_is_accepted(workdir: Path) -> None:
    results.check_locking(workdir)  # tmpfs or a local disk: flock works


def test_runs_dir_where_flock_fails_is_refused_before_training(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_flock(handle: object, operation: int) -> None:  # what a Lustre mount without -o flock answers
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(results.fcntl, "flock", no_flock)
    with pytest.raises(ConfigError, match=r"runs_dir=.*file locks do not work there \(flock failed: Function not implemented\)"):
        checked([*TINY, f"runs_dir={workdir / 'runs'}"])
    assert not (workdir / "runs" / "default").exists()  # nothing trained


def test_report_of_a_study_still_training_counts_its_run_as_in_progress(workdir: Path) -> None:
    assert run_ablate("run", *TINY, "seeds=[0,1]", "study=tiny", cwd=workdir).returncode == 0
    training = workdir / "runs/tiny/baseline/seed=1"
    (training / results.METRICS_FILE).unlink()  # seed 1 as it is while it trains: a checkpoint, no metrics.json
    state = checkpoints.SeedState(seed=1, group=[1], strategy="eager", epoch=0, step=2, order=checkpoint.rng_state()["cpu"],
                                 trainer={}, rng=checkpoint.rng_state())
    checkpoints.write({1: training}, [state], settings="any")
    report = run_ablate("report", "runs/tiny", cwd=workdir)
    assert report.returncode == 0, report.stderr
    summary = (workdir / "reports/tiny/summary.md").read_text()
    assert "in progress: seed 1" in summary and "missing seed" not in summary


def test_a_group_checkpoint_missing_a_seed_is_ignored_so_the_group_starts_over_together(
        workdir: Path, caplog: pytest.LogCaptureFixture) -> None:
    folders = {seed: workdir / f"seed={seed}" for seed in (0, 1)}
    state = checkpoints.SeedState(seed=0, group=[0, 1], strategy="vectorized", epoch=1, step=0,
                                 order=checkpoint.rng_state()["cpu"], trainer={}, rng=checkpoint.rng_state())
    checkpoints.write(folders, [state], settings="mine")  # seed 1's file never written (killed in between)
    saver = checkpoint.RunCheckpoints(folders, "mine", "tiny/baseline", epochs=3, every=1)
    with caplog.at_level("WARNING", logger="ablate"):
        assert saver.resume(0) is None and saver.resume(1) is None
    assert "seed 0's checkpoint is ignored" in caplog.text


def test_negative_checkpoint_every_is_refused(workdir: Path) -> None:
    with pytest.raises(ConfigError, match=r"train.checkpoint_every=-1 is not allowed; it must be 0 \(no checkpoints\)"):
        checked([*TINY, "train.checkpoint_every=-1", f"runs_dir={workdir / 'runs'}"])


@pytest.mark.parametrize("meanwhile", ["replaced", "removed"])
def test_a_checkpoint_its_trainer_replaces_or_removes_while_it_is_read_is_read_whole_never_called_damaged(
        workdir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, meanwhile: str) -> None:
    def state(epoch: int, size: int) -> checkpoints.SeedState:
        return checkpoints.SeedState(seed=0, group=[0], strategy="eager", epoch=epoch, step=0, order=checkpoint.rng_state()["cpu"],
                                     trainer={"w": torch.arange(size, dtype=torch.float32)}, rng={})

    folder = workdir / "seed=0"
    checkpoints.write({0: folder}, [state(1, 10)], settings="mine")
    size = os.path.getsize

    def another_process_goes_on(name: str) -> int:  # torch.load asks between its two openings of the file
        monkeypatch.setattr(os.path, "getsize", size)
        checkpoints.write({0: folder}, [state(2, 5000)], settings="mine") if meanwhile == "replaced" else checkpoints.remove(folder)
        return size(name)

    monkeypatch.setattr(os.path, "getsize", another_process_goes_on)
    with caplog.at_level("WARNING", logger="ablate"):
        found = checkpoints.read(folder)
    assert "damaged" not in caplog.text
    assert found is not None and found[1].epoch == 1 and torch.equal(found[1].trainer["w"], torch.arange(10, dtype=torch.float32))
