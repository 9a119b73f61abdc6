"""Whether a seed's training diverged, decided from what its numbers show; the thresholds and their reasons are in
ablate/recipe.py. A diverged seed is stored with its status, the rule that decided it and the numbers, never pooled."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from ablate import recipe


@dataclass(frozen=True)
class Divergence:
    """Which rule decided it (`by`, recorded as metrics.json's diverged_by) and the evidence in words (its error)."""

    by: str
    reason: str


def exploded(train_loss: float, epoch: int, classes: int) -> Optional[Divergence]:
    """An epoch's mean training loss that is not finite, or over recipe.LOSS_EXPLOSION x ln(classes); else None."""
    if not math.isfinite(train_loss):
        return Divergence("loss not finite", f"training loss became {train_loss} in epoch {epoch}")
    uniform = math.log(max(classes, 2))
    if train_loss > recipe.LOSS_EXPLOSION * uniform:
        return Divergence("loss exploded", f"training loss became {train_loss:.3g} in epoch {epoch}, over "
                          f"{recipe.LOSS_EXPLOSION:g} x ln({classes}) = {recipe.LOSS_EXPLOSION * uniform:.3g} (a uniform guess's loss)")
    return None


def at_chance(train_acc: float, epoch: int, steps: int, classes: int) -> Optional[Divergence]:
    """A last epoch's training accuracy within recipe.CHANCE_MARGIN of 1 / classes after at least
    recipe.CHANCE_AFTER_STEPS optimizer steps; else None."""
    chance = 1 / max(classes, 2)
    if steps < recipe.CHANCE_AFTER_STEPS or train_acc > chance + recipe.CHANCE_MARGIN:
        return None
    return Divergence("accuracy at chance", f"training accuracy {100 * train_acc:.1f} % in epoch {epoch}, after {steps} "
                      f"steps, is within {100 * recipe.CHANCE_MARGIN:g} pt of chance ({100 * chance:.1f} % for {classes} classes)")
