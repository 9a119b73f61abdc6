"""Data augmentation on the device: random shifts of training images, drawn per image from each seed's generator.

A shift moves an image by up to N pixels in each direction, the uncovered border filled by repeating the edge
pixels (torchvision's RandomCrop with padding N and padding_mode='edge'), but on a whole batch tensor already on
the device, so the training set stays resident and no DataLoader or CPU worker is needed.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor


def draw_shifts(generators: Sequence[torch.Generator], count: int, pixels: int) -> Tensor:
    """(K, count, 2) integer moves (rows, columns) in [-pixels, pixels], row k drawn from generators[k] on the CPU,
    so a seed's moves depend on its own generator only, whatever device trains it."""
    return torch.stack([torch.randint(-pixels, pixels + 1, (count, 2), generator=g) for g in generators])


def shift_images(images: Tensor, shifts: Tensor) -> Tensor:
    """Images (..., C, H, W) each moved by its shift (..., 2): output pixel (i, j) is input pixel (i - dy, j - dx),
    clamped to the image (edge padding then crop), in one gather on the images' device."""
    *lead, c, h, w = images.shape
    rows = (torch.arange(h, device=images.device) - shifts[..., :1]).clamp(0, h - 1)  # (..., H)
    cols = (torch.arange(w, device=images.device) - shifts[..., 1:]).clamp(0, w - 1)  # (..., W)
    index = (rows[..., :, None] * w + cols[..., None, :]).flatten(-2)  # (..., H*W) source pixel of each output pixel
    return images.flatten(-2).gather(-1, index.unsqueeze(-2).expand(*lead, c, h * w)).view(images.shape)
