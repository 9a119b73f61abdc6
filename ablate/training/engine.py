"""Trains the seeds of one variant on CPU or CUDA and returns per-seed metrics and per-epoch curves.

The engine knows nothing of Hydra or files: it takes config objects and tensors. It decides which seeds train
together (`seed_groups`: eager one at a time; vectorized in groups that fit the device), trains each group through
the one loop (ablate/training/loop.py) with the resolved strategy (ablate/training/strategies.py), turns a failed
group into failed results and retries a vectorized group that ran out of memory as two smaller vectorized groups.
Each seed's streams (`seed_streams.*`, ablate/training/streams.py) fix its initial weights, its batch order, its
shifts and its dropout masks, each from a generator of its own, so the same seed gives the same numbers on the same
device with the same strategy, and seed s of every variant draws the same batches as seed s of the baseline.
"""

from __future__ import annotations

import collections
import functools
import math
import time
import traceback
from typing import Callable, Optional

import torch
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ablate import recipe
from ablate.config import ModelConfig, SeedStreamsConfig, TrainConfig
from ablate.data.datasets import Dataset
from ablate.networks.network import Description, create_network
from ablate.store.checkpoints import SeedState
from ablate.training.checkpoint import Hooks
from ablate.training.loop import SeedResult, StepHook, steps_per_epoch, train_group
from ablate.training.memory import keep_freed_memory
from ablate.training.strategies import EagerTrainer, VectorizedTrainer, init_model
from ablate.training.streams import stream_seeds


def train_seed(model_cfg: ModelConfig, train_cfg: TrainConfig, data: Dataset, seed: int, device: torch.device,
               precision: str, on_step: StepHook = lambda epoch, losses: None,
               weights: Optional[dict[str, torch.Tensor]] = None, hooks: Hooks = Hooks(),
               resume: Optional[SeedState] = None, streams: SeedStreamsConfig = SeedStreamsConfig()) -> SeedResult:
    """Train one model for `train_cfg.epochs` epochs, the plain way: freshly initialised from the seed's init stream,
    its backbone from `weights` when model.transfer says so, or going on from `resume`; curves and metrics in a
    SeedResult."""
    drawn = stream_seeds(streams, seed)
    model, groups = init_model(model_cfg, train_cfg, data, drawn.init, device, weights)
    trainer = EagerTrainer(model, train_cfg, device, precision, groups, drawn.dropout, steps_per_epoch=steps_per_epoch(data, train_cfg))
    return train_group(trainer, [seed], [drawn], train_cfg, data, device, on_step, hooks, [resume] if resume else None)[0]


def train_vectorized(model_cfg: ModelConfig, train_cfg: TrainConfig, data: Dataset, seeds: list[int], device: torch.device,
                     precision: str, on_step: StepHook = lambda epoch, losses: None, hooks: Hooks = Hooks(),
                     resume: Optional[list[SeedState]] = None, streams: SeedStreamsConfig = SeedStreamsConfig()) -> list[SeedResult]:
    """Train `seeds` together as one stacked model; each seed has the init, batch order, shifts and dropout masks
    `train_seed` would give it (or goes on from its state in `resume`, all at one point)."""
    drawn = [stream_seeds(streams, seed) for seed in seeds]
    models = [init_model(model_cfg, train_cfg, data, d.init, device)[0] for d in drawn]
    trainer = VectorizedTrainer(models, train_cfg, device, precision, [d.dropout for d in drawn], steps_per_epoch=steps_per_epoch(data, train_cfg))
    return train_group(trainer, seeds, drawn, train_cfg, data, device, on_step, hooks, resume)


def plan_groups(seeds: list[int], per_seed_bytes: int, available_bytes: Optional[int], limit: Optional[int]) -> list[list[int]]:
    """Split seeds into the fewest groups that fit `available_bytes` (None: no memory bound) and hold at most `limit`.

    Group sizes differ by at most one, larger first (36 seeds where 16 fit: 12, 12, 12, not 16, 16, 4).
    """
    if not seeds:
        return []
    size = len(seeds) if limit is None else min(len(seeds), limit)
    if available_bytes is not None:
        size = min(size, available_bytes // per_seed_bytes)
    count = math.ceil(len(seeds) / max(size, 1))
    base, extra = divmod(len(seeds), count)
    sizes = [base + 1] * extra + [base] * (count - extra)
    return [seeds[sum(sizes[:i]) : sum(sizes[: i + 1])] for i in range(count)]


def seed_groups(described: Description, train_cfg: TrainConfig, data: Dataset, seeds: list[int], device: torch.device) -> list[list[int]]:
    """The groups of seeds to train together: bounded by `train.seeds_per_group` and, on CUDA, by recipe.MEMORY_SHARE
    of the free GPU memory."""
    available = None
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        available = int(free * recipe.MEMORY_SHARE)
    return plan_groups(seeds, described.training_bytes(train_cfg.batch_size), available, train_cfg.seeds_per_group)


def _planned(model_cfg: ModelConfig, train_cfg: TrainConfig, data: Dataset, seeds: list[int], device: torch.device,
             states: dict[int, SeedState], described: Optional[Description]) -> list[list[int]]:
    """The groups to train in order: eager, one seed each; vectorized, a resumed group as it was, then the others
    (in groups sized from the network's description: the caller's, or made here)."""
    if train_cfg.strategy == "eager":
        return [[seed] for seed in seeds]
    resumed = [list(group) for group in dict.fromkeys(tuple(state.group) for state in states.values())]
    described = described or create_network(model_cfg, data.input_shape, data.num_classes).describe()
    return resumed + seed_groups(described, train_cfg, data, [seed for seed in seeds if seed not in states], device)


def _train(group: list[int], model_cfg: ModelConfig, train_cfg: TrainConfig, data: Dataset, device: torch.device,
           precision: str, on_step: StepHook, weights_for: Callable[[int], Optional[dict[str, torch.Tensor]]],
           hooks: Hooks, states: dict[int, SeedState], streams: SeedStreamsConfig) -> list[SeedResult]:
    """One planned group trained with the resolved strategy, going on from its checkpoint states where it has them."""
    if train_cfg.strategy == "vectorized":
        resume = [states[seed] for seed in group] if all(seed in states for seed in group) else None
        return train_vectorized(model_cfg, train_cfg, data, group, device, precision, on_step, hooks, resume, streams)
    (seed,) = group
    return [train_seed(model_cfg, train_cfg, data, seed, device, precision, on_step, weights_for(seed), hooks,
                       states.get(seed), streams)]


def _show(bar: tqdm, group: list[int], epochs: int, epoch: int, losses: torch.Tensor) -> None:
    """Count a step of every seed of the group; on a redraw (at most every recipe.PROGRESS_SECONDS: the one host
    sync) show the group, epoch and mean loss."""
    if bar.update(len(losses)):
        bar.set_postfix_str(f"seeds {group}, epoch {epoch}/{epochs}, loss {losses.mean().item():.4f}", refresh=False)


def _failed(seed: int, error: Exception, seconds: float, strategy: str) -> SeedResult:
    return SeedResult(seed=seed, status="failed", error=f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=-3)}",
                      strategy=strategy, wall_seconds=seconds)


def _out_of_memory(error: Exception) -> bool:
    """Whether an error is the device running out of memory (a smaller group may fit)."""
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error)


def train_seeds(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    data: Dataset,
    seeds: list[int],
    device: torch.device,
    precision: str,
    label: str = "",
    on_result: Callable[[SeedResult], None] = lambda result: None,
    progress: bool = True,
    weights_for: Callable[[int], Optional[dict[str, torch.Tensor]]] = lambda seed: None,
    hooks: Hooks = Hooks(),
    described: Optional[Description] = None,
    streams: SeedStreamsConfig = SeedStreamsConfig(),
) -> list[SeedResult]:
    """Train every seed with `train_cfg.strategy` (eager or vectorized, already resolved: see ablate/study/resolve.py), each
    starting from `weights_for(seed)` under model.transfer, or going on from its checkpoint (`hooks.resume`);
    `on_result` gets each result as soon as its seed (or group) ends. A resumed vectorized group trains as it did.

    An exception in one seed (a shape error, CUDA out of memory) becomes a `failed` result; the others go on. A
    vectorized group that runs out of memory is put back as two smaller vectorized groups, trained next, so a study
    never mixes strategies; any other error fails the group's seeds. `described`: the network's description where the
    caller has it (a variant's plan), so a vectorized group's memory is planned without describing it again.
    `streams`: where each seed's streams take their seeds (`seed_streams.*`). On the CPU, glibc's malloc keeps freed
    memory from here on (ablate/training/memory.py).
    """
    if train_cfg.strategy not in ("eager", "vectorized"):
        raise ValueError(f"train_seeds needs a resolved strategy (eager or vectorized), not {train_cfg.strategy!r}")
    if device.type == "cpu":
        keep_freed_memory()  # for the rest of the process: the numbers are the same, the page faults gone
    data = data.to(device)
    steps = steps_per_epoch(data, train_cfg)
    states = {seed: state for seed in seeds if (state := hooks.resume(seed)) is not None}
    pending = collections.deque(_planned(model_cfg, train_cfg, data, seeds, device, states, described))
    results: list[SeedResult] = []
    # log lines (a seed that diverged) go above the bar instead of into its redraws
    with logging_redirect_tqdm(), tqdm(total=len(seeds) * train_cfg.epochs * steps, desc=label, unit="step", disable=not progress,
                                       dynamic_ncols=True, mininterval=recipe.PROGRESS_SECONDS) as bar:
        bar.update(sum(state.epoch * steps + state.step for state in states.values()))
        while pending:
            group, started, done_before = pending.popleft(), time.perf_counter(), bar.n
            on_step = functools.partial(_show, bar, group, train_cfg.epochs)
            try:
                outcomes = _train(group, model_cfg, train_cfg, data, device, precision, on_step, weights_for, hooks, states, streams)
            except Exception as error:  # noqa: BLE001 - one failed seed or group must not stop the study
                bar.n = done_before  # undo the failed attempt's progress
                if train_cfg.strategy == "vectorized" and len(group) > 1 and _out_of_memory(error):
                    half = (len(group) + 1) // 2
                    pending.extendleft([group[half:], group[:half]])
                    continue
                outcomes = [_failed(seed, error, (time.perf_counter() - started) / len(group), train_cfg.strategy) for seed in group]
            for outcome in outcomes:
                on_result(outcome)
                results.append(outcome)
    return results
