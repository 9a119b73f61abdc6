"""Embedded MNIST: checksum, shapes, ranges, normalisation, fixed subsets, export to torchvision's files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from ablate.config import DataConfig
from ablate.data import catalog, datasets
from ablate.data.catalog import DataError, embedded_mnist_file, input_spec
from ablate.data.datasets import load_dataset, read_mnist_pickle, write_mnist_idx
from ablate.study.preflight import check_dataset


def test_embedded_mnist_has_60k_train_10k_test_normalised() -> None:
    data = load_dataset(DataConfig(name="mnist"))
    assert data.train_x.shape == (60_000, 1, 28, 28) and data.test_x.shape == (10_000, 1, 28, 28)
    assert data.train_y.dtype == torch.int64 and set(data.train_y.unique().tolist()) == set(range(10))
    assert abs(data.train_x.mean().item()) < 0.01 and abs(data.train_x.std().item() - 1) < 0.01
    assert data.train_y[:5].tolist() == [5, 0, 4, 1, 9]  # the first digits of MNIST's training set


def test_a_passed_dataset_check_is_remembered_until_the_file_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plan after the first reads no image of an unchanged MNIST file; a touched or truncated one is read again."""
    copy = tmp_path / "mnist.pkl.gz"
    shutil.copy(embedded_mnist_file(), copy)
    loads: list[DataConfig] = []
    plain = datasets.load_dataset
    monkeypatch.setattr(datasets, "embedded_mnist_file", lambda: copy)  # what is loaded
    monkeypatch.setattr(catalog, "embedded_mnist_file", lambda: copy)  # what the remembered check is keyed on
    monkeypatch.setattr(datasets, "load_dataset", lambda cfg: loads.append(cfg) or plain(cfg))
    small, other = DataConfig(name="mnist", train_size=100), DataConfig(name="mnist", train_size=100, subset_seed=7)
    for cfg in (small, small, other, small):
        check_dataset(cfg)
    assert loads == [small, other]  # each setting read once
    os.utime(copy, ns=(copy.stat().st_atime_ns, copy.stat().st_mtime_ns + 1))
    check_dataset(small)
    assert loads == [small, other, small]
    with pytest.raises(DataError, match="data.train_size=70000 is larger than the 60000 images"):
        check_dataset(DataConfig(name="mnist", train_size=70_000))
    with pytest.raises(DataError, match="data.train_size=70000 is larger"):  # a refusal is not remembered
        check_dataset(DataConfig(name="mnist", train_size=70_000))
    with copy.open("r+b") as handle:
        handle.truncate(1000)
    datasets._mnist_bytes_of.cache_clear(), datasets._load_cached.cache_clear()  # as in a new process
    with pytest.raises(DataError, match="fails its checksum"):
        check_dataset(small)


def test_a_truncated_or_altered_file_fails_its_checksum(tmp_path: Path) -> None:
    copy = tmp_path / "mnist.pkl.gz"
    shutil.copy(embedded_mnist_file(), copy)
    with copy.open("r+b") as handle:
        handle.truncate(1000)
    with pytest.raises(DataError, match="fails its checksum"):
        read_mnist_pickle(copy)
    with pytest.raises(DataError, match="is missing"):
        read_mnist_pickle(tmp_path / "absent.pkl.gz")


def test_subsets_are_fixed_and_the_same_for_every_call() -> None:
    first = load_dataset(DataConfig(name="mnist", train_size=300, test_size=100))
    second = load_dataset(DataConfig(name="mnist", train_size=300, test_size=100, subset_seed=0))
    assert first.train_x.shape[0] == 300 and first.test_y.shape[0] == 100
    assert torch.equal(first.train_y, second.train_y)
    other = load_dataset(DataConfig(name="mnist", train_size=300, subset_seed=1))
    assert not torch.equal(first.train_y, other.train_y)


def test_a_subset_larger_than_the_split_is_refused() -> None:
    with pytest.raises(DataError, match="data.train_size=70000 is larger than the 60000"):
        load_dataset(DataConfig(name="mnist", train_size=70_000))


def test_input_spec_says_the_shape_and_classes_without_loading() -> None:
    small_synthetic = DataConfig(name="synthetic", train_size=8, test_size=8, image_size=12, channels=3, num_classes=4)
    for cfg in (DataConfig(name="mnist", train_size=300, test_size=100), small_synthetic):
        data = load_dataset(cfg)
        assert input_spec(cfg) == (data.input_shape, data.num_classes)
    assert input_spec(DataConfig(name="synthetic", image_size=16, channels=2, num_classes=5)) == ((2, 16, 16), 5)


def test_torchvision_mnist_reads_the_exported_idx_files_as_the_same_images(tmp_path: Path) -> None:
    from torchvision import datasets, transforms

    write_mnist_idx(tmp_path)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    train = datasets.MNIST(str(tmp_path), train=True, download=False, transform=transform)
    test = datasets.MNIST(str(tmp_path), train=False, download=False)
    assert train.data.shape == (60_000, 28, 28) and test.data.shape == (10_000, 28, 28)
    assert train.data.dtype == torch.uint8 and train.targets[:5].tolist() == [5, 0, 4, 1, 9]
    ours = load_dataset(DataConfig(name="mnist"))
    assert torch.equal(train.targets, ours.train_y) and torch.equal(test.targets, ours.test_y)
    for index in (0, 12_345, 59_999):  # torchvision's transform of its image is ablate's normalised tensor
        image, label = train[index]
        assert label == ours.train_y[index].item()
        torch.testing.assert_close(image, ours.train_x[index], rtol=0, atol=1e-6)
