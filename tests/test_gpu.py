"""CUDA paths: skipped, with their reason, on machines without a GPU (CI has none)."""

from __future__ import annotations

import pytest
import torch

from ablate.config import AblateConfig, DataConfig, ModelConfig, TrainConfig
from ablate.data.datasets import load_dataset
from ablate.study.resolve import resolve
from ablate.training.engine import train_seed

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_auto_picks_cuda_and_bf16_and_records_tf32() -> None:
    resolved = resolve(AblateConfig())
    assert (resolved.device, resolved.precision) == ("cuda", "bf16")
    assert resolved.numerics == {"cudnn_tf32": torch.backends.cudnn.allow_tf32, "matmul_tf32": torch.backends.cuda.matmul.allow_tf32}


@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp32"])
def test_cuda_training_learns_like_the_cpu(precision: str) -> None:
    data = load_dataset(DataConfig(name="mnist", train_size=2000, test_size=1000))
    gpu = train_seed(ModelConfig(batchnorm=True), TrainConfig(epochs=2), data, 0, torch.device("cuda"), precision)
    cpu = train_seed(ModelConfig(batchnorm=True), TrainConfig(epochs=2), data, 0, torch.device("cpu"), "fp32")
    assert gpu.status == "ok" and gpu.metrics["test_acc"] > 0.85
    assert abs(gpu.metrics["test_acc"] - cpu.metrics["test_acc"]) < 0.03  # same function; float order and TF32 differ
