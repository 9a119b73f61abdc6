"""What makes a number reproducible besides its settings: library versions, the source's git commit, the hardware."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ablate

if TYPE_CHECKING:
    import torch


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, str | None]:
    """Versions of Python and of the libraries that decide the numbers."""
    libraries = {p: _version(p) for p in ("torch", "torchvision", "hydra-core", "numpy")}
    return {"python": platform.python_version(), "ablate": ablate.__version__, **libraries}


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """Commit of the ablate source tree (with '+dirty' if it has uncommitted changes), or None outside git."""
    source = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=source, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


@functools.lru_cache(maxsize=1)
def _cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.machine())


def hardware(device: torch.device) -> dict[str, Any]:
    """The processor and, on CUDA, the GPU's name and the CUDA and cuDNN versions: not identity, but what a reader
    needs to reproduce a timing or a last-digit difference."""
    found: dict[str, Any] = {"cpu": _cpu_name()}
    if device.type == "cuda":
        import torch  # only here: a report, which reads provenance, never imports torch

        found.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
    return found


def process() -> dict[str, Any]:
    """The machine and process that trained a run (host name, pid): where a launcher's job ran."""
    return {"host": platform.node(), "pid": os.getpid()}
