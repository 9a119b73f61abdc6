"""Where a command's jobs run, in words: the Hydra launcher it chose and what that launcher does with a job
(what `--dry-run` says of each seeds=auto round and each +tune phase)."""

from __future__ import annotations

from typing import Optional, Sequence

from omegaconf import DictConfig, OmegaConf

from ablate.study.plan import compose_config


def where(composed: DictConfig) -> str:
    """The launcher of a composed config as `hydra/launcher=NAME (what it does with each job)`."""
    launcher = composed.hydra.launcher
    target = str(launcher._target_)
    if "BasicLauncher" in target:
        how = "one job after the other, in the `ablate run` process"
    elif "joblib" in target:
        how = f"joblib: up to {launcher.n_jobs} worker processes on this machine"
    elif "ray" in target:
        address = OmegaConf.select(launcher, "ray.init.address")
        how = f"Ray tasks on the Ray instance at {address}" if address else "Ray tasks: RAY_ADDRESS's instance, one started here, or a new one"
    elif "SlurmLauncher" in target:
        partition = f"partition {launcher.partition}" if launcher.partition else "the cluster's default partition"
        how = f"SLURM jobs, {partition}, {launcher.gpus_per_node} GPU(s), {launcher.cpus_per_task} CPU(s), {launcher.timeout_min} min each"
    elif "LocalLauncher" in target:
        how = "submitit's local executor: processes on this machine, as SLURM would start them"
    else:
        how = target
    return f"hydra/launcher={composed.hydra.runtime.choices.get('hydra/launcher')} ({how})"


def where_of(overrides: Sequence[str], config_dir: Optional[str] = None) -> str:
    """`where` for the config a command line composes to."""
    return where(compose_config(overrides, config_dir))
