"""Where a command's jobs run: the Hydra launcher it chose (the composed config's `hydra` node), whether that is
this process (Hydra's basic launcher), other machines (SLURM, Ray: there `auto` is the job's to resolve), and what
the launcher does with a job in words (what `--dry-run` says of each seeds=auto round and each +tune phase)."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

# Launchers whose jobs run on other machines (SLURM and its local executor, Ray).
REMOTE_LAUNCHERS = ("hydra_submitit_launcher", "hydra_ray_launcher")


def _target(hydra: DictConfig) -> str:
    return str(OmegaConf.select(hydra, "launcher._target_", default=""))


def in_this_process(hydra: DictConfig) -> bool:
    """Whether the launcher is Hydra's basic one, which runs each job in the `ablate run` process, one after the other."""
    return _target(hydra).endswith("BasicLauncher")


def runs_elsewhere(hydra: DictConfig) -> bool:
    """Whether the launcher starts its jobs on other machines (SLURM, Ray), whose GPUs decide `auto`."""
    return any(name in _target(hydra) for name in REMOTE_LAUNCHERS)


def where(hydra: DictConfig) -> str:
    """The launcher of a composed config's `hydra` node as `hydra/launcher=NAME (what it does with each job)`."""
    launcher, target = hydra.launcher, _target(hydra)
    if in_this_process(hydra):
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
    return f"hydra/launcher={hydra.runtime.choices.get('hydra/launcher')} ({how})"
