"""Training: it learns, the same seed gives the same numbers, one failing seed does not stop the others."""

from __future__ import annotations

import ctypes
import ctypes.util
import itertools
import platform

import pytest
import torch

from ablate.config import DataConfig, ModelConfig, SeedStreamsConfig, TrainConfig
from ablate.data.datasets import Dataset, load_dataset
from ablate.networks.network import build_model
from ablate.training.checkpoint import Hooks, Stopped
from ablate.training import engine, memory
from ablate.training.engine import train_seed, train_seeds
from ablate.training.loop import SeedResult, evaluate
from ablate.training.strategies import EagerTrainer

CPU = torch.device("cpu")


def small_mnist() -> Dataset:
    return load_dataset(DataConfig(name="mnist", train_size=500, test_size=500))


def test_one_epoch_on_500_mnist_images_learns_well_above_chance() -> None:
    result = train_seed(ModelConfig(), TrainConfig(epochs=1), small_mnist(), 0, CPU, "fp32")
    assert result.status == "ok"
    assert result.metrics["test_acc"] > 0.5  # chance is 0.1
    assert result.history[0]["train_loss"] < 2.3  # below the loss of a uniform guess, ln 10


def test_same_seed_same_numbers_on_cpu_and_another_seed_differs() -> None:
    data = small_mnist()
    train = TrainConfig(epochs=2, batch_size=32)
    first = train_seed(ModelConfig(batchnorm=True), train, data, 7, CPU, "fp32")
    again = train_seed(ModelConfig(batchnorm=True), train, data, 7, CPU, "fp32")
    other = train_seed(ModelConfig(batchnorm=True), train, data, 8, CPU, "fp32")
    strip = lambda rows: [{k: v for k, v in row.items() if k != "seconds"} for row in rows]  # noqa: E731
    assert strip(first.history) == strip(again.history)
    assert strip(first.history) != strip(other.history)


def test_the_returned_weights_are_the_trained_ones() -> None:
    data = load_dataset(DataConfig(name="synthetic", train_size=256, test_size=64, image_size=12))
    cfg = ModelConfig(batchnorm=True)
    result = train_seed(cfg, TrainConfig(epochs=1), data, 0, CPU, "fp32")
    model = build_model(cfg, data.input_shape, data.num_classes)
    model.load_state_dict(result.state_dict)  # strict: every parameter and BatchNorm statistic is there
    (test_loss,), (test_acc,) = evaluate(EagerTrainer(model, TrainConfig(), CPU, "fp32", steps_per_epoch=1), data.test_x, data.test_y)
    assert (test_loss, test_acc) == (result.metrics["test_loss"], result.metrics["test_acc"])


def test_a_failing_seed_is_recorded_and_the_others_still_run() -> None:
    good = load_dataset(DataConfig(name="synthetic", train_size=64, test_size=32, image_size=12))
    broken = Dataset("broken", good.train_x, good.train_y, good.test_x, good.test_y, num_classes=2)  # labels up to 9
    seen = []
    outcomes = train_seeds(ModelConfig(), TrainConfig(epochs=1, strategy="eager"), broken, [0, 1], CPU, "fp32", on_result=seen.append,
                           progress=False)
    assert [r.status for r in outcomes] == ["failed", "failed"] and len(seen) == 2
    assert outcomes[0].state_dict is None
    assert "IndexError" in outcomes[0].error or "Target" in outcomes[0].error


def test_a_diverging_run_is_marked_diverged_with_its_epoch() -> None:
    data = load_dataset(DataConfig(name="synthetic", train_size=64, test_size=32, image_size=12))
    result = train_seed(ModelConfig(), TrainConfig(epochs=4, lr=1e12, optimizer="sgd"), data, 0, CPU, "fp32")
    assert result.status == "diverged" and "training loss became" in result.error and result.state_dict is None
    assert len(result.history) == result.metrics["diverged_epoch"] - 1  # stopped at the epoch it diverged


def test_a_run_that_ends_at_chance_after_enough_steps_is_marked_diverged_with_its_evidence() -> None:
    data = load_dataset(DataConfig(name="synthetic", train_size=128, test_size=32, image_size=8))
    result = train_seed(ModelConfig(), TrainConfig(epochs=1, batch_size=1, lr=1e-9), data, 0, CPU, "fp32")  # 128 steps, no change
    assert (result.status, result.metrics["diverged_by"], result.state_dict) == ("diverged", "accuracy at chance", None)
    assert "after 128 steps, is within 2 pt of chance (10.0 % for 10 classes)" in result.error
    assert result.metrics["test_acc"] == result.history[-1]["test_acc"]  # its final numbers kept as the evidence


@pytest.mark.parametrize("strategy", ["eager", "vectorized"])
def test_a_group_stopped_mid_epoch_resumes_to_the_uninterrupted_numbers_masks_and_shifts_included(strategy: str) -> None:
    data = load_dataset(DataConfig(name="synthetic", train_size=256, test_size=64, image_size=12))
    model, train = ModelConfig(dropout=0.5), TrainConfig(epochs=2, batch_size=32, augment="shift", strategy=strategy)
    streams = SeedStreamsConfig(augment=7)  # order and shifts from generators of different seeds: both must resume
    whole = train_seeds(model, train, data, [0, 1], CPU, "fp32", progress=False, streams=streams)
    asked = itertools.count()  # hooks.stop is asked before every step (8 an epoch): the 12th time, 3 of epoch 2 are done
    with pytest.raises(Stopped) as stopped:
        train_seeds(model, train, data, [0, 1], CPU, "fp32", progress=False, hooks=Hooks(stop=lambda: next(asked) == 11),
                    streams=streams)
    states = {state.seed: state for state in stopped.value.states}
    assert {(state.epoch, state.step) for state in states.values()} == {(1, 3)}
    resumed = train_seeds(model, train, data, [0, 1], CPU, "fp32", progress=False, hooks=Hooks(resume=states.get), streams=streams)
    strip = lambda rows: [{k: v for k, v in row.items() if k != "seconds"} for row in rows]  # noqa: E731
    assert [strip(r.history) for r in resumed] == [strip(r.history) for r in whole]
    assert resumed[0].resumed == [{"epoch": 1, "step": 3}] and not whole[0].resumed


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting is glibc's malloc's")
def test_keeping_freed_memory_on_the_cpu_leaves_the_trained_numbers_bit_equal(monkeypatch: pytest.MonkeyPatch) -> None:
    """glibc keeping freed memory for the next step (training/memory.py) moves only where tensors lie: the same
    weights and curves as when every block over 64 KB comes fresh from the kernel and goes back when freed."""
    data = load_dataset(DataConfig(name="synthetic", train_size=128, test_size=32, image_size=16))  # 2 MB feature maps

    def trained() -> SeedResult:
        (result,) = train_seeds(ModelConfig(), TrainConfig(epochs=1, strategy="eager"), data, [0], CPU, "fp32", progress=False)
        return result

    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    with monkeypatch.context() as fresh_memory:
        fresh_memory.setattr(engine, "keep_freed_memory", lambda: False)
        libc.mallopt(memory.M_MMAP_THRESHOLD, 64 * 1024)
        libc.mallopt(memory.M_TRIM_THRESHOLD, 64 * 1024)
        fresh = trained()
    memory.keep_freed_memory.cache_clear()
    kept = trained()
    assert memory.keep_freed_memory()  # glibc took the settings
    strip = lambda rows: [{k: v for k, v in row.items() if k != "seconds"} for row in rows]  # noqa: E731
    assert strip(kept.history) == strip(fresh.history)
    assert all(torch.equal(kept.state_dict[name], fresh.state_dict[name]) for name in fresh.state_dict)
