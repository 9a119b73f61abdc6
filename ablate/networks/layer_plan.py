"""The layer plan of ablate's CNN, with no torch: its layers' shapes, parameters, FLOPs and receptive fields, so a
plan, `inspect` and the time estimate of a dry run describe a variant without importing torch (1.7 s).
ablate's own CNN follows one rule, the seed SimpleCNN's: a conv block (conv, optional BatchNorm, activation: ReLU by
default), then downsampling by 2 as long as the map stays at least `min_map_size` wide; the width doubles after each
downsampling, up to `max_width`. ablate/networks/cnn.py builds the modules from the same plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ablate.config import ModelConfig

Shape = tuple[int, ...]

CONVS = ("conv", "strided_conv")  # layers with learned kernels: the conv blocks and the strided downsampling
SPATIAL = (*CONVS, "maxpool", "avgpool")

@dataclass(frozen=True)
class Layer:
    """One layer of the plan: its kind, shapes, (for spatial layers) kernel, stride, padding and dilation, (for
    dropout) the drop probability, and whether it belongs to the classifier head (everything from the pooling or
    flattening of the last map on)."""

    name: str
    kind: str
    in_shape: Shape
    out_shape: Shape
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    head: bool = False
    rate: float = 0.0

    def size_formula(self) -> str:
        """How the output size follows from the input's: the output-size formula with this layer's numbers, '' where unchanged."""
        if self.kind in SPATIAL:
            k, s, p, d = self.kernel, self.stride, self.padding, self.dilation
            return "; ".join(
                f"floor(({size} + 2×{p} - {d}×({k}-1) - 1)/{s} + 1) = {output_size(size, k, s, p, d)}"
                for size in dict.fromkeys(self.in_shape[1:])
            )
        if self.kind == "gap":
            return f"mean over {self.in_shape[1]}×{self.in_shape[2]} = 1×1"
        if self.kind == "flatten":
            return f"{' × '.join(map(str, self.in_shape))} = {self.out_shape[0]}"
        return ""

    def parameters(self) -> tuple[int, str]:
        """Learned parameters of this layer and the formula that gives them (0 and '' for layers without any)."""
        c_in, c_out = self.in_shape[0], self.out_shape[0]
        if self.kind in CONVS:
            return c_out * (c_in * self.kernel**2 + 1), f"{c_out} × ({c_in} × {self.kernel}² + 1)"
        if self.kind == "linear":
            return c_out * (c_in + 1), f"{c_out} × ({c_in} + 1)"
        if self.kind == "batchnorm":
            return 2 * c_in, f"2 × {c_in}"
        return 0, ""

    def flops(self) -> int:
        """FLOPs of one forward pass for one image, counted as 2 × multiply-accumulates of conv and linear layers
        (bias, BatchNorm, activations, dropout and pooling count 0), the convention of torch.utils.flop_counter."""
        if self.kind in CONVS:
            return 2 * math.prod(self.out_shape) * self.in_shape[0] * self.kernel**2
        if self.kind == "linear":
            return 2 * self.in_shape[0] * self.out_shape[0]
        return 0


def output_size(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    """Output height (or width) of a conv or pooling layer: floor((H + 2P - D(K-1) - 1)/S + 1), as torch computes it."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def plan_layers(cfg: ModelConfig, input_shape: Shape, num_classes: int) -> list[Layer]:
    """The ordered layers that `cfg` yields on inputs of shape (C, H, W); ablate's own CNN (model.arch=cnn) only."""
    c, h, w = input_shape
    width, act = cfg.width, cfg.activation
    layers: list[Layer] = []

    def spatial(name: str, kind: str, out_c: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> None:
        nonlocal c, h, w
        out_h, out_w = (output_size(size, kernel, stride, padding, dilation) for size in (h, w))
        layers.append(Layer(name, kind, (c, h, w), (out_c, out_h, out_w), kernel, stride, padding, dilation))
        c, h, w = out_c, out_h, out_w

    for i in range(1, cfg.depth + 1):
        spatial(f"conv{i}", "conv", width, cfg.kernel_size, 1, cfg.dilation * (cfg.kernel_size - 1) // 2, cfg.dilation)
        if cfg.batchnorm:
            layers.append(Layer(f"bn{i}", "batchnorm", (c, h, w), (c, h, w)))
        layers.append(Layer(f"{act}{i}", act, (c, h, w), (c, h, w)))
        if min(h, w) // 2 >= cfg.min_map_size:
            kind = {"max": "maxpool", "avg": "avgpool", "strided": "strided_conv"}[cfg.pool]
            spatial(f"pool{i}", kind, c, 2, 2, 0)
            width = min(width * 2, cfg.max_width)

    if cfg.head == "gap":
        layers.append(Layer("gap", "gap", (c, h, w), (c, 1, 1), head=True))
        layers.append(Layer("flatten", "flatten", (c, 1, 1), (c,), head=True))
        last = "fc"
    else:
        features = c * h * w
        layers.append(Layer("flatten", "flatten", (c, h, w), (features,), head=True))
        layers.append(Layer("fc1", "linear", (features,), (cfg.hidden,), head=True))
        layers.append(Layer(f"{act}_fc", act, (cfg.hidden,), (cfg.hidden,), head=True))
        c, last = cfg.hidden, "fc2"
    if cfg.dropout > 0:
        layers.append(Layer("dropout", "dropout", (c,), (c,), head=True, rate=cfg.dropout))
    layers.append(Layer(last, "linear", (c,), (num_classes,), head=True))
    return layers


def receptive_fields(layers: list[Layer]) -> list[int]:
    """Receptive field (input pixels, one side) after each layer: R_l = R_(l-1) + (K_l - 1) * D_l * (product of the
    earlier strides); the head adds nothing."""
    field, jump, fields = 1, 1, []
    for layer in layers:
        if layer.kind in SPATIAL:
            field += (layer.kernel - 1) * layer.dilation * jump
            jump *= layer.stride
        fields.append(field)
    return fields


def receptive_field(layers: list[Layer]) -> int:
    """Receptive field of one unit of the last feature map (the head, which pools or flattens it, is not counted)."""
    return receptive_fields(layers)[-1]
