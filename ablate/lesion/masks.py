"""Lesions as forward hooks on a trained network: many unit masks in one forward pass, or a whole block replaced.

A mask is a row of 0 (unit knocked out) and 1 (kept) over a site's units (its channels, or a flat layer's features).
M masks are evaluated in one pass: where the site's output feeds only the layers after it (ablate's CNN, resnet18's
stages) the hook widens the batch there, the B images' output repeated once per mask (the layers before the site run
once); elsewhere the caller repeats the input batch M times and the hook masks each copy. The hooks are removed on
leaving the context, so the model is left as it was; no weight is changed.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import torch
from torch import Tensor, nn

from ablate.networks.network import LesionSite


def _masked(output: Tensor, masks: Tensor, widen: bool) -> Tensor:
    """`output` (B, units, ...) times each of M masks (M, units): (M·B, units, ...); already (M·B, ...) unless `widen`."""
    shape = (masks.shape[0], 1, masks.shape[1], *[1] * (output.dim() - 2))
    rows = output.unsqueeze(0) if widen else output.view(masks.shape[0], -1, *output.shape[1:])
    return (rows * masks.view(shape).to(output.dtype)).flatten(0, 1)


@contextlib.contextmanager
def masked(model: nn.Module, site: LesionSite, masks: Tensor) -> Iterator[None]:
    """Within the context, the site's output is multiplied by each of the masks (M, units), one per block of rows of
    the logits (mask-major: rows m·B .. (m+1)·B - 1 are mask m's)."""
    hook = model.get_submodule(site.exit).register_forward_hook(
        lambda module, inputs, output: _masked(output, masks, site.feeds_forward_only))
    try:
        yield
    finally:
        hook.remove()


def site_shapes(model: nn.Module, site: LesionSite, x: Tensor) -> tuple[torch.Size, torch.Size]:
    """The shapes of the block's input (of `entry`) and output (of `exit`) for input `x`, from one forward pass:
    the output's second axis counts the site's units; equal shapes let the block be replaced by the identity."""
    shapes: dict[str, torch.Size] = {}

    def keep(where: str, shape: torch.Size) -> None:  # a hook returning None changes nothing
        shapes.setdefault(where, shape)

    hooks = [model.get_submodule(site.entry).register_forward_pre_hook(lambda m, inputs: keep("in", inputs[0].shape)),
             model.get_submodule(site.exit).register_forward_hook(lambda m, inputs, output: keep("out", output.shape))]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return shapes["in"], shapes["out"]


@contextlib.contextmanager
def bypassed(model: nn.Module, site: LesionSite) -> Iterator[None]:
    """Within the context the block from `entry` to `exit` is the identity: its output is the input `entry` got."""
    seen: dict[str, Optional[Tensor]] = {"input": None}
    hooks = [model.get_submodule(site.entry).register_forward_pre_hook(lambda m, inputs: seen.update(input=inputs[0])),
             model.get_submodule(site.exit).register_forward_hook(lambda m, inputs, output: seen["input"])]
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()

