"""A trained run's lesions, computed in batches of masks and cached piece by piece in its folder.

For every lesion site the network names (`Network.lesion_sites`): each unit alone (accuracy and loss, per class too),
cumulative curves (a growing fraction of the units on the GRID, in `orders` seeded random orders and in order of
single-unit importance, as Morcos et al. 2018) and the whole block (the identity where its input has its output's
shape, else every unit zeroed). The intact network is the fraction 0 of every curve. Evaluation runs as training
evaluates (eval mode, the run's precision, channels_last on the CPU), so the intact accuracy is the stored test_acc.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ablate import recipe
from ablate.data.catalog import input_spec
from ablate.data.datasets import load_dataset
from ablate.data.fingerprint import file_digest
from ablate.lesion import masks as lesion_masks
from ablate.networks.network import LesionSite, create_network
from ablate.store import lesions as store
from ablate.store import results
from ablate.training.strategies import PRECISION_DTYPES, memory_layout

GRID = tuple(round(0.1 * k, 1) for k in range(11))  # fractions of a site's units zeroed on a cumulative curve
ORDERS = 3  # seeded random orders per curve, by default
ROWS_PER_FORWARD = 1024
"""Image rows (images × masks) in one lesion forward pass, so 4 masks per EVAL_BATCH of images. Measured on the 2-core
CPU (CPU seconds of the single-unit lesions of the demo's baseline seed 1, 1,000 test images, OMP_NUM_THREADS=1) at
256 / 1024 / 4096 / 16384 rows: conv1 (32 masks) 6.9 / 8.3 / 9.4 / 9.3 s, conv2 (64 masks) 13.0 / 6.0 / 4.8 / 4.4 s:
more masks per pass save the layers before the site, until the maps outgrow the caches; 1024 is within 1 % of the
best sum and holds a quarter of 4096's memory (100 MB of conv1's 32×28×28 maps)."""


@dataclass(frozen=True)
class Settings:
    """What decides a run's lesion numbers besides the run: the split, the grid and the number of random orders."""

    split: str = "test"
    orders: int = ORDERS
    grid: tuple[float, ...] = GRID

    def as_dict(self) -> dict[str, Any]:
        """As the cache key and file record them."""
        return {"split": self.split, "orders": self.orders, "grid": list(self.grid)}


@dataclass
class Evaluator:
    """A trained network on a device with one split resident, evaluating many masks of one site per forward."""

    model: nn.Module
    x: Tensor
    y: Tensor
    num_classes: int
    precision: str

    def _autocast(self) -> contextlib.AbstractContextManager:
        dtype = PRECISION_DTYPES[self.precision]
        return contextlib.nullcontext() if dtype is None else torch.autocast(self.x.device.type, dtype=dtype)

    @torch.no_grad()
    def run(self, context: Callable[[Tensor], contextlib.AbstractContextManager], masks: int, repeat: bool) -> dict[str, list]:
        """Accuracy, mean loss and per-class accuracy of `masks` lesioned copies (`context(masks_chunk_index)` sets
        the hooks), recipe.EVAL_BATCH images at a time; `repeat`: the input batch is repeated once per mask."""
        correct = torch.zeros(masks, self.num_classes, device=self.x.device)
        loss = torch.zeros(masks, device=self.x.device)
        counts = torch.bincount(self.y, minlength=self.num_classes).float()
        per_forward = max(1, ROWS_PER_FORWARD // recipe.EVAL_BATCH)
        for first in range(0, masks, per_forward):
            chunk = torch.arange(first, min(first + per_forward, masks))
            with context(chunk):
                for start in range(0, len(self.y), recipe.EVAL_BATCH):
                    x, y = self.x[start : start + recipe.EVAL_BATCH], self.y[start : start + recipe.EVAL_BATCH]
                    if repeat:
                        x = x.repeat(len(chunk), *[1] * (x.dim() - 1))
                    with self._autocast():
                        logits = self.model(x).float().view(len(chunk), len(y), -1)
                    hits = (logits.argmax(-1) == y).float()
                    correct[chunk] += hits @ F.one_hot(y, self.num_classes).float()
                    loss[chunk] += F.cross_entropy(logits.flatten(0, 1), y.repeat(len(chunk)), reduction="none").view(len(chunk), -1).sum(1)
        return {"acc": (correct.sum(1) / len(self.y)).tolist(), "loss": (loss / len(self.y)).tolist(),
                "class_acc": (correct / counts.clamp(min=1)).tolist()}

    def masked(self, site: LesionSite, masks: Tensor) -> dict[str, list]:
        """The network with each of the masks (M, units) applied at the site."""
        masks = masks.to(self.x.device)
        return self.run(lambda chunk: lesion_masks.masked(self.model, site, masks[chunk]), len(masks), not site.feeds_forward_only)

    def bypassed(self, site: LesionSite) -> dict[str, list]:
        """The network with the site's block replaced by the identity."""
        return self.run(lambda chunk: lesion_masks.bypassed(self.model, site), 1, False)


def cumulative_masks(order: list[int], units: int, grid: tuple[float, ...]) -> Tensor:
    """One mask per fraction of the grid: the first round(fraction × units) units of `order` zeroed."""
    masks = torch.ones(len(grid), units)
    for row, fraction in enumerate(grid):
        masks[row, order[: round(fraction * units)]] = 0.0
    return masks


def random_order(units: int, order_seed: int) -> list[int]:
    """A random order of the units, drawn from a generator seeded with the order's number alone (the same for every run)."""
    return torch.randperm(units, generator=torch.Generator().manual_seed(order_seed)).tolist()


def importance_order(single: dict[str, list]) -> list[int]:
    """Units by single-unit importance: the largest accuracy drop first, then the largest loss; ties by index."""
    return sorted(range(len(single["acc"])), key=lambda k: (single["acc"][k], -single["loss"][k], k))


def site_pieces(evaluator: Evaluator, site: LesionSite, settings: Settings) -> Iterator[tuple[str, Callable[[dict[str, Any]], Any]]]:
    """(piece name, how to compute it from the pieces computed before) for one site, in the order they depend on."""
    def shapes() -> tuple[torch.Size, torch.Size]:
        return lesion_masks.site_shapes(evaluator.model, site, evaluator.x[:2])

    def single(done: dict[str, Any]) -> Any:
        units = shapes()[1][1]
        return evaluator.masked(site, 1.0 - torch.eye(units))

    def cumulative(done: dict[str, Any]) -> Any:
        units = len(done[f"single/{site.name}"]["acc"])
        orders = {f"random:{k}": random_order(units, k) for k in range(settings.orders)}
        orders["importance"] = importance_order(done[f"single/{site.name}"])
        stacked = torch.cat([cumulative_masks(order, units, settings.grid) for order in orders.values()])
        found = evaluator.masked(site, stacked)
        size = len(settings.grid)
        return {name: {key: values[i * size : (i + 1) * size] for key, values in found.items() if key != "class_acc"}
                for i, name in enumerate(orders)}

    def whole(done: dict[str, Any]) -> Any:
        entry, exit_ = shapes()
        if entry == exit_:
            return {"how": "identity", **evaluator.bypassed(site)}
        return {"how": "zero", **evaluator.masked(site, torch.zeros(1, exit_[1]))}

    yield f"single/{site.name}", single
    yield f"cumulative/{site.name}", cumulative
    yield f"whole/{site.name}", whole


def run_key(run_path: Path, settings: Settings) -> str:
    """The cache key of a finished run's lesions: its identity hash, seed, weights (model.pt's SHA-256) and the settings."""
    record = results.read_metrics(run_path) or {}
    return store.cache_key(str(record.get("identity_hash")), int(record.get("seed", -1)), file_digest(run_path / results.MODEL_FILE),
                           settings.as_dict())


def cached(run_path: Path, settings: Settings) -> Optional[dict[str, Any]]:
    """A run's lesion pieces as cached under these settings, where every site's are there; else None."""
    pieces = store.read_pieces(run_path, run_key(run_path, settings))
    whole = "intact" in pieces and all(f"{kind}/{name}" in pieces for name in site_names(pieces) for kind in ("cumulative", "whole"))
    return pieces if whole and site_names(pieces) else None


def site_names(pieces: dict[str, Any]) -> list[str]:
    """The sites a run's pieces cover, in the network's order."""
    return [name.partition("/")[2] for name in pieces if name.startswith("single/")]


class RunLesion:
    """One finished run, ready to lesion: its network, sites, data split and cache key."""

    def __init__(self, run_path: Path, settings: Settings, device: torch.device) -> None:
        config, state = results.load_trained(run_path)
        record = results.read_metrics(run_path) or {}
        shape, classes = input_spec(config.data)
        network = create_network(config.model, shape, classes)
        model = network.build()
        model.load_state_dict(state)
        self.sites = network.lesion_sites(model)  # NotLesionable: the caller names the run and the reason
        layout = memory_layout(device)
        data = load_dataset(config.data)
        x, y = (data.test_x, data.test_y) if settings.split == "test" else (data.val_x, data.val_y)
        if not len(y):
            raise ValueError(f"{run_path} has no {settings.split} split (data.validation_size=0); use --split test")
        self.evaluator = Evaluator(model.to(device, memory_format=layout).eval(), x.to(device).contiguous(memory_format=layout),
                                   y.to(device), classes, record.get("precision", "fp32"))
        self.path, self.settings, self.key = Path(run_path), settings, run_key(Path(run_path), settings)

    def pieces(self) -> list[tuple[str, Callable[[dict[str, Any]], Any]]]:
        """Every piece of this run's lesions, the intact network first."""
        intact = ("intact", lambda done: self.evaluator.run(lambda chunk: contextlib.nullcontext(), 1, False))
        return [intact, *[piece for site in self.sites for piece in site_pieces(self.evaluator, site, self.settings)]]

    def compute(self, progress: Optional[Callable[[str], None]] = None) -> dict[str, Any]:
        """Every piece, from the cache where it is there; each one computed is cached at once (a kill loses only it)."""
        done = store.read_pieces(self.path, self.key)
        for name, make in self.pieces():
            if name not in done:
                done[name] = make(done)
                store.write_pieces(self.path, self.key, self.settings.as_dict(), done)
            if progress:
                progress(name)
        return done


def rows(pieces: dict[str, Any], settings: Settings) -> list[dict[str, Any]]:
    """lesion.csv's rows of one run (without variant and seed): layer, mode, fraction, order, test_acc, test_loss."""
    out: list[dict[str, Any]] = []
    for name in site_names(pieces):
        single = pieces[f"single/{name}"]
        units = len(single["acc"])
        out += [{"layer": name, "mode": "single", "fraction": 1 / units, "order": f"unit:{k}", "test_acc": acc, "test_loss": loss}
                for k, (acc, loss) in enumerate(zip(single["acc"], single["loss"]))]
        for order, curve in pieces[f"cumulative/{name}"].items():
            out += [{"layer": name, "mode": "cumulative", "fraction": fraction, "order": order, "test_acc": acc, "test_loss": loss}
                    for fraction, acc, loss in zip(settings.grid, curve["acc"], curve["loss"])]
        whole = pieces[f"whole/{name}"]
        out.append({"layer": name, "mode": "whole", "fraction": 1.0, "order": whole["how"], "test_acc": whole["acc"][0], "test_loss": whole["loss"][0]})
    return out


def unit_rows(pieces: dict[str, Any]) -> list[dict[str, Any]]:
    """lesion_units.csv's rows of one run: per unit and class, the class's accuracy with the unit zeroed and intact."""
    intact = pieces["intact"]["class_acc"][0]
    return [{"layer": name, "unit": unit, "class": label, "class_acc": acc, "intact_class_acc": intact[label]}
            for name in site_names(pieces) for unit, accs in enumerate(pieces[f"single/{name}"]["class_acc"]) for label, acc in enumerate(accs)]


def device_for(name: str) -> torch.device:
    """`auto`: the GPU where one is visible, else the CPU."""
    return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)

