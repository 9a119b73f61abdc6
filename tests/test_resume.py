"""Nothing lost, nothing mixed: kills, Ctrl-C, failures, changed settings, two writers, dry runs."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from conftest import TINY, checked, run_ablate, signalled_at_step, train

from ablate.config import AblateConfig, DataConfig, TrainConfig
from ablate.store import results
from ablate.study.identity import stored_identity
from ablate.study.preflight import one_line
from ablate.study.resolve import auto_precision
from ablate.training import engine

STUDY = ["+sweep=batchnorm", "seeds=[0,1,2]", *TINY, "data.train_size=512", "train.epochs=3"]
STEPS_PER_RUN = 3 * 512 // 64  # one seed's steps: 3 epochs of 8 batches; seeds train one after the other on the CPU


def finished(root: Path) -> dict[str, dict]:
    """Every finished run under root/runs: its path -> its metrics (timings left out)."""
    runs = {}
    for path in sorted(root.glob("runs/*/*/seed=*")):
        record = results.read_metrics(path)
        if record is not None:
            runs[path.relative_to(root).as_posix()] = {k: record[k] for k in ("test_acc", "test_loss", "train_loss", "status")}
    return runs


def test_sigkill_mid_study_then_rerun_trains_exactly_the_missing_runs(tmp_path: Path) -> None:
    reference = tmp_path / "uninterrupted"
    reference.mkdir()
    assert run_ablate("run", *STUDY, cwd=reference).returncode == 0
    killed = tmp_path / "killed"
    killed.mkdir()
    assert signalled_at_step(STEPS_PER_RUN + 5, signal.SIGKILL, "run", *STUDY, cwd=killed).returncode == -signal.SIGKILL
    before = finished(killed)
    assert list(before) == ["runs/batchnorm/baseline/seed=0"], "killed in the second run: the first is finished"
    rerun = run_ablate("run", *STUDY, cwd=killed)
    assert rerun.returncode == 0, rerun.stderr
    after = finished(killed)
    assert {k: after[k] for k in before} == before  # finished runs untouched
    assert after == {k.replace("uninterrupted", "killed"): v for k, v in finished(reference).items()}  # same numbers
    assert not list(killed.glob("runs/**/*.tmp"))


def test_ctrl_c_keeps_finished_runs_and_says_how_to_resume(tmp_path: Path) -> None:
    interrupted = signalled_at_step(2 * STEPS_PER_RUN + 13, signal.SIGINT, "run", *STUDY, cwd=tmp_path)  # 3rd run, epoch 2
    assert interrupted.returncode == 130
    assert "run the same command again" in interrupted.stderr and "Traceback" not in interrupted.stderr
    assert "Interrupted. 2 finished run(s) and 1 checkpoint(s) of runs in training (" in interrupted.stderr
    kept = finished(tmp_path)
    assert len(kept) == 2 and all(run["status"] == "ok" for run in kept.values())
    assert not list(tmp_path.glob("runs/**/*.tmp"))


def test_a_half_written_run_is_not_taken_for_finished(tmp_path: Path) -> None:
    folder = results.run_dir(tmp_path / "runs", "default", "baseline", 0)
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text('{"status": "ok", "test_a')  # cut off mid-write, by hand
    (folder / ".metrics.json.abc123.tmp").write_text("{")
    assert not results.is_finished(folder)
    result = run_ablate("run", "seeds=[0]", *TINY, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads((folder / "metrics.json").read_text())["status"] == "ok"


def test_a_failing_run_is_recorded_and_the_others_go_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = engine.train_seed

    def out_of_memory_on_seed_one(*args, **kwargs):
        if args[3] == 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "train_seed", out_of_memory_on_seed_one)
    cfg = AblateConfig(data=DataConfig(name="synthetic", train_size=64, test_size=32, image_size=12),
                       train=TrainConfig(epochs=1), seeds=[0, 1, 2], device="cpu", runs_dir=str(tmp_path))
    summary = train(cfg)
    assert (summary.trained, summary.failed) == (3, 1)
    statuses = {seed: results.read_metrics(results.run_dir(tmp_path, "default", "baseline", seed)) for seed in (0, 1, 2)}
    assert [statuses[s]["status"] for s in (0, 1, 2)] == ["ok", "failed", "ok"]
    assert "CUDA out of memory" in statuses[1]["error"]


def test_diverged_runs_make_the_command_exit_non_zero_with_a_summary(tmp_path: Path) -> None:
    result = run_ablate("run", "seeds=[0,1]", *TINY, "train.lr=1e12", "train.optimizer=sgd", "train.epochs=3", cwd=tmp_path)
    assert result.returncode == 1
    assert "2 diverged" in result.stdout and "diverged: default/baseline/seed=0" in result.stdout
    record = results.read_metrics(results.run_dir(tmp_path / "runs", "default", "baseline", 0))
    assert record["status"] == "diverged" and record["diverged_epoch"] >= 1


def test_changed_settings_are_refused_not_mixed_with_finished_runs(tmp_path: Path) -> None:
    assert run_ablate("run", "seeds=[0]", *TINY, cwd=tmp_path).returncode == 0
    before = finished(tmp_path)
    changed = run_ablate("run", "seeds=[0]", *TINY, "train.epochs=2", cwd=tmp_path)
    assert changed.returncode == 2
    assert "train.epochs: 1 -> 2" in changed.stderr and "study=NAME" in changed.stderr
    assert finished(tmp_path) == before
    assert run_ablate("run", "seeds=[0]", *TINY, "train.epochs=2", "study=longer", cwd=tmp_path).returncode == 0


def test_auto_is_eager_on_the_cpu_so_either_resumes_the_study_but_vectorized_is_refused(tmp_path: Path) -> None:
    assert run_ablate("run", "seeds=[0]", *TINY, cwd=tmp_path).returncode == 0  # train.strategy=auto
    again = run_ablate("run", "seeds=[0,1]", *TINY, "train.strategy=eager", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "1 finished run(s) skipped, 1 to train" in again.stdout + again.stderr and len(finished(tmp_path)) == 2
    vectorized = run_ablate("run", "seeds=[0,1]", *TINY, "train.strategy=vectorized", cwd=tmp_path)
    assert vectorized.returncode == 2 and "train.strategy: eager -> vectorized" in vectorized.stderr
    assert "to continue it, add train.strategy=eager" in vectorized.stderr


# A run as main at fe4f29b wrote it, before train.strategy, the transfer keys and stored identities existed.
OLD_CONFIG = """model: {depth: 2, width: 32, kernel_size: 3, dilation: 1, pool: max, batchnorm: false, head: flatten, hidden: 128,
  min_map_size: 4, max_width: 256}
data: {name: synthetic, train_size: 256, test_size: 128, subset_seed: 0, root: data, download: false, image_size: 16,
  channels: 1, num_classes: 10}
train: {epochs: 1, batch_size: 64, lr: 0.001, optimizer: adam, momentum: 0.9, weight_decay: 0.0}
seeds: [0]
device: cpu
precision: auto
runs_dir: runs
study: default
variant: baseline
"""
OLD_METRICS = {"status": "ok", "seed": 0, "variant": "baseline", "factor": "", "value": "", "test_acc": 0.5, "test_loss": 1.0,
               "train_loss": 1.0, "train_acc": 0.5, "train_seconds": 1.0, "device": "cpu", "precision": "fp32",
               "config_hash": "7f8f3d7f4b93", "planned_seeds": [0], "params": 151306, "receptive_field": 10}


def test_a_run_stored_before_identities_existed_resumes_and_pools_by_its_derived_identity(tmp_path: Path) -> None:
    old = tmp_path / "runs/default/baseline/seed=0"
    results.write_run(old, OLD_CONFIG, [], OLD_METRICS)
    if auto_precision("cpu") != "fp32":  # precision=auto means bf16 on this CPU now: the refusal says how to continue
        refused = run_ablate("run", "seeds=[0,1]", *TINY, cwd=tmp_path)
        assert refused.returncode == 2 and "(precision: fp32 -> bf16)" in refused.stderr
        assert "to continue it, add precision=fp32" in refused.stderr
    resumed = run_ablate("run", "seeds=[0,1]", *TINY, "precision=fp32", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "1 finished run(s) skipped, 1 to train" in resumed.stdout + resumed.stderr
    assert results.read_metrics(old)["test_acc"] == 0.5  # untouched
    new = results.read_metrics(tmp_path / "runs/default/baseline/seed=1")
    assert dict(stored_identity(old, OLD_METRICS)) == new["identity"]
    assert run_ablate("report", cwd=tmp_path).returncode == 0
    refused = run_ablate("run", "seeds=[0]", *TINY, "precision=fp32", "train.optimizer=sgd", cwd=tmp_path)
    assert refused.returncode == 2 and "train.optimizer: adam -> sgd" in refused.stderr


def test_a_run_locked_by_another_process_is_never_trained_twice(tmp_path: Path) -> None:
    locked = results.run_dir(tmp_path / "runs", "default", "baseline", 0)
    lock = results.RunLock(locked)
    assert lock.acquire()
    try:
        assert not results.RunLock(locked).acquire()  # a second holder is refused
        busy = run_ablate("run", "seeds=[0,1]", *TINY, cwd=tmp_path)
    finally:
        lock.release()
    assert busy.returncode == 1  # seed 0 is not finished yet
    assert "1 being trained by another process, 1 to train" in busy.stdout + busy.stderr
    assert "1 ok, 1 in progress elsewhere\n  in progress elsewhere: default/baseline/seed=0" in busy.stdout
    assert list(finished(tmp_path)) == ["runs/default/baseline/seed=1"]
    assert run_ablate("run", "seeds=[0,1]", *TINY, cwd=tmp_path).returncode == 0
    assert len(finished(tmp_path)) == 2


def test_dry_run_lists_finished_and_pending_runs_and_trains_nothing(tmp_path: Path) -> None:
    assert run_ablate("run", "+sweep=head", "seeds=[0]", *TINY, cwd=tmp_path).returncode == 0
    dry = run_ablate("run", "+sweep=head", "seeds=[0,1]", *TINY, "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "4 run(s) planned, 2 finished, 2 to train" in dry.stdout
    assert "to train  runs/head/model.head=gap/seed=1" in dry.stdout
    assert len(finished(tmp_path)) == 2


def test_a_damaged_dataset_or_unwritable_runs_dir_is_refused_before_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(Exception) as caught:
        checked(["data=synthetic", f"runs_dir={blocker}/runs"])
    assert one_line(caught.value).startswith(f"runs_dir='{blocker}/runs': cannot write there")
    damaged = tmp_path / "mnist.pkl.gz"
    damaged.write_bytes(b"\x1f\x8b truncated")
    monkeypatch.setattr("ablate.data.datasets.embedded_mnist_file", lambda: damaged)
    monkeypatch.setattr("ablate.data.catalog.embedded_mnist_file", lambda: damaged)
    with pytest.raises(Exception, match="fails its checksum"):
        checked(["data=mnist", "data.subset_seed=12345", f"runs_dir={tmp_path}/runs"])  # a config no earlier test cached
