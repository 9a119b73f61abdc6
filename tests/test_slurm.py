"""Studies through real sbatch jobs (hydra/launcher=slurm on a local slurmctld/slurmd): one job requeued mid-run,
the study completes with the numbers of an undisturbed one, and the seeds that were training go on where they stopped;
and seeds=auto, whose every round is a job array on the cluster, decided in the submitting process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
from conftest import TINY, run_ablate
from slurm_cluster import cluster, missing

from ablate.store import checkpoints, results

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # SLURM daemons: slurmctld, slurmd, munged

STUDY = ["+sweep=head", "seeds=[0,1]", *TINY, "data.train_size=1024", "train.epochs=3"]
# The slurm preset sized for the 2-CPU test node: no GPU, one core and no memory request per job.
ON_SLURM = ["hydra/launcher=slurm", "hydra.launcher.gpus_per_node=0", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=null"]
DECIDED = ("status", "test_acc", "test_loss", "train_loss", "train_acc")


@pytest.fixture(scope="module")
def slurm() -> Iterator[dict[str, str]]:
    """A running single-node SLURM cluster; its clients' environment (SLURM_CONF)."""
    reason = missing()
    if reason:
        pytest.skip(reason)
    with cluster() as env:
        yield env


def numbers(root: Path) -> dict[str, tuple]:
    return {path.relative_to(root).as_posix(): tuple(results.read_metrics(path)[k] for k in DECIDED)
            for path in sorted(root.glob("runs/head/*/seed=*"))}


def trainer_of(run: Path) -> tuple[Path, str]:
    """The process training a run (the one holding its lock; /proc/PID) and its SLURM job: `ARRAY_TASK`, as the
    launcher submits the variants as one job array (the array's bare id would name all of them)."""
    process = Path("/proc", (run / results.LOCK_FILE).read_text().strip())
    variables = dict(item.split("=", 1) for item in (process / "environ").read_text().split("\0") if "=" in item)
    return process, f"{variables['SLURM_ARRAY_JOB_ID']}_{variables['SLURM_ARRAY_TASK_ID']}"


def restarts(job: str, env: dict[str, str]) -> str:
    """How often SLURM started the job again, as `scontrol show job` says it (`Restarts=1`)."""
    shown = subprocess.run(["scontrol", "show", "job", job], env=env, capture_output=True, text=True).stdout
    return re.search(r"Restarts=\d+", shown).group(0)


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple]:
    """The study's numbers trained without a launcher and without interruption."""
    root = tmp_path_factory.mktemp("undisturbed")
    assert run_ablate("run", *STUDY, cwd=root).returncode == 0
    return {path.replace("undisturbed", "requeued"): found for path, found in numbers(root).items()}


# scontrol requeue: SLURM's SIGTERM, ablate checkpoints and ends, SLURM restarts the job. SIGUSR2: what submitit has
# SLURM send before a time limit (hydra.launcher.signal_delay_s); ablate checkpoints, then submitit requeues the job.
REQUEUES = {"SIGTERM": lambda job: ["scontrol", "requeue", job], "SIGUSR2": lambda job: ["scancel", "--signal=USR2", job]}


@pytest.mark.parametrize("requeue", REQUEUES)
def test_requeued_job_resumes_its_seeds_and_the_study_matches_an_undisturbed_one(
        tmp_path: Path, slurm: dict[str, str], undisturbed: dict[str, tuple], requeue: str) -> None:
    env = {**os.environ, **slurm, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    requeued = tmp_path / "requeued"
    requeued.mkdir()
    study = subprocess.Popen([sys.executable, "-m", "ablate", "run", *STUDY, *ON_SLURM], cwd=requeued, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    run = requeued / "runs/head/model.head=gap/seed=0"
    deadline = time.time() + 120
    while not (run / checkpoints.CHECKPOINT_FILE).is_file() and time.time() < deadline and study.poll() is None:
        time.sleep(0.05)
    process, job = trainer_of(run)  # epoch 1 of seed 0 is done: its job is mid-run
    subprocess.run(REQUEUES[requeue](job), env=env, check=True)
    while process.exists() and time.time() < deadline:  # it checkpoints and ends
        time.sleep(0.05)
    stopped = {seed: checkpoints.read(folder) for seed in (0, 1)
               if (folder := run.parent / f"seed={seed}").is_dir() and not results.is_finished(folder)}
    output, _ = study.communicate(timeout=180)

    assert study.returncode == 0, output
    assert restarts(job, env) == "Restarts=1"  # the requeue it survived
    other = job.rsplit("_", 1)[0] + ("_0" if job.endswith("_1") else "_1")
    assert restarts(other, env) == "Restarts=0"  # the other variant's job ran undisturbed
    assert numbers(requeued) == undisturbed
    assert stopped[0] is not None, "the requeued job wrote no checkpoint"
    log = next(requeued.glob(f"runs/.submitit/{job}/{job}_0_log.out")).read_text()
    assert f"stopped by {requeue}; checkpoint written" in log and "resuming seed 0 of variant head/model.head=gap" in log
    for seed, found in stopped.items():  # every seed that had started went on from where it stopped, not from scratch
        if found is not None:
            resumed = results.read_metrics(run.parent / f"seed={seed}")["resumed"]
            assert resumed[-1] == {"epoch": found[1].epoch, "step": found[1].step}
    assert not list(requeued.glob("runs/**/checkpoint.pt"))


def test_seeds_auto_sends_every_round_to_the_cluster_and_decides_in_the_submitter(tmp_path: Path, slurm: dict[str, str]) -> None:
    env = {**os.environ, **slurm, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    adaptive = ["model.batchnorm=true,false", "seeds=auto", "adaptive.budget=2", "adaptive.batch=1", "study=auto", *TINY, *ON_SLURM]
    dry = subprocess.run([sys.executable, "-m", "ablate", "run", *adaptive, "--dry-run"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert "Each round's jobs go through hydra/launcher=slurm (SLURM jobs, the cluster's default partition" in dry.stdout, dry.stderr
    study = subprocess.Popen([sys.executable, "-m", "ablate", "run", *adaptive], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = study.communicate(timeout=300)[0]
    assert study.returncode == 0, output
    records = {path.parent.name + "/" + path.name: results.read_metrics(path) for path in sorted(tmp_path.glob("runs/auto/*/seed=*"))}
    assert {name: r["planned_seeds"] for name, r in records.items()} == {
        f"{variant}/seed={seed}": [seed] for variant in ("baseline", "model.batchnorm=true") for seed in (0, 1)}
    assert study.pid not in {r["process"]["pid"] for r in records.values()}  # trained in the SLURM jobs
    arrays = {folder.name.split("_")[0] for folder in tmp_path.glob("runs/.submitit/*_*") if re.fullmatch(r"\d+_\d+", folder.name)}
    assert len(arrays) == 2 and output.count("Ablation: a round of seeds=auto, 2 run(s)") == 2  # one job array per round
    assert "Study auto: 4 ok" in output
