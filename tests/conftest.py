"""Shared helpers: tiny data settings, a way to run the installed `ablate` command in a temp folder, plans of a
command line, and a fresh working folder for every test (so no test reads what a user left in the checkout)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

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
