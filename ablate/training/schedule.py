"""The learning rate per batch (`train.schedule`, `train.warmup_epochs`), built from torch.optim.lr_scheduler and
stepped after every optimizer step, so a schedule's shape does not depend on how many epochs a run has.

Every schedule scales each parameter group's own lr (a finetuned backbone's smaller rates included). The warm-up is
torch's LinearLR: batch k of the first W = floor(warmup_epochs x batches per epoch) trains at lr x (k+1)/(W+1),
a line from 0 that reaches lr where the schedule itself starts (torch's SequentialLR hands over at batch W).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch.optim import lr_scheduler

from ablate.config import TrainConfig

STEP_DECAYS = 3
"""`step`: the batches after the warm-up fall in this many equal stretches, each at a tenth of the one before (torch's
StepLR: He et al.'s ResNet recipe for ImageNet, lr / 10 every 30 of 90 epochs)."""

STEP_GAMMA = 0.1
"""`step`: the factor from one stretch to the next."""


def make_schedule(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int) -> Optional[lr_scheduler.LRScheduler]:
    """The scheduler of `cfg.schedule` over `cfg.epochs` x `steps_per_epoch` batches, after its warm-up; None for a
    constant lr without warm-up (the plain optimizer, as before schedules existed)."""
    total = cfg.epochs * steps_per_epoch
    if cfg.schedule == "onecycle":  # torch's defaults: from lr/25 up to lr over 30% of the batches, then down to lr/25e4
        return lr_scheduler.OneCycleLR(optimizer, max_lr=[group["lr"] for group in optimizer.param_groups], total_steps=total)
    warm = int(cfg.warmup_epochs * steps_per_epoch)
    rest = total - warm
    main: Optional[lr_scheduler.LRScheduler] = None
    if cfg.schedule == "cosine":
        main = lr_scheduler.CosineAnnealingLR(optimizer, T_max=rest)
    elif cfg.schedule == "step":
        main = lr_scheduler.StepLR(optimizer, step_size=math.ceil(rest / STEP_DECAYS), gamma=STEP_GAMMA)
    if not warm:
        return main
    warmup = lr_scheduler.LinearLR(optimizer, start_factor=1 / (warm + 1), total_iters=warm)
    return warmup if main is None else lr_scheduler.SequentialLR(optimizer, [warmup, main], milestones=[warm])
