"""A real single-node SLURM cluster on this machine for the tests: munged, slurmctld and slurmd from Debian's
slurm-wlm, with a slurm.conf of its own (2 CPUs, no accounting) in a temporary folder; SLURM_CONF points at it."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

DAEMONS = ("sbatch", "scontrol", "slurmctld", "slurmd", "munged")
NODE = "ablate-node"
# cred_expire=5: a requeued job may start again 6 s later (SLURM's default waits 121 s); sched_interval=1: the
# scheduler looks for startable jobs every second; KillWait=10: a job has 10 s between SIGTERM and SIGKILL.
CONFIG = """ClusterName=ablatetest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
AuthType=auth/munge
AuthInfo=cred_expire=5
SlurmUser=root
SlurmdUser=root
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
KillWait=10
MinJobAge=600
NodeName={node} NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def missing() -> str:
    """Why no cluster can be started here, or '' when one can."""
    absent = [name for name in DAEMONS if shutil.which(name) is None and not Path("/usr/sbin", name).exists()]
    if absent:
        return f"SLURM is not installed ({', '.join(absent)} missing; apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "a local SLURM cluster needs root (slurmd starts jobs as their user)"
    return ""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _munge_works() -> bool:
    encoded = subprocess.run(["munge", "-n"], capture_output=True)
    return encoded.returncode == 0 and subprocess.run(["unmunge"], input=encoded.stdout, capture_output=True).returncode == 0


@contextlib.contextmanager
def _munge() -> Iterator[None]:
    """munged running (started as the munge user when it is not, and stopped again afterwards)."""
    if _munge_works():
        yield
        return
    run_dir = Path("/run/munge")
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.chown(run_dir, "munge", "munge")
    subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/munged"], check=True)
    try:
        _wait(_munge_works, "munged did not answer")
        yield
    finally:
        pid = run_dir / "munged.pid"
        if pid.is_file():
            os.kill(int(pid.read_text()), 15)


def _wait(condition: Callable[[], bool], message: str, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise RuntimeError(message)
        time.sleep(0.2)


def _drain(env: dict[str, str], spool: Path) -> None:
    """Cancel every job and wait until their steps have ended: each job's slurmstepd reports its end to the daemons,
    and stopped before that it would wait for them forever."""
    subprocess.run(["scancel", "--partition=debug"], env=env, capture_output=True)
    queued = lambda: subprocess.run(["squeue", "-h"], env=env, capture_output=True, text=True).stdout.strip()
    _wait(lambda: not queued(), "jobs still queued after scancel")
    _wait(lambda: not list(spool.glob(f"{NODE}_*")), "job steps did not end")  # a running step's socket


@contextlib.contextmanager
def cluster() -> Iterator[dict[str, str]]:
    """A running cluster; yields the environment its clients need (SLURM_CONF), then ends its daemons and jobs."""
    root = Path(tempfile.mkdtemp(prefix="slurm-"))
    for folder in ("state", "spool"):
        (root / folder).mkdir()
    conf = root / "slurm.conf"
    conf.write_text(CONFIG.format(host=socket.gethostname(), ctld_port=_free_port(), slurmd_port=_free_port(), root=root, node=NODE))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    with _munge():
        subprocess.run(["slurmctld", "-c", "-i"], env=env, check=True)
        try:
            subprocess.run(["slurmd", "-N", NODE], env=env, check=True)
            idle = lambda: "idle" in subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True).stdout
            _wait(idle, f"the SLURM node did not come up; see {root}/slurmd.log")
            yield {"SLURM_CONF": str(conf)}
        finally:
            try:
                _drain(env, root / "spool")
            finally:
                for daemon in ("slurmd", "slurmctld"):
                    pid = root / f"{daemon}.pid"
                    if pid.is_file():
                        process = Path("/proc", pid.read_text().strip())
                        os.kill(int(process.name), 15)
                        _wait(lambda: not process.exists(), f"{daemon} did not stop")
    shutil.rmtree(root, ignore_errors=True)
