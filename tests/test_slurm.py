"""Studies through real sbatch jobs (hydra/launcher=slurm on a local slurmctld/slurmd): each variant's job requeued
mid-run, one by SLURM's SIGTERM and one by submitit's SIGUSR2, the study completes with the numbers of an undisturbed
one, and the seeds that were training go on where they stopped; and seeds=auto, whose every round is a job array on the
cluster, decided in the submitting process."""

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

# SLURM daemons: slurmctld, slurmd, munged; one cluster for the module, so its tests run in one xdist process.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900), pytest.mark.xdist_group("slurm")]

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


# Each variant's job is requeued once it has written its first checkpoint (epoch 1 of seed 0 done: mid-run). scontrol
# requeue: SLURM's SIGTERM, ablate checkpoints and ends, SLURM restarts the job. SIGUSR2: what submitit has SLURM send
# before a time limit (hydra.launcher.signal_delay_s); ablate checkpoints, then submitit requeues the job.
REQUEUES = {"baseline": ("SIGTERM", lambda job: ["scontrol", "requeue", job]),
            "model.head=gap": ("SIGUSR2", lambda job: ["scancel", "--signal=USR2", job])}


def requeued_mid_run(root: Path, study: subprocess.Popen, env: dict[str, str]) -> dict[str, tuple[str, dict]]:
    """Requeue each variant's job as REQUEUES says the moment its first checkpoint exists, and wait until the process
    that trained it has ended; per variant its job and the checkpoint each of its unfinished seeds had then."""
    signalled, stopped = {}, {}
    deadline = time.time() + 300
    while len(stopped) < len(REQUEUES) and time.time() < deadline and study.poll() is None:
        for variant, (_, requeue) in REQUEUES.items():
            run = root / f"runs/head/{variant}/seed=0"
            if variant not in signalled and (run / checkpoints.CHECKPOINT_FILE).is_file():
                signalled[variant] = trainer_of(run)
                subprocess.run(requeue(signalled[variant][1]), env=env, check=True)
            elif variant in signalled and variant not in stopped and not signalled[variant][0].exists():  # it checkpointed and ended
                stopped[variant] = (signalled[variant][1], {seed: checkpoints.read(folder) for seed in (0, 1)
                                    if (folder := run.parent / f"seed={seed}").is_dir() and not results.is_finished(folder)})
        time.sleep(0.05)
    return stopped


def test_jobs_requeued_by_sigterm_and_by_sigusr2_resume_their_seeds_and_the_study_matches_an_undisturbed_one(
        tmp_path: Path, slurm: dict[str, str], undisturbed: dict[str, tuple]) -> None:
    env = {**os.environ, **slurm, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    requeued = tmp_path / "requeued"
    requeued.mkdir()
    study = subprocess.Popen([sys.executable, "-m", "ablate", "run", *STUDY, *ON_SLURM], cwd=requeued, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    stopped = requeued_mid_run(requeued, study, env)
    output, _ = study.communicate(timeout=300)

    assert study.returncode == 0, output
    assert stopped.keys() == REQUEUES.keys(), f"requeued mid-run: {sorted(stopped)}\n{output}"
    assert numbers(requeued) == undisturbed
    for variant, (job, seeds) in stopped.items():
        signal_name = REQUEUES[variant][0]
        assert restarts(job, env) == "Restarts=1"  # the one requeue it survived (the other variant's signal missed it)
        assert seeds[0] is not None, f"the job requeued by {signal_name} wrote no checkpoint"
        log = next(requeued.glob(f"runs/.submitit/{job}/{job}_0_log.out")).read_text()
        assert f"stopped by {signal_name}; checkpoint written" in log and f"resuming seed 0 of variant head/{variant}" in log
        for seed, found in seeds.items():  # every seed that had started went on from where it stopped, not from scratch
            if found is not None:
                resumed = results.read_metrics(requeued / f"runs/head/{variant}/seed={seed}")["resumed"]
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
