"""What makes a number reproducible: library versions, the source's git commit, and a hash of the settings."""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import subprocess
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, str | None]:
    """Versions of Python and of the libraries that decide the numbers."""
    return {"python": platform.python_version(), **{p: _version(p) for p in ("ablate", "torch", "torchvision", "hydra-core", "numpy")}}


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


def settings_hash(*parts: Any) -> str:
    """Short stable hash of dataclasses and plain values; equal settings give equal hashes."""
    plain = [asdict(p) if hasattr(p, "__dataclass_fields__") else p for p in parts]
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()[:12]
