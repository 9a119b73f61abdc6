"""Shared helpers: tiny data settings and a way to run the installed `ablate` command in a temp folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# A study small enough to train in seconds on a CPU: synthetic images, 1 epoch.
TINY = ["data=synthetic", "data.train_size=256", "data.test_size=128", "data.image_size=16", "train.epochs=1", "device=cpu"]


def run_ablate(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`python -m ablate ARGS` in `cwd`, as a user would run it; output captured."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": ""}
    return subprocess.run([sys.executable, "-m", "ablate", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty working folder; runs/ and reports/ appear inside it."""
    return tmp_path
