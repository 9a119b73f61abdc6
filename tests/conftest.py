"""Shared helpers: tiny data settings, a way to run the `ablate` command in a temp folder (in this process, or as a
process where only a process shows it), plans of a command line, a fresh working folder for every test (so no
test reads what a user left in the checkout), and the one Ray head every Ray test joins."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import sys
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from hydra.core.global_hydra import GlobalHydra
from PIL import Image

from ablate.cli import main
from ablate.config import AblateConfig
from ablate.study import plan, preflight
from ablate.study.variants import Variant
from ablate.training.runner import VariantSummary, run_variant

pytest_plugins = ("pytester",)  # a pytest run inside a test, in this process (tests/test_plan.py)

# A study small enough to train in seconds on a CPU: synthetic images, 1 epoch.
TINY = ["data=synthetic", "data.train_size=256", "data.test_size=128", "data.image_size=16", "train.epochs=1", "device=cpu"]

# A command in a process of its own whose training delivers `signal` to itself at its `step`-th step (1-based,
# counted over every seed and variant it trains): training asks StopSignals between two steps whether to stop, so
# the signal lands at a fixed point, with nothing racing a clock.
SIGNAL_AT_STEP = """
import os, sys
from ablate.cli import main
from ablate.training.stopping import StopSignals
step, number, steps, plain = int(sys.argv[1]), int(sys.argv[2]), [0], StopSignals.requested
def requested(self):
    steps[0] += 1
    if steps[0] == step:
        os.kill(os.getpid(), number)
    return plain(self)
StopSignals.requested = requested
sys.exit(main(sys.argv[3:]))
"""


@dataclass
class Finished:
    """What a finished command shows: its exit status and everything it printed."""

    returncode: int
    stdout: str
    stderr: str


def run_ablate(*args: str, cwd: Path, process: bool = False) -> Finished | subprocess.CompletedProcess:
    """`ablate ARGS` typed in `cwd`, output captured: called in this process (no 4 s of imports per call), or with
    `process=True` as `python -m ablate` (what only a process shows: launchers that start workers, trackers)."""
    if process:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": ""}
        return subprocess.run([sys.executable, "-m", "ablate", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    stdout, stderr = io.StringIO(), io.StringIO()
    with _as_a_fresh_process(cwd), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            status = main(list(args))
        except SystemExit as ended:  # Hydra and argparse end by sys.exit
            status = ended.code if isinstance(ended.code, int) else int(ended.code is not None)
            if isinstance(ended.code, str):
                print(ended.code, file=sys.stderr)
        except Exception:  # noqa: BLE001 - what a process would print before exiting with status 1
            traceback.print_exc()
            status = 1
    return Finished(status, stdout.getvalue(), stderr.getvalue())


def signalled_at_step(step: int, number: signal.Signals, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`ablate ARGS` in a process of its own that gets signal `number` at training step `step` (see SIGNAL_AT_STEP),
    started as a shell starts it: Ctrl-C neither ignored nor blocked (a test runner's threads may block it)."""
    def as_from_a_terminal() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

    return subprocess.run([sys.executable, "-c", SIGNAL_AT_STEP, str(step), str(int(number)), *args], cwd=cwd,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"}, capture_output=True, text=True, timeout=600,
                          preexec_fn=as_from_a_terminal)


@contextlib.contextmanager
def _as_a_fresh_process(cwd: Path) -> Iterator[None]:
    """Inside, the state a new `python -m ablate` starts from; outside again, this process's own: working folder,
    argv, environment, logging (Hydra configures the root logger per job), warnings shown once per call, Hydra."""
    before = (Path.cwd(), list(sys.argv), dict(os.environ))
    loggers = {name: (lg.level, list(lg.handlers), lg.disabled, lg.propagate)
               for name, lg in [("", logging.getLogger()), *logging.Logger.manager.loggerDict.items()] if isinstance(lg, logging.Logger)}
    root = logging.getLogger()
    root.handlers.clear()  # so cli.main's logging.basicConfig writes to this call's stderr, as in a new process
    os.chdir(cwd)
    os.environ["HYDRA_FULL_ERROR"] = ""
    try:
        with warnings.catch_warnings():
            warnings.resetwarnings()
            for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
                warnings.simplefilter("ignore", category)  # Python's own defaults in a new process
            warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: print(
                warnings.formatwarning(message, category, filename, lineno, line), end="", file=sys.stderr)
            yield
    finally:
        GlobalHydra.instance().clear()
        os.chdir(before[0])
        sys.argv[:] = before[1]
        os.environ.clear()
        os.environ.update(before[2])
        for name in [*logging.Logger.manager.loggerDict, ""]:
            logger = logging.getLogger(name or None)
            level, handlers, disabled, propagate = loggers.get(name, (logger.level, [], logger.disabled, logger.propagate))
            for handler in set(logger.handlers) - set(handlers):
                handler.close()
            logger.setLevel(level)
            logger.handlers[:] = handlers
            logger.disabled, logger.propagate = disabled, propagate


@pytest.fixture(autouse=True)
def _own_working_folder(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts in its own empty folder, with its own cache of checked datasets: a runs/ left in the checkout
    or a check remembered by a user's earlier command can never decide a result."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


# Ray on this machine only: no usage report, no auth token written to ~/.ray, loopback addresses
# (Ray swaps 127.0.0.1 for the machine's address unless its single-machine mode is on).
RAY_OFFLINE = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def _ray_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`ray start --head` as on a cluster, once per test process (the Ray tests share the xdist group "ray", so one
    process runs them all): 2 CPUs and 2 GPUs that do not exist (Ray only counts them; a CPU job asks for none), in a
    folder of its own, so its workers start there and not where `ablate run` is typed. Its workers take the
    environment `ray start` had, so they get a cache folder of their own. Yields its address, then ends its
    processes (and only them: the process group `ray start` made)."""
    folder = Path(tempfile.mkdtemp(prefix="ray-"))  # short: Ray's socket paths under it must stay below 108 bytes
    env = {**os.environ, **RAY_OFFLINE, "XDG_CACHE_HOME": str(tmp_path_factory.mktemp("ray-cache"))}
    port = free_port()
    start = subprocess.Popen(
        [str(Path(sys.executable).parent / "ray"), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
         f"--dashboard-agent-listen-port={free_port()}", "--num-cpus=2", "--num-gpus=2", "--include-dashboard=false",
         "--disable-usage-stats", f"--temp-dir={folder}"],
        cwd=folder, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = start.communicate(timeout=120)[0]
    try:
        assert start.returncode == 0, output
        yield f"127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):  # Ray's processes keep the process group `ray start` made
            os.killpg(start.pid, signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def ray_head(_ray_instance: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The address of the running Ray head, with this test's environment set to reach it as its own machine does."""
    for name, value in RAY_OFFLINE.items():
        monkeypatch.setenv(name, value)
    return _ray_instance


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty working folder; runs/ and reports/ appear inside it."""
    return tmp_path


def image_folder(root: Path, seed: int, train: int = 8, test: int = 4) -> Path:
    """An image folder dataset (data=folder): 3 classes of 8x8 grey PNGs, `train` and `test` images per class, drawn
    by `seed` with a brightness that depends on the class."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", train), ("test", test)):
        for label in range(3):
            (root / split / str(label)).mkdir(parents=True, exist_ok=True)
            for n in range(count):
                pixels = np.clip(rng.normal(40 + 80 * label, 30, (8, 8)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels, mode="L").save(root / split / str(label) / f"{n}.png")
    return root


def checked(overrides: list[str]) -> plan.Plan:
    """The plan of a command line, checked against the disk as `ablate run` checks it before training."""
    planned = plan.build(overrides)
    preflight.check(planned)
    return planned


def train(config: AblateConfig, variant: str = "baseline") -> VariantSummary:
    """Train a config's seeds as the variant `variant` (the baseline by default), as a Hydra job would."""
    return run_variant(plan.plan_variant(config, Variant(variant)))
