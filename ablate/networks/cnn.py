"""Builds every variant of the CNN from a ModelConfig, and answers questions about its shape; also builds
torchvision's resnet18 (`model.arch=resnet18`, for transfer learning). Consumers reach both through
ablate/networks/network.py. ablate's own CNN follows one
rule, the seed SimpleCNN's: a conv block (conv, optional BatchNorm, activation: ReLU by default), then
downsampling by 2 as long as the map stays at least `min_map_size` wide; the width doubles after each
downsampling, up to `max_width`. The layer plan is computed once (`plan_layers`) and reused for the
modules, the receptive field and the layer table, so those can never disagree.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor, nn

from ablate.config import ModelConfig

Shape = tuple[int, ...]


CONVS = ("conv", "strided_conv")  # layers with learned kernels: the conv blocks and the strided downsampling
SPATIAL = (*CONVS, "maxpool", "avgpool")
ACTIVATION_MODULES = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}  # model.activation -> its module


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


class SeededDropout(nn.Dropout):
    """nn.Dropout whose mask the trainer gives (`mask`, drawn from the seed's own generator), so a seed's masks are the
    same whether it trains alone or in a vectorized group; without one, torch's own dropout (the global generator)."""

    mask: Optional[Tensor] = None

    def __init__(self, p: float, shape: Shape) -> None:
        super().__init__(p)
        self.shape = shape  # one image's input to this layer, the shape of its mask without the batch

    def forward(self, x: Tensor) -> Tensor:
        """x times the given mask (already scaled by 1/(1-p)) in training, x unchanged in evaluation."""
        if not self.training or self.mask is None:
            return super().forward(x)
        return x * self.mask.to(x.dtype)


def dropout_mask(layer: SeededDropout, batch: int, generator: torch.Generator) -> Tensor:
    """One seed's mask for a batch: each unit kept with probability 1-p and scaled by 1/(1-p)."""
    keep = torch.rand((batch, *layer.shape), generator=generator, device=generator.device) >= layer.p
    return keep / (1 - layer.p)


def _module(layer: Layer) -> nn.Module:
    if layer.kind in CONVS:
        return nn.Conv2d(layer.in_shape[0], layer.out_shape[0], layer.kernel, layer.stride, layer.padding, layer.dilation)
    if layer.kind == "maxpool":
        return nn.MaxPool2d(layer.kernel, layer.stride)
    if layer.kind == "avgpool":
        return nn.AvgPool2d(layer.kernel, layer.stride)
    if layer.kind == "batchnorm":
        return nn.BatchNorm2d(layer.in_shape[0])
    if layer.kind in ACTIVATION_MODULES:
        return ACTIVATION_MODULES[layer.kind]()
    if layer.kind == "dropout":
        return SeededDropout(layer.rate, layer.in_shape)
    if layer.kind == "gap":
        return nn.AdaptiveAvgPool2d(1)
    if layer.kind == "flatten":
        return nn.Flatten()
    if layer.kind == "linear":
        return nn.Linear(layer.in_shape[0], layer.out_shape[0])
    raise ValueError(f"unknown layer kind {layer.kind!r}")


SMALL_IMAGE = 64  # resnet18 drops its stem's max-pool below this image side, so 28x28 reaches layer4 as 2x2, not 1x1


def _grey_to_rgb(module: nn.Module, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """Forward pre-hook: grey images repeated to the 3 channels resnet18's stem expects (the same as summing the
    stem's kernels over colour, so pretrained stems stay as they are)."""
    x = inputs[0]
    return (x.expand(-1, 3, -1, -1), *inputs[1:]) if x.shape[1] == 1 else inputs


def build_resnet18(input_shape: Shape, num_classes: int) -> nn.Module:
    """torchvision's resnet18, the same modules and state_dict keys (so its weights load unchanged), taking the data's
    images: grey ones go through `_grey_to_rgb`, and images under SMALL_IMAGE px skip the stem's max-pool (no weights)."""
    from torchvision.models import resnet18  # imported here: torchvision adds seconds to every command's start

    if input_shape[0] not in (1, 3):
        raise ValueError(f"model.arch=resnet18 takes grey or RGB images, not {input_shape[0]} channels")
    model = resnet18(num_classes=num_classes)
    if min(input_shape[1:]) < SMALL_IMAGE:
        model.maxpool = nn.Identity()
    model.register_forward_pre_hook(_grey_to_rgb)
    return model


def build_cnn(cfg: ModelConfig, input_shape: Shape, num_classes: int) -> nn.Sequential:
    """ablate's CNN for `cfg` as an nn.Sequential whose module names are the plan's layer names."""
    return nn.Sequential(OrderedDict((layer.name, _module(layer)) for layer in plan_layers(cfg, input_shape, num_classes)))


@dataclass
class Parts:
    """A network cut for transfer learning: the backbone's stages, input side first, and the classifier head."""

    stages: list[list[nn.Module]]
    head: list[nn.Module]


def cnn_parts(model: nn.Module, layers: list[Layer]) -> Parts:
    """Stages and head of ablate's CNN built from `layers`: one stage per conv block (conv, BatchNorm, strided
    downsampling), and the plan's head layers."""
    parts = Parts([], [])
    for layer in layers:
        module = model.get_submodule(layer.name)
        if layer.head:
            parts.head.append(module)
        elif layer.kind == "conv":
            parts.stages.append([module])
        else:
            parts.stages[-1].append(module)
    return parts


def parameter_count(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters, all of them or only those that train (BatchNorm running statistics are buffers, not
    counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


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
