"""Studies through Hydra's launchers: the same run folders, numbers and decisions as the basic one, trained in the
launcher's workers; the Ray preset's GPU request; a CUDA study sent from a CPU host; a tuned study's phases."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY, run_ablate

from ablate.store import results
from ablate.study.plan import compose_config


@pytest.mark.parametrize(("device", "cuda_visible", "gpus"), [("cpu", True, 0), ("auto", False, 0), ("auto", True, 1), ("cuda", True, 1)])
def test_the_ray_preset_gives_a_job_a_gpu_only_when_it_trains_on_cuda(
        monkeypatch: pytest.MonkeyPatch, device: str, cuda_visible: bool, gpus: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda_visible)
    composed = compose_config(["+sweep=head", "hydra/launcher=ray_tasks", f"device={device}"])
    assert composed.hydra.launcher.ray.remote.num_gpus == gpus


def test_a_cuda_study_sent_to_slurm_from_a_cpu_host_is_not_refused_there_and_each_job_fails_naming_device(tmp_path: Path) -> None:
    assert not torch.cuda.is_available()  # this machine stands for a CPU login node and (slurm_local) its worker
    tiny = [a for a in TINY if not a.startswith("device=")]
    result = run_ablate("run", "+sweep=head", "seeds=[0]", *tiny, "device=cuda", "hydra/launcher=slurm_local", cwd=tmp_path, process=True)
    assert result.returncode == 1, result.stderr  # submitted and launched (a refusal before launching exits 2)
    assert "2 missing" in result.stdout and not list(tmp_path.glob("runs/head/*/seed=*/metrics.json"))
    job_logs = "".join(path.read_text() for path in tmp_path.glob("runs/.submitit/*/*_log.*"))  # its output and its log lines
    for name in ("baseline", "model.head=gap"):
        assert re.search(rf"head/{re.escape(name)}: not trained: (variant {re.escape(name)}: )?device=cuda is not allowed here", job_logs)


# seeds=auto in two rounds of one seed (budget 2): round 1 trains seed 0 of both variants, round 2 seed 1.
ADAPTIVE = ["model.batchnorm=true,false", "seeds=auto", "adaptive.budget=2", "adaptive.batch=1", "study=auto", *TINY]
# Ray's preset joins the running head of conftest's `ray_head` by its address, the path where ray.init must get no
# object_store_memory (hydra issue #2893); all Ray tests share that head, so they run in one xdist process.
RAY = pytest.param("ray_tasks", marks=[pytest.mark.slow, pytest.mark.xdist_group("ray")])  # Ray: a daemon


def launcher_overrides(launcher: str, request: pytest.FixtureRequest) -> list[str]:
    """The overrides that choose a launcher preset (Ray's with the running head's address)."""
    if launcher == "ray_tasks":
        return ["hydra/launcher=ray_tasks", f"hydra.launcher.ray.init.address={request.getfixturevalue('ray_head')}"]
    return [f"hydra/launcher={launcher}"]


def submitted(*args: str, cwd: Path) -> tuple[int, str, int]:
    """`ablate ARGS` as a process of its own: its pid (the submitter's), exit status and output."""
    process = subprocess.Popen([sys.executable, "-m", "ablate", *args], cwd=cwd, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = process.communicate(timeout=600)[0]
    return process.pid, output, process.returncode


def rounds(root: Path, study: str) -> dict[str, tuple]:
    """Each run of a study: the seeds of the round (or phase) it was trained in, its status, accuracy and losses,
    the pid that trained it."""
    found = {}
    for path in sorted(root.glob(f"runs/{study}/*/seed=*")):
        record = results.read_metrics(path)
        found[path.relative_to(root / "runs").as_posix()] = (tuple(record["planned_seeds"]), record["status"], record["test_acc"],
                                                             (record["test_loss"], record["train_loss"]), record["process"]["pid"])
    return found


def same_runs(mine: dict[str, tuple], theirs: dict[str, tuple]) -> bool:
    """Same run folders, each trained in the same round with the same status and accuracy; losses equal up to float
    summation order (joblib and Ray run their workers with fewer threads, which reorders oneDNN's sums: the 7th
    significant digit of a loss may differ)."""
    return mine.keys() == theirs.keys() and all(
        mine[k][:3] == theirs[k][:3] and mine[k][3] == pytest.approx(theirs[k][3], rel=1e-6) for k in mine)


def decisions(output: str) -> str:
    """The last state seeds=auto printed: each comparison's seeds, interval and decision."""
    return "seeds=auto:" + output.split("seeds=auto:")[-1].split("\n\n")[0]


@pytest.fixture(scope="module")
def adaptive_here(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, tuple], str]:
    """The seeds=auto study through the basic launcher, in this process: the reference every launcher must match."""
    folder = tmp_path_factory.mktemp("adaptive-basic")
    result = run_ablate("run", *ADAPTIVE, cwd=folder)
    assert result.returncode == 0, result.stderr
    found = rounds(folder, "auto")
    assert {run[4] for run in found.values()} == {os.getpid()}  # the basic launcher trains in the submitting process
    return found, decisions(result.stdout)


@pytest.mark.parametrize("launcher", ["parallel", "slurm_local", RAY])
def test_a_launcher_trains_each_round_in_its_workers_with_the_basic_launchers_runs_numbers_and_decisions(
        tmp_path: Path, launcher: str, adaptive_here: tuple[dict[str, tuple], str], request: pytest.FixtureRequest) -> None:
    here, decided = adaptive_here
    command = ["run", *ADAPTIVE, *launcher_overrides(launcher, request)]
    submitter, output, status = submitted(*command, cwd=tmp_path)
    assert status == 0, output
    found = rounds(tmp_path, "auto")
    assert len(found) == 4 and same_runs(found, here)  # the same run folders and numbers as the basic launcher's
    assert {run[0] for run in found.values()} == {(0,), (1,)}  # two rounds, one seed each
    assert submitter not in {run[4] for run in found.values()}  # every round's runs trained in the launcher's workers
    assert decisions(output) == decided and output.count("Ablation: a round of seeds=auto") == 2
    stamps = sorted(p.stat().st_mtime_ns for p in tmp_path.glob("runs/auto/*/seed=*/metrics.json"))
    again = run_ablate(*command, cwd=tmp_path)  # the same command again: decided from the stored runs, nothing trains
    assert again.returncode == 0 and "Study auto: 4 ok" in again.stdout and "Ablation: a round" not in again.stdout
    assert sorted(p.stat().st_mtime_ns for p in tmp_path.glob("runs/auto/*/seed=*/metrics.json")) == stamps


def test_a_tuned_study_trains_both_phases_in_the_launchers_workers(tmp_path: Path) -> None:
    tuned = [*TINY, "data.validation_size=64", "seeds=[0]", "study=t", "+tune=lr", "tune.grid={train.lr:[0.0003,0.03]}",
             "hydra/launcher=parallel"]  # a one-off variant: its tuning phase is still two jobs
    listed = run_ablate("run", *tuned, "--dry-run", cwd=tmp_path)
    assert "then the final runs' jobs, go through hydra/launcher=parallel (joblib: up to 2 worker processes" in listed.stdout
    submitter, output, status = submitted("run", *tuned, cwd=tmp_path)
    assert status == 0, output
    tuning, final = rounds(tmp_path, "t.tune"), rounds(tmp_path, "t")
    assert len(tuning) == 4 and {run[0] for run in tuning.values()} == {(100, 101)} and len(final) == 1
    assert submitter not in {run[4] for run in [*tuning.values(), *final.values()]}
    assert "Ablation: tuning, 2 variant(s) of study t.tune" in output and "Ablation: final runs, 1 variant(s)" in output
