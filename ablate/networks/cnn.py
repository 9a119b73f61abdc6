"""Builds every variant of the CNN from its layer plan (ablate/networks/layer_plan.py), and torchvision's resnet18
(`model.arch=resnet18`, for transfer learning). Consumers reach both through ablate/networks/network.py. The modules
are built from the same plan as the receptive field and the layer table, so those can never disagree.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor, nn

from ablate.config import ModelConfig
from ablate.networks.layer_plan import CONVS, Layer, Shape, plan_layers

ACTIVATION_MODULES = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}  # model.activation -> its module


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

