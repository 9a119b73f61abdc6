"""The same study through Hydra's launchers: the same run folders and the same numbers as the basic one."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import pytest
import torch
from conftest import TINY, run_ablate

from ablate.store import results
from ablate.study.plan import compose_config

STUDY = ["+sweep=head", "seeds=[0,1]", *TINY]


def numbers(root: Path) -> dict[str, tuple]:
    """Each finished run's path under runs/ and its metrics that training decides."""
    found = {}
    for path in sorted(root.glob("runs/head/*/seed=*")):
        record = results.read_metrics(path)
        found[path.relative_to(root / "runs").as_posix()] = (record["status"], record["test_acc"], record["test_loss"], record["train_loss"])
    return found


def same_numbers(mine: dict[str, tuple], theirs: dict[str, tuple]) -> bool:
    """Same runs, same status and accuracy; losses equal up to float summation order (joblib and Ray run their
    workers with fewer threads, which reorders oneDNN's sums: the 7th significant digit of a loss may differ)."""
    return mine.keys() == theirs.keys() and all(
        mine[k][:2] == theirs[k][:2] and mine[k][2:] == pytest.approx(theirs[k][2:], rel=1e-6) for k in mine)


# Ray on this machine only: no usage report, no auth token written to ~/.ray, loopback addresses
# (Ray swaps 127.0.0.1 for the machine's address unless its single-machine mode is on).
RAY_OFFLINE = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def ray_head(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A running Ray instance, as on a cluster: `ray start --head` in a folder of its own, so its workers start
    there and not where `ablate run` is typed; yields its address, then ends its processes (and only them)."""
    for name, value in RAY_OFFLINE.items():
        monkeypatch.setenv(name, value)
    folder = Path(tempfile.mkdtemp(prefix="ray-"))  # short: Ray's socket paths under it must stay below 108 bytes
    port = free_port()
    start = subprocess.Popen(
        [str(Path(sys.executable).parent / "ray"), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
         f"--dashboard-agent-listen-port={free_port()}", "--num-cpus=2", "--include-dashboard=false",
         "--disable-usage-stats", f"--temp-dir={folder}"],
        cwd=folder, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = start.communicate(timeout=120)[0]
    try:
        assert start.returncode == 0, output
        yield f"127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):  # Ray's processes keep the process group `ray start` made
            os.killpg(start.pid, signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)


def launcher_overrides(launcher: str, request: pytest.FixtureRequest) -> list[str]:
    """The overrides that choose a launcher preset; Ray's joins the running instance of `ray_head` by its address,
    the path where ray.init must get no object_store_memory (hydra issue #2893)."""
    if launcher == "ray_tasks":
        return ["hydra/launcher=ray_tasks", f"hydra.launcher.ray.init.address={request.getfixturevalue('ray_head')}"]
    return [f"hydra/launcher={launcher}"]


@pytest.fixture(scope="module")
def basic_numbers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple]:
    """The study's runs and numbers through Hydra's basic launcher: the reference, trained once for every launcher."""
    folder = tmp_path_factory.mktemp("basic")
    assert run_ablate("run", *STUDY, cwd=folder).returncode == 0
    return numbers(folder)


@pytest.mark.parametrize("launcher", ["parallel", "slurm_local", pytest.param("ray_tasks", marks=pytest.mark.slow)])  # Ray: a daemon
def test_a_launcher_gives_the_same_runs_and_numbers_as_the_basic_launcher(
        tmp_path: Path, launcher: str, basic_numbers: dict[str, tuple], request: pytest.FixtureRequest) -> None:
    other = tmp_path / launcher
    other.mkdir()
    chosen = launcher_overrides(launcher, request)
    result = run_ablate("run", *STUDY, *chosen, cwd=other, process=True)  # launchers start their workers
    assert result.returncode == 0, result.stderr
    assert len(basic_numbers) == 4 and same_numbers(numbers(other), basic_numbers)
    stamps = sorted(p.stat().st_mtime_ns for p in other.glob("runs/head/*/seed=*/metrics.json"))
    again = run_ablate("run", *STUDY, *chosen, cwd=other, process=True)  # resume: nothing is trained again
    assert again.returncode == 0 and "4 ok" in again.stdout
    assert sorted(p.stat().st_mtime_ns for p in other.glob("runs/head/*/seed=*/metrics.json")) == stamps


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


def submitted(*args: str, cwd: Path) -> tuple[int, str, int]:
    """`ablate ARGS` as a process of its own: its pid (the submitter's), exit status and output."""
    process = subprocess.Popen([sys.executable, "-m", "ablate", *args], cwd=cwd, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = process.communicate(timeout=600)[0]
    return process.pid, output, process.returncode


def rounds(root: Path, study: str) -> dict[str, tuple]:
    """Each run of a study: the seeds of the round (or phase) it was trained in, its status and accuracy, the pid that trained it."""
    found = {}
    for path in sorted(root.glob(f"runs/{study}/*/seed=*")):
        record = results.read_metrics(path)
        found[path.relative_to(root / "runs").as_posix()] = (tuple(record["planned_seeds"]), record["status"], record["test_acc"],
                                                             record["process"]["pid"])
    return found


def decisions(output: str) -> str:
    """The last state seeds=auto printed: each comparison's seeds, interval and decision."""
    return "seeds=auto:" + output.split("seeds=auto:")[-1].split("\n\n")[0]


@pytest.fixture(scope="module")
def adaptive_here(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, tuple], str]:
    """The seeds=auto study through the basic launcher, in this process: the reference every launcher must decide alike."""
    folder = tmp_path_factory.mktemp("adaptive-basic")
    result = run_ablate("run", *ADAPTIVE, cwd=folder)
    assert result.returncode == 0, result.stderr
    found = rounds(folder, "auto")
    assert {run[3] for run in found.values()} == {os.getpid()}  # the basic launcher trains in the submitting process
    return found, decisions(result.stdout)


@pytest.mark.parametrize("launcher", ["parallel", pytest.param("ray_tasks", marks=pytest.mark.slow)])  # Ray: a daemon
def test_seeds_auto_trains_each_round_in_the_launchers_workers_and_decides_as_in_process(
        tmp_path: Path, launcher: str, adaptive_here: tuple[dict[str, tuple], str], request: pytest.FixtureRequest) -> None:
    here, decided = adaptive_here
    submitter, output, status = submitted("run", *ADAPTIVE, *launcher_overrides(launcher, request), cwd=tmp_path)
    assert status == 0, output
    found = rounds(tmp_path, "auto")
    assert {path: run[:3] for path, run in found.items()} == {path: run[:3] for path, run in here.items()}
    assert {run[0] for run in found.values()} == {(0,), (1,)}  # two rounds, one seed each
    assert submitter not in {run[3] for run in found.values()}  # every round's runs trained in the launcher's workers
    assert decisions(output) == decided and output.count("Ablation: a round of seeds=auto") == 2


def test_a_tuned_study_trains_both_phases_in_the_launchers_workers(tmp_path: Path) -> None:
    tuned = [*TINY, "data.validation_size=64", "seeds=[0]", "study=t", "+tune=lr", "tune.grid={train.lr:[0.0003,0.03]}",
             "hydra/launcher=parallel"]  # a one-off variant: its tuning phase is still two jobs
    listed = run_ablate("run", *tuned, "--dry-run", cwd=tmp_path)
    assert "then the final runs' jobs, go through hydra/launcher=parallel (joblib: up to 2 worker processes" in listed.stdout
    submitter, output, status = submitted("run", *tuned, cwd=tmp_path)
    assert status == 0, output
    tuning, final = rounds(tmp_path, "t.tune"), rounds(tmp_path, "t")
    assert len(tuning) == 4 and {run[0] for run in tuning.values()} == {(100, 101)} and len(final) == 1
    assert submitter not in {run[3] for run in [*tuning.values(), *final.values()]}
    assert "Ablation: tuning, 2 variant(s) of study t.tune" in output and "Ablation: final runs, 1 variant(s)" in output
