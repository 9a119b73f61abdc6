"""The README's recipes, followed step by step: adding a dataset (with a throwaway one), and a factor from a sweep
file of the user's own."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import TINY, checked, run_ablate, train

from ablate import config
from ablate.data import catalog, datasets
from ablate.data.datasets import Dataset, normalised
from ablate.store import results
from ablate.study import plan


def load_stripes(cfg: config.DataConfig) -> Dataset:
    """A throwaway dataset: 8×8 grey images of a horizontal (class 0) or vertical (class 1) stripe."""
    def split(count: int, offset: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.arange(count) % 2
        images = torch.zeros(count, 8, 8, dtype=torch.uint8)
        for i, label in enumerate(labels.tolist()):
            line = (i + offset) % 8
            if label == 0:
                images[i, line, :] = 255
            else:
                images[i, :, line] = 255
        return images, labels

    (train_x, train_y), (test_x, test_y) = split(64, 0), split(32, 3)
    return normalised("stripes", train_x, train_y, test_x, test_y, 2)


def test_adding_a_dataset_takes_the_steps_the_readme_lists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(datasets.LOADERS, "stripes", load_stripes)                           # step 1: the loader
    monkeypatch.setitem(catalog.SPECS, "stripes", lambda cfg: ((1, 8, 8), 2))                 # step 2: shape, classes
    monkeypatch.setitem(config.CHOICES, "data.name", (*config.DATASETS, "stripes"))       # step 3: the name
    planned = checked(["data.name=stripes", "seeds=[0,1]", "train.epochs=2", "device=cpu", f"runs_dir={tmp_path}"])
    variant = planned.study
    assert "data.image_size" not in variant.identity  # step 4 not taken: the image keys come from its files
    summary = train(variant.config)
    assert (summary.trained, summary.failed) == (2, 0)
    record = results.read_metrics(results.run_dir(tmp_path, "default", "baseline", 0))
    assert record["dataset"] == "stripes" and record["test_samples"] == 32 and record["test_acc"] >= 0.5
    assert record["identity"] == dict(variant.identity)
    shape, classes = catalog.input_spec(variant.config.data)
    assert (shape, classes) == ((1, 8, 8), 2)


def test_a_name_missing_from_datasets_is_refused_naming_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(datasets.LOADERS, "stripes", load_stripes)
    with pytest.raises(config.ConfigError, match="data.name='stripes' is not allowed; choose one of: mnist"):
        plan.build(["data.name=stripes"])


def test_a_factor_from_a_sweep_file_of_ones_own(workdir: Path) -> None:
    sweeps = workdir / "myconf" / "sweep"
    sweeps.mkdir(parents=True)
    (sweeps / "hidden.yaml").write_text("# @package _global_\nstudy: hidden\nhydra:\n  mode: MULTIRUN\n"
                                        "  sweeper:\n    factors:\n      model.hidden: [64, 128, 32]\n")
    result = run_ablate("run", "--config-dir", "myconf", "+sweep=hidden", "seeds=[0]", *TINY, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (workdir / "runs/hidden").iterdir()) == ["baseline", "model.hidden=32", "model.hidden=64"]
    report = run_ablate("report", "--format", "csv", cwd=workdir)
    assert report.returncode == 0, report.stderr
    order = [line.split(",")[0] for line in (workdir / "reports/hidden/summary.csv").read_text().splitlines()[1:]]
    assert order == ["baseline", "model.hidden=32", "model.hidden=64"]  # numbers in numeric order
