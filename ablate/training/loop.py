"""The training loop, one for every strategy: epochs, steps, evaluation, checkpoint, stop, in that order.

`train_group` trains the K seeds a trainer holds (K = 1 eager, K >= 1 vectorized; ablate/training/strategies.py
supplies the step and the logits). Each seed has its own batch order and augmentation shifts, drawn at each epoch's
start from its order and augment streams' generators (ablate/training/streams.py); the training set stays on the
device and batches are index gathers (no DataLoader).
Where the group stands (epochs and steps done, that epoch's running sums, each seed's results) is one `Group`, which
also writes and reads the checkpoint states, so a resumed group goes on exactly as if never stopped.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from ablate import recipe
from ablate.config import TrainConfig
from ablate.data.datasets import Dataset
from ablate.store.checkpoints import SeedState
from ablate.training import augment, divergence
from ablate.training.checkpoint import Hooks, Stopped, rng_state, set_rng_state
from ablate.training.strategies import Trainer, per_seed_cross_entropy
from ablate.training.streams import StreamSeeds

StepHook = Callable[[int, torch.Tensor], None]
"""Called after every training step with the epoch and the step's per-seed losses (detached, still on the device)."""


@dataclass
class SeedResult:
    """What one seed's training produced: status ok | failed | diverged, final metrics, one row per epoch and,
    when it ended ok, the final weights (its own state_dict on the CPU, loadable into its network's fresh module).

    `strategy` is how it was trained (eager | vectorized); `note` says why it differs from what was asked, if it does;
    `resumed` where earlier attempts stopped ({epoch: epochs done, step: steps of the next}), empty when never stopped.
    """

    seed: int
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    error: Optional[str] = None
    state_dict: Optional[dict[str, torch.Tensor]] = None
    strategy: str = "eager"
    note: Optional[str] = None
    wall_seconds: float = 0.0
    resumed: list[dict[str, int]] = field(default_factory=list)


@torch.no_grad()
def evaluate(trainer: Trainer, images: torch.Tensor, labels: torch.Tensor) -> tuple[list[float], list[float]]:
    """Mean cross-entropy and accuracy of each seed's model on a whole split, in eval mode, recipe.EVAL_BATCH images
    at a time."""
    trainer.train(False)
    loss_sum: torch.Tensor | float = 0.0
    correct: torch.Tensor | int = 0
    for start in range(0, len(labels), recipe.EVAL_BATCH):
        x, y = images[start : start + recipe.EVAL_BATCH], labels[start : start + recipe.EVAL_BATCH]
        logits = trainer.logits(x)
        loss_sum = loss_sum + per_seed_cross_entropy(logits, y, "sum")
        correct = correct + (logits.argmax(-1) == y).sum(1)
    return (loss_sum / len(labels)).tolist(), (correct / len(labels)).tolist()


def steps_per_epoch(data: Dataset, train_cfg: TrainConfig) -> int:
    """Batches in one epoch (the last may be short): what a schedule counts in."""
    return math.ceil(len(data.train_y) / train_cfg.batch_size)


def epoch_draws(generator: torch.Generator, n: int, train_cfg: TrainConfig) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """An epoch's draws from one generator, as runs drew them from their one generator before streams had names: the
    permutation of n images, then (train.augment=shift) their shifts. The order stream keeps the first and the
    augment stream the second, so each depends on its own seed alone, and both equal the old draws when they agree."""
    order = torch.randperm(n, generator=generator)
    if train_cfg.augment == "none":
        return order, None
    return order, augment.draw_shifts([generator], n, train_cfg.augment_pixels)[0]


class Epoch:
    """One epoch's batches for K seeds: each seed's permutation of the training set from its order generator and
    (train.augment=shift) its shifts from its augment generator, drawn at the epoch's start and moved to the device
    once; `at_start` holds both generators' states from before, for a checkpoint mid-epoch."""

    def __init__(self, generators: list[tuple[torch.Generator, torch.Generator]], data: Dataset, train_cfg: TrainConfig,
                 device: torch.device) -> None:
        n = len(data.train_y)
        self.at_start = [(order.get_state(), shifts.get_state()) for order, shifts in generators]
        self.index = torch.stack([epoch_draws(order, n, train_cfg)[0] for order, _ in generators]).to(device)
        self.shifts = (torch.stack([epoch_draws(shifts, n, train_cfg)[1] for _, shifts in generators]).to(device)
                       if train_cfg.augment != "none" else None)
        self.x, self.y, self.batch = data.train_x, data.train_y, train_cfg.batch_size
        self.steps = steps_per_epoch(data, train_cfg)

    def batch_at(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (K, B, C, H, W) and labels (K, B) of each seed's step-th batch."""
        index = self.index[:, step * self.batch : (step + 1) * self.batch]
        x = self.x[index]
        if self.shifts is not None:
            x = augment.shift_images(x, self.shifts[:, step * self.batch : step * self.batch + x.shape[1]])
        return x, self.y[index]


@dataclass
class Group:
    """Where K seeds trained together stand: `epoch` epochs done and `step` steps of the next; that epoch's loss sum,
    correct count and seconds so far; each seed's batch-order generator, result and earlier stops."""

    seeds: list[int]
    strategy: str
    generators: list[tuple[torch.Generator, torch.Generator]]  # each seed's (order, augment) generators
    results: list[SeedResult]
    resumed: list[list[dict[str, int]]]
    loss_sum: torch.Tensor
    correct: torch.Tensor
    epoch: int = 0
    step: int = 0
    seconds: float = 0.0

    @classmethod
    def start(cls, seeds: list[int], streams: list[StreamSeeds], strategy: str, device: torch.device) -> Group:
        """Fresh seeds: each batch order and shifts seeded by its order and augment streams, nothing done."""
        return cls(list(seeds), strategy, [(torch.Generator().manual_seed(s.order), torch.Generator().manual_seed(s.augment))
                                           for s in streams],
                   [SeedResult(seed=seed, status="ok", strategy=strategy) for seed in seeds], [[] for _ in seeds],
                   torch.zeros(len(seeds), device=device), torch.zeros(len(seeds), device=device, dtype=torch.long))

    @classmethod
    def resume(cls, states: list[SeedState], streams: list[StreamSeeds], strategy: str, device: torch.device) -> Group:
        """Seeds going on from their checkpoint states (all at one point); the global RNG put back as it was."""
        group = cls.start([state.seed for state in states], streams, strategy, device)
        set_rng_state(states[0].rng)
        for (order, shifts), result, state, where in zip(group.generators, group.results, states, group.resumed):
            order.set_state(state.order)
            shifts.set_state(state.augment)
            result.status, result.error, result.metrics, result.history = state.status, state.error, state.metrics, state.history
            where += [*state.resumed, {"epoch": state.epoch, "step": state.step}]
        group.epoch, group.step = states[0].epoch, states[0].step
        if group.step:
            group.loss_sum = torch.tensor([state.partial["loss_sum"] for state in states], device=device)
            group.correct = torch.tensor([state.partial["correct"] for state in states], device=device, dtype=torch.long)
            group.seconds = states[0].partial["seconds"]
        return group

    def count(self, losses: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        """Add one step's per-seed losses (weighted by the batch's size) and correct predictions."""
        self.loss_sum += losses * y.shape[1]
        self.correct += (logits.argmax(-1) == y).sum(1)

    def close_epoch(self, epoch: int, seconds: float, n: int, classes: int, test: tuple[list[float], list[float]],
                    val: tuple[list[float], list[float]]) -> None:
        """Each seed still ok gets its history row, or is marked diverged when its training loss is not finite or
        exploded (`divergence.exploded`); the running sums start again."""
        train_losses, train_accs = (self.loss_sum / n).tolist(), (self.correct / n).tolist()
        for i, result in enumerate(self.results):
            if result.status != "ok":
                continue
            found = divergence.exploded(train_losses[i], epoch, classes)
            if found:
                result.status, result.error = "diverged", found.reason
                result.metrics = {"diverged_epoch": epoch, "diverged_by": found.by}
                continue
            result.history.append({"epoch": epoch, "train_loss": train_losses[i], "train_acc": train_accs[i],
                                   **({"val_loss": val[0][i], "val_acc": val[1][i]} if val[1] else {}),
                                   "test_loss": test[0][i], "test_acc": test[1][i], "seconds": seconds})
        self.epoch, self.step, self.seconds = epoch, 0, 0.0
        self.loss_sum, self.correct = torch.zeros_like(self.loss_sum), torch.zeros_like(self.correct)

    def ended(self) -> bool:
        """Whether no seed is still training (all diverged)."""
        return all(result.status != "ok" for result in self.results)

    def states(self, trainer: Trainer, generators: list[tuple[torch.Tensor, torch.Tensor]], seconds: float = 0.0) -> list[SeedState]:
        """Every seed's checkpoint state at this point: `generators` are the (order, augment) generator states the next
        epoch's permutation and shifts are drawn from; mid-epoch the running sums and `seconds` go with it."""
        rng, trained = rng_state(), trainer.state()
        partial = [{"loss_sum": loss, "correct": hits, "seconds": seconds}
                   for loss, hits in zip(self.loss_sum.tolist(), self.correct.tolist())] if self.step else [{}] * len(self.seeds)
        return [SeedState(seed=r.seed, group=list(self.seeds), strategy=self.strategy, epoch=self.epoch, step=self.step,
                          order=o, augment=a, trainer=t, rng=rng, partial=p, status=r.status, error=r.error,
                          metrics=dict(r.metrics), history=list(r.history), resumed=list(w))
                for r, (o, a), t, p, w in zip(self.results, generators, trained, partial, self.resumed)]

    def finish(self, trainer: Trainer, seconds: float, steps: int, classes: int) -> list[SeedResult]:
        """The results: final metrics of every seed that ended, weights of each that ended ok; a seed whose last epoch
        is at chance after `steps` optimizer steps (`divergence.at_chance`) is diverged, its final metrics kept as the
        evidence; wall seconds are the group's over K."""
        for result, state, where in zip(self.results, trainer.state_dicts(), self.resumed):
            if result.status == "ok":
                result.metrics = final_metrics(result.history)
                last = result.history[-1]
                found = divergence.at_chance(last["train_acc"], last["epoch"], steps, classes)
                if found:
                    result.status, result.error = "diverged", found.reason
                    result.metrics |= {"diverged_epoch": last["epoch"], "diverged_by": found.by}
                else:
                    result.state_dict = state
            result.wall_seconds = seconds / len(self.seeds)
            result.resumed = where
        return self.results


def final_metrics(history: list[dict[str, float]]) -> dict[str, float]:
    """A run's metrics: its last epoch's, and the training seconds of all epochs."""
    last = history[-1]
    return {"test_acc": last["test_acc"], "test_loss": last["test_loss"], "train_loss": last["train_loss"],
            "train_acc": last["train_acc"], "train_seconds": sum(row["seconds"] for row in history),
            **{name: last[name] for name in ("val_acc", "val_loss") if name in last}}


def train_group(trainer: Trainer, seeds: list[int], streams: list[StreamSeeds], train_cfg: TrainConfig, data: Dataset,
                device: torch.device, on_step: StepHook = lambda epoch, losses: None, hooks: Hooks = Hooks(),
                resume: Optional[list[SeedState]] = None) -> list[SeedResult]:
    """Train the K seeds a trainer holds for `train_cfg.epochs` epochs, each seed's batches drawn from its `streams`;
    one result per seed, with its own final weights when it ended ok.

    With `resume` (one state per seed, all at the same point) it goes on from there exactly as if never stopped.
    `hooks.on_epoch` gets every epoch's results; when `hooks.stop()` turns true between two steps, it raises
    Stopped with every seed's state. A seed whose epoch loss is not finite or exploded is marked diverged and its
    curve ends before that epoch, one that ends at chance is marked diverged at the end (ablate/training/divergence.py);
    the others go on. Per-epoch `seconds` are the group's time divided by K, the cost of one seed when
    trained this way.
    """
    started = time.perf_counter()
    data = data.to(device)
    if resume:
        trainer.load_state([state.trainer for state in resume])
    group = (Group.resume(resume, streams, trainer.strategy, device) if resume
             else Group.start(seeds, streams, trainer.strategy, device))
    for epoch in range(group.epoch + 1, train_cfg.epochs + 1):
        trainer.train(True)
        clock = time.perf_counter() - group.seconds
        batches = Epoch(group.generators, data, train_cfg, device)
        for step in range(group.step, batches.steps):
            if hooks.stop():
                group.step = step
                raise Stopped(group.states(trainer, batches.at_start, time.perf_counter() - clock))
            x, y = batches.batch_at(step)
            losses, logits = trainer.step(x, y)
            group.count(losses, logits, y)
            on_step(epoch, losses)
        seconds = (time.perf_counter() - clock) / len(seeds)
        test = evaluate(trainer, data.test_x, data.test_y)
        val = evaluate(trainer, data.val_x, data.val_y) if len(data.val_y) else ([], [])
        group.close_epoch(epoch, seconds, len(data.train_y), data.num_classes, test, val)
        now = [(order.get_state(), shifts.get_state()) for order, shifts in group.generators]
        hooks.on_epoch(epoch, group.results, functools.partial(group.states, trainer, now))
        if group.ended():
            break
    steps = group.epoch * math.ceil(len(data.train_y) / train_cfg.batch_size)
    return group.finish(trainer, time.perf_counter() - started, steps, data.num_classes)
