"""This machine's ceiling: the GFLOP/s torch achieves here on a large square matmul and on the baseline CNN's
convolutions at the training shapes (batch 64, channels_last, through oneDNN on the CPU), forward and backward, in
fp32 and bf16. The ceiling of a precision is the best of its measurements; the bench divides the engine's achieved
GFLOP/s by it.

Each figure is torch.utils.benchmark's median over blocks of at least `seconds` (after a warm-up), with as many
threads as torch uses. FLOPs count 2 x multiply-accumulates (a conv's backward: its input's and its weight's
gradients, 2 x its forward; the first conv's input needs none but is measured the same way).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.utils import benchmark

from ablate.config import ModelConfig, TrainConfig
from ablate.data.catalog import MNIST_CLASSES, MNIST_SHAPE
from ablate.networks.layer_plan import CONVS, Layer, plan_layers

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def gflops_of(statement: str, flops: float, seconds: float, **variables: Any) -> float:
    """Achieved GFLOP/s of `statement` doing `flops` each time: median of blocks of at least `seconds`."""
    timer = benchmark.Timer(stmt=statement, globals={"F": F, "torch": torch, **variables}, num_threads=torch.get_num_threads())
    timer.timeit(1)  # warm-up: oneDNN picks and caches its kernels on the first call
    return flops / timer.blocked_autorange(min_run_time=seconds).median / 1e9


def matmul(size: int, dtype: torch.dtype, seconds: float) -> float:
    """GFLOP/s of a size x size matmul."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    return gflops_of("a @ b", 2 * size**3, seconds, a=a, b=b)


def conv(layer: Layer, batch: int, dtype: torch.dtype, seconds: float) -> tuple[float, float]:
    """GFLOP/s of one conv layer of the plan on a training batch: its forward, and its backward (both gradients)."""
    x = torch.randn(batch, *layer.in_shape, dtype=dtype).to(memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(layer.out_shape[0], layer.in_shape[0], layer.kernel, layer.kernel, dtype=dtype).to(
        memory_format=torch.channels_last).requires_grad_()
    arguments = dict(x=x, w=w, stride=layer.stride, padding=layer.padding, dilation=layer.dilation)
    forward = "F.conv2d(x, w, None, stride, padding, dilation)"
    y = F.conv2d(x, w, None, layer.stride, layer.padding, layer.dilation)
    grad = torch.randn_like(y)
    flops = batch * layer.flops()
    backward = "torch.autograd.grad(y, (x, w), grad, retain_graph=True)"
    return gflops_of(forward, flops, seconds, **arguments), gflops_of(backward, 2 * flops, seconds, y=y, grad=grad, x=x, w=w)


def measure(sizes: dict[str, int], seconds: float = 0.5) -> dict[str, dict[str, float]]:
    """Every measurement of each precision (`sizes`: precision -> matmul side), named (`matmul 2048`, `conv2 32x14x14
    forward`, ...), in GFLOP/s."""
    batch = TrainConfig().batch_size
    layers = [layer for layer in plan_layers(ModelConfig(), MNIST_SHAPE, MNIST_CLASSES) if layer.kind in CONVS]
    found: dict[str, dict[str, float]] = {}
    for precision, size in sizes.items():
        dtype, results = DTYPES[precision], {}
        results[f"matmul {size}"] = matmul(size, dtype, seconds)
        for layer in layers:
            shape = "x".join(map(str, layer.in_shape))
            results[f"{layer.name} {shape} forward"], results[f"{layer.name} {shape} backward"] = conv(layer, batch, dtype, seconds)
        found[precision] = {name: round(value, 2) for name, value in results.items()}
    return found


def describe(found: dict[str, dict[str, float]]) -> str:
    """The measurements as lines, the ceiling of each precision first."""
    lines = []
    for precision, results in found.items():
        lines.append(f"ceiling {precision}: {max(results.values()):.1f} GFLOP/s (best of: "
                     + ", ".join(f"{name} {value:.1f}" for name, value in results.items()) + ")")
    return "\n".join(lines)
