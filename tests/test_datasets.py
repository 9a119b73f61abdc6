"""torchvision datasets and image folders, loaded through the real code path from files the tests write
in each dataset's own on-disk format (nothing is downloaded)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from conftest import run_ablate
from PIL import Image

from ablate.config import DataConfig
from ablate.data.datasets import load_dataset, write_idx

RNG = np.random.default_rng(0)


def write_mnist_family(root: Path, folder: str, n_train: int = 60, n_test: int = 20) -> tuple[np.ndarray, np.ndarray]:
    labels = {"train": RNG.integers(0, 10, n_train), "t10k": RNG.integers(0, 10, n_test)}
    for split, y in labels.items():
        write_idx(root / folder / "raw" / f"{split}-images-idx3-ubyte", RNG.integers(0, 256, (len(y), 28, 28)))
        write_idx(root / folder / "raw" / f"{split}-labels-idx1-ubyte", y)
    return labels["train"], labels["t10k"]


def write_cifar10(root: Path, per_batch: int = 8) -> list[int]:
    """The python pickle batches of CIFAR-10: data (N, 3072) uint8 rows as R, G, B planes, and labels."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train_labels: list[int] = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = RNG.integers(0, 10, per_batch).tolist()
        train_labels += labels if name != "test_batch" else []
        with (folder / name).open("wb") as handle:
            pickle.dump({"data": RNG.integers(0, 256, (per_batch, 3072), dtype=np.uint8), "labels": labels}, handle)
    with (folder / "batches.meta").open("wb") as handle:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, handle)
    return train_labels


@pytest.mark.parametrize(("name", "folder"), [("fashion_mnist", "FashionMNIST"), ("kmnist", "KMNIST")])
def test_mnist_family_from_idx_files(tmp_path: Path, name: str, folder: str) -> None:
    train_y, test_y = write_mnist_family(tmp_path, folder)
    data = load_dataset(DataConfig(name=name, root=str(tmp_path)))
    assert data.train_x.shape == (60, 1, 28, 28) and data.test_x.shape == (20, 1, 28, 28)
    assert data.train_y.tolist() == train_y.tolist() and data.test_y.tolist() == test_y.tolist()
    assert abs(data.train_x.mean().item()) < 1e-4 and abs(data.train_x.std().item() - 1) < 1e-2


def test_cifar10_from_pickle_batches_sets_three_channels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    train_labels = write_cifar10(tmp_path)
    # The real files carry published MD5 sums the test's own files cannot match: the check keeps asking
    # that each file exists, and only the MD5 comparison is left out.
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda path, md5=None: Path(path).is_file())
    data = load_dataset(DataConfig(name="cifar10", root=str(tmp_path)))
    assert data.train_x.shape == (40, 3, 32, 32) and data.test_x.shape == (8, 3, 32, 32)
    assert data.train_y.tolist() == train_labels and data.num_classes == 10
    assert torch.allclose(data.train_x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)


def test_image_folder_of_pngs(tmp_path: Path) -> None:
    for split, count in (("train", 6), ("test", 2)):
        for label in ("cat", "dog"):
            folder = tmp_path / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                Image.fromarray(RNG.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    data = load_dataset(DataConfig(name="folder", root=str(tmp_path), image_size=16, channels=3))
    assert data.train_x.shape == (12, 3, 16, 16) and data.test_x.shape == (4, 3, 16, 16)
    assert sorted(data.train_y.tolist()) == [0] * 6 + [1] * 6 and data.num_classes == 2


def test_a_grey_folder_study_runs_end_to_end_and_sizes_the_model_from_the_data(tmp_path: Path) -> None:
    for split in ("train", "test"):
        for label in ("a", "b", "c"):
            (tmp_path / "images" / split / label).mkdir(parents=True)
            for i in range(4):
                Image.fromarray(RNG.integers(0, 256, (32, 32), dtype=np.uint8)).save(tmp_path / "images" / split / label / f"{i}.png")
    result = run_ablate("run", "data=folder", f"data.root={tmp_path / 'images'}", "data.image_size=32", "seeds=[0]",
                        "train.epochs=1", "device=cpu", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "runs/default/baseline/seed=0/metrics.json").read_text())
    # 32x32 input: two poolings leave 8x8x64 = 4096 features; 3 classes.
    assert record["params"] == 320 + 18_496 + (4096 * 128 + 128) + (128 * 3 + 3)


def test_a_missing_dataset_is_refused_before_training(tmp_path: Path) -> None:
    result = run_ablate("run", "data=kmnist", f"data.root={tmp_path}", "seeds=[0]", cwd=tmp_path)
    assert result.returncode == 2 and "data.name=kmnist: no usable copy under data.root=" in result.stderr
    assert "data.download=true" in result.stderr and not list(tmp_path.glob("runs/*/*"))
