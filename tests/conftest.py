"""Shared helpers: tiny data settings, a way to run the installed `ablate` command in a temp folder, plans of a
command line, and a fresh working folder for every test (so no test reads what a user left in the checkout)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ablate.config import AblateConfig
from ablate.study import plan, preflight
from ablate.study.variants import Variant
from ablate.training.runner import VariantSummary, run_variant

# A study small enough to train in seconds on a CPU: synthetic images, 1 epoch.
TINY = ["data=synthetic", "data.train_size=256", "data.test_size=128", "data.image_size=16", "train.epochs=1", "device=cpu"]


def run_ablate(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`python -m ablate ARGS` in `cwd`, as a user would run it; output captured."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": ""}
    return subprocess.run([sys.executable, "-m", "ablate", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(autouse=True)
def _own_working_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts in its own empty folder: a runs/ left in the checkout by a user can never decide a result."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty working folder; runs/ and reports/ appear inside it."""
    return tmp_path


def checked(overrides: list[str]) -> plan.Plan:
    """The plan of a command line, checked against the disk as `ablate run` checks it before training."""
    planned = plan.build(overrides)
    preflight.check(planned)
    return planned


def train(config: AblateConfig, variant: str = "baseline") -> VariantSummary:
    """Train a config's seeds as the variant `variant` (the baseline by default), as a Hydra job would."""
    return run_variant(plan.plan_variant(config, Variant(variant)))
