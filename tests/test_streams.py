"""Seed streams: each source of a run's randomness draws from its own generator, so changing one stream's seed changes
that stream's draws and no other's; seed s of every variant shares them (common random numbers); runs record them."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import run_ablate

from ablate.config import DataConfig, ModelConfig, SeedStreamsConfig, TrainConfig
from ablate.data.datasets import load_dataset
from ablate.training.loop import Epoch, Group
from ablate.training.strategies import DropoutMasks, init_model
from ablate.training.streams import split_seed, stream_seeds

CPU = torch.device("cpu")
MNIST = DataConfig(name="mnist", train_size=100, test_size=50)
MODEL = ModelConfig(dropout=0.5, width=4, hidden=8)
TRAIN = TrainConfig(batch_size=16, augment="shift")


def draws(streams: SeedStreamsConfig, seed: int) -> dict[str, torch.Tensor]:
    """What each stream of run `seed` draws: its initial weights, first epoch's order and shifts, first dropout mask
    and training images."""
    data = load_dataset(MNIST, split_seed(streams, seed, MNIST.subset_seed))
    drawn = stream_seeds(streams, seed)
    model = init_model(MODEL, TRAIN, data, drawn.init, CPU)[0]
    epoch = Epoch(Group.start([seed], [drawn], "eager", CPU).generators, data, TRAIN, CPU)
    return {"init": torch.cat([p.flatten() for p in model.state_dict().values()]), "order": epoch.index,
            "augment": epoch.shifts, "dropout": DropoutMasks(model, [drawn.dropout], CPU).draw(4)[0], "split": data.train_x}


@pytest.mark.parametrize(("stream", "value"), [("init", 5), ("order", 5), ("augment", 5), ("dropout", 5), ("split", "per_seed")])
def test_changing_one_streams_seed_changes_that_streams_draws_and_no_others(stream: str, value: object) -> None:
    default = draws(SeedStreamsConfig(), 0)
    changed = draws(replace(SeedStreamsConfig(), **{stream: value}), 0)
    assert [name for name in default if not torch.equal(default[name], changed[name])] == [stream]


def test_seed_s_of_variants_that_keep_every_parameter_shape_starts_from_the_same_weights() -> None:
    data = load_dataset(DataConfig(name="synthetic", train_size=32, test_size=16, image_size=12))
    weights = lambda model, seed: init_model(model, TrainConfig(), data, seed, CPU)[0].state_dict()  # noqa: E731
    baseline = weights(ModelConfig(), 3)
    for variant in (ModelConfig(pool="avg"), ModelConfig(activation="gelu"), ModelConfig(dropout=0.5)):
        assert all(torch.equal(baseline[name], tensor) for name, tensor in weights(variant, 3).items())
    first = next(iter(baseline))
    assert not torch.equal(baseline[first], weights(ModelConfig(), 4)[first])


def test_every_run_records_its_streams_and_a_per_seed_split_draws_its_own_images(tmp_path: Path) -> None:
    tiny = ["data=mnist", "data.train_size=64", "data.test_size=32", "train.epochs=1", "device=cpu", "model.width=4"]
    assert run_ablate("run", *tiny, "seeds=[0,1]", "seed_streams.order=7", "seed_streams.split=per_seed", cwd=tmp_path).returncode == 0
    records = [json.loads(path.read_text()) for path in sorted(tmp_path.glob("runs/default/*/seed=*/metrics.json"))]
    streams = [record["seed_streams"] for record in records]
    assert [(s["init"], s["order"], s["augment"]) for s in streams] == [(0, 7, 0), (1, 7, 1)]
    assert streams[0]["split"] != streams[1]["split"] and streams[0]["dropout"] != streams[1]["dropout"]
    assert records[0]["identity"]["seed_streams.split"] == "per_seed"
    first, second = (load_dataset(MNIST, s["split"]).train_y for s in streams)
    assert not torch.equal(first, second)


@pytest.mark.parametrize(("override", "named"), [
    ("seed_streams.init=many", "seed_streams.init=many is not allowed; give per_seed"),
    ("seed_streams.split=7", "seed_streams.split='7' is not allowed; choose one of: fixed, per_seed"),
    ("seed_streams.split=per_seed", "seed_streams.split=per_seed draws each run's training subset"),
])
def test_a_stream_value_ablate_cannot_use_is_refused_naming_the_key(tmp_path: Path, override: str, named: str) -> None:
    finished = run_ablate("run", "data=mnist", override, "device=cpu", cwd=tmp_path)
    assert finished.returncode == 2 and named in finished.stderr + finished.stdout
