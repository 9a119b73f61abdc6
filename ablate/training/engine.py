"""Trains the seeds of one variant on CPU or CUDA and returns per-seed metrics and per-epoch curves.

The engine knows nothing of Hydra or files: it takes config objects and tensors. Each seed fixes the
initial weights and the order of the training batches, so the same seed gives the same numbers on the
same device with the same strategy. The training set stays on the device and batches are index gathers
(no DataLoader). Two strategies compute the same training: `eager` trains one seed at a time;
`vectorized` trains a group of seeds as one stacked model (torch.func.vmap over stacked parameters).
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, Protocol

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ablate.config import ModelConfig, TrainConfig
from ablate.data.datasets import Dataset
from ablate.networks import transfer
from ablate.networks.cnn import build_model, model_parts, output_sizes, parameter_count
from ablate.store.checkpoints import SeedState
from ablate.training import augment
from ablate.training.checkpoint import Hooks, Stopped, rng_state, set_rng_state

EVAL_BATCH = 256  # test images per forward; on the CPU 256 ran 2.5x faster than 1000 (cache-sized maps)
PRECISION_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# Share of the free GPU memory a group of seeds may plan to use; the rest is headroom for the allocator and cuDNN.
MEMORY_SHARE = 0.7

StepHook = Callable[[int, torch.Tensor], None]
"""Called after every training step with the epoch and the step's per-seed losses (detached, still on the device)."""


@dataclass
class SeedResult:
    """What one seed's training produced: status ok | failed | diverged, final metrics, one row per epoch and,
    when it ended ok, the final weights (its own state_dict on the CPU, loadable into `build_model`'s network).

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


def make_optimizer(params: Iterable[torch.Tensor] | Iterable[dict[str, Any]], cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD (with momentum) over parameters or parameter groups (each with its own lr), as the train
    config says; torch's fused kernels on the CPU (measured faster there).

    All three are elementwise, so on stacked parameters (one slice per seed) they equal one optimizer per seed.
    """
    fused = True if device.type == "cpu" else None  # None: torch's own default on CUDA (not measured here)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, fused=fused)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)


def memory_layout(device: torch.device) -> torch.memory_format:
    """channels_last on the CPU (oneDNN's fast layout: 1.0 to 1.35x per step, never slower); unchanged elsewhere."""
    return torch.channels_last if device.type == "cpu" else torch.preserve_format


def _cpu_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state_dict's tensors detached and copied to the CPU, sharing no storage with the training tensors."""
    return {name: tensor.detach().to("cpu", copy=True) for name, tensor in state.items()}


def _cpu_tree(tree: Any) -> Any:
    """A nest of dicts and lists (an optimizer's state_dict) with every tensor copied to the CPU."""
    if isinstance(tree, torch.Tensor):
        return tree.detach().to("cpu", copy=True)
    if isinstance(tree, dict):
        return {key: _cpu_tree(value) for key, value in tree.items()}
    if isinstance(tree, list):
        return [_cpu_tree(value) for value in tree]
    return tree


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    dtype = PRECISION_DTYPES[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def init_model(model_cfg: ModelConfig, train_cfg: TrainConfig, data: Dataset, seed: int, device: torch.device,
               weights: Optional[dict[str, torch.Tensor]] = None) -> tuple[nn.Module, list[dict[str, Any]]]:
    """The network for `seed` and its optimizer's parameter groups: the global RNG is seeded, then the model is built
    (every strategy); under model.transfer its backbone comes from `weights` and only what the strategy trains trains."""
    torch.manual_seed(seed)
    model = build_model(model_cfg, data.input_shape, data.num_classes)
    parts = model_parts(model, model_cfg, data.input_shape, data.num_classes)
    if model_cfg.transfer != "scratch":
        if weights is None:
            raise ValueError(f"model.transfer={model_cfg.transfer} starts from pretrained weights, and none were given")
        transfer.load_backbone(model, parts, weights, model_cfg.weights or "")
    transfer.set_trainable(parts, model_cfg.transfer)
    return model.to(device), transfer.parameter_groups(parts, model_cfg, train_cfg)


def _per_seed_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, reduction: str) -> torch.Tensor:
    """Cross-entropy of logits (K, B, classes) against labels (K, B) or (B,), reduced over B for each of the K seeds."""
    labels = labels.expand(logits.shape[:2])
    losses = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), reduction="none").view(labels.shape)
    return losses.mean(1) if reduction == "mean" else losses.sum(1)


class Trainer(Protocol):
    """K seeds' models and optimizers behind one step: inputs (K, B, C, H, W) and labels (K, B), one batch per seed."""

    strategy: str

    def train(self, mode: bool) -> None:
        """Training (True) or evaluation (False) mode, as nn.Module.train."""

    def step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step per seed; returns the per-seed mean losses (K,) and logits (K, B, classes), detached."""

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (K, B, classes) of every seed's model on the same inputs (B, C, H, W)."""

    def state_dicts(self) -> list[dict[str, torch.Tensor]]:
        """Each seed's weights and buffers as a plain nn.Module state_dict, copied to the CPU."""

    def state(self) -> list[dict[str, Any]]:
        """Each seed's weights, optimizer and grad-scaler state (a checkpoint's `trainer`), copied to the CPU."""

    def load_state(self, states: list[dict[str, Any]]) -> None:
        """Put back what `state` returned, one entry per seed in the same order."""


class EagerTrainer:
    """One seed's nn.Module and optimizer: the plain PyTorch loop (K = 1), in the device's fast memory layout."""

    strategy = "eager"

    def __init__(self, model: nn.Module, train_cfg: TrainConfig, device: torch.device, precision: str,
                 groups: Optional[list[dict[str, Any]]] = None) -> None:
        self.device, self.precision, self.layout = device, precision, memory_layout(device)
        self.model = model.to(memory_format=self.layout)
        self.optimizer = make_optimizer(self.model.parameters() if groups is None else groups, train_cfg, device)
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    def train(self, mode: bool) -> None:
        """Training mode (frozen BatchNorm layers excepted, see transfer.train_mode) or evaluation mode of the model."""
        if mode:
            transfer.train_mode(self.model)
        else:
            self.model.eval()

    def step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward, cross-entropy, backward and optimizer step on the one seed's batch."""
        with _autocast(self.device, self.precision):
            logits = self.model(x[0].contiguous(memory_format=self.layout))
            loss = F.cross_entropy(logits.float(), y[0])
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach().unsqueeze(0), logits.detach().unsqueeze(0)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The model's logits, with a leading seed axis of 1."""
        with _autocast(self.device, self.precision):
            return self.model(x.contiguous(memory_format=self.layout)).unsqueeze(0)

    def state_dicts(self) -> list[dict[str, torch.Tensor]]:
        """The one model's state_dict, copied to the CPU."""
        return [_cpu_copy(self.model.state_dict())]

    def state(self) -> list[dict[str, Any]]:
        """The model's, optimizer's and grad scaler's state_dicts, copied to the CPU."""
        return [{"model": self.state_dicts()[0], "optimizer": _cpu_tree(self.optimizer.state_dict()),
                 "scaler": self.scaler.state_dict()}]

    def load_state(self, states: list[dict[str, Any]]) -> None:
        """Load the one seed's state into the model, optimizer and grad scaler."""
        (state,) = states
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])


class VectorizedTrainer:
    """K seeds' models as one: parameters and buffers stacked along a new first axis, the forward vmapped over it.

    Each seed keeps its own weights, BatchNorm statistics and batches; the per-seed losses are summed before
    backward, so each slice of a stacked gradient is exactly its own seed's gradient.
    """

    strategy = "vectorized"

    def __init__(self, models: list[nn.Module], train_cfg: TrainConfig, device: torch.device, precision: str) -> None:
        self.device, self.precision = device, precision
        self.params, self.buffers = torch.func.stack_module_state(models)
        self.seeds = len(models)
        self.base = copy.deepcopy(models[0]).to("meta")
        self.optimizer = make_optimizer(self.params.values(), train_cfg, device)
        self._per_seed = torch.vmap(self._forward, in_dims=(0, 0, 0), randomness="different")  # own dropout mask per seed

    def _forward(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(self.base, (params, buffers), (x,))

    def train(self, mode: bool) -> None:
        """Training or evaluation mode of the shared module structure (BatchNorm's behaviour)."""
        self.base.train(mode)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every seed's forward on its own batch in one vmapped call, one backward, one optimizer step."""
        with _autocast(self.device, self.precision):
            logits = self._per_seed(self.params, self.buffers, x)
            losses = _per_seed_cross_entropy(logits, y, "mean")
        self.optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        self.optimizer.step()
        return losses.detach(), logits.detach()

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Every seed's logits on the same inputs, one seed after another.

        Not vmapped: on the CPU, 3 seeds on the 10k test images took 15 s vmapped and 5.7 s one after another.
        """
        with _autocast(self.device, self.precision):
            return torch.stack([self._forward(*self._seed(k), x) for k in range(self.seeds)])

    def state_dicts(self) -> list[dict[str, torch.Tensor]]:
        """Each seed's slice of every stacked parameter and buffer, under the names (and in the order) of one
        module's state_dict; copied, so a seed's model.pt holds its own weights, not the whole stack's storage."""
        names, stacked = self.base.state_dict().keys(), {**self.params, **self.buffers}  # the meta module: names only
        return [_cpu_copy({name: stacked[name][k] for name in names}) for k in range(self.seeds)]

    def state(self) -> list[dict[str, Any]]:
        """Each seed's own slice of the weights and of the optimizer's moments (its step count is shared); no scaler."""
        optimizer = self.optimizer.state_dict()
        return [{"model": weights, "scaler": {}, "optimizer": {
                    "param_groups": optimizer["param_groups"],
                    "state": {index: {name: _cpu_tree(value[k] if value.dim() else value) for name, value in moments.items()}
                              for index, moments in optimizer["state"].items()}}}
                for k, weights in enumerate(self.state_dicts())]

    @torch.no_grad()
    def load_state(self, states: list[dict[str, Any]]) -> None:
        """Stack the seeds' states back into the stacked parameters, buffers and optimizer moments."""
        for name, tensor in {**self.params, **self.buffers}.items():
            tensor.copy_(torch.stack([state["model"][name] for state in states]))
        first = states[0]["optimizer"]
        self.optimizer.load_state_dict({"param_groups": first["param_groups"], "state": {
            index: {name: torch.stack([state["optimizer"]["state"][index][name] for state in states]) if value.dim() else value
                    for name, value in moments.items()}
            for index, moments in first["state"].items()}})

    def _seed(self, k: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Seed k's parameters and buffers: views into the stacked tensors."""
        return {name: p[k] for name, p in self.params.items()}, {name: b[k] for name, b in self.buffers.items()}


@torch.no_grad()
def evaluate(trainer: Trainer, images: torch.Tensor, labels: torch.Tensor) -> tuple[list[float], list[float]]:
    """Mean cross-entropy and accuracy of each seed's model on a whole split, in eval mode."""
    trainer.train(False)
    loss_sum: torch.Tensor | float = 0.0
    correct: torch.Tensor | int = 0
    for start in range(0, len(labels), EVAL_BATCH):
        x, y = images[start : start + EVAL_BATCH], labels[start : start + EVAL_BATCH]
        logits = trainer.logits(x)
        loss_sum = loss_sum + _per_seed_cross_entropy(logits, y, "sum")
        correct = correct + (logits.argmax(-1) == y).sum(1)
    return (loss_sum / len(labels)).tolist(), (correct / len(labels)).tolist()


def _final_metrics(history: list[dict[str, float]]) -> dict[str, float]:
    last = history[-1]
    return {"test_acc": last["test_acc"], "test_loss": last["test_loss"], "train_loss": last["train_loss"],
            "train_acc": last["train_acc"], "train_seconds": sum(row["seconds"] for row in history),
            **{name: last[name] for name in ("val_acc", "val_loss") if name in last}}


def _augmentation(orders: list[torch.Generator], n: int, train_cfg: TrainConfig, device: torch.device) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """One epoch's augmentation of the training batch (K, B, C, H, W) that starts at position `start` of each seed's
    order: under train.augment=shift, moves drawn for the whole epoch from each seed's own generator (after its batch
    order; one transfer to the device per epoch); unchanged images otherwise."""
    if train_cfg.augment == "none":
        return lambda x, start: x
    shifts = augment.draw_shifts(orders, n, train_cfg.augment_pixels).to(device)
    return lambda x, start: augment.shift_images(x, shifts[:, start : start + x.shape[1]])


def train_group(trainer: Trainer, seeds: list[int], train_cfg: TrainConfig, data: Dataset, device: torch.device,
                on_step: StepHook = lambda epoch, losses: None, hooks: Hooks = Hooks(),
                resume: Optional[list[SeedState]] = None) -> list[SeedResult]:
    """Train the K seeds a trainer holds for `train_cfg.epochs` epochs, each on its own batch order; one result per seed,
    with its own final weights when it ended ok.

    With `resume` (one state per seed, all at the same point) it goes on from there exactly as if never stopped.
    `hooks.on_epoch` gets every epoch's results; when `hooks.stop()` turns true between two steps, it raises
    Stopped with every seed's state. A seed whose epoch loss is not finite is marked diverged and its curve ends
    there; the others go on. Per-epoch `seconds` are the group's time divided by K, the cost of one seed when
    trained this way.
    """
    started_all = time.perf_counter()
    orders = [torch.Generator().manual_seed(seed) for seed in seeds]
    train_x, train_y = data.train_x.to(device), data.train_y.to(device)
    test_x, test_y = data.test_x.to(device), data.test_y.to(device)
    val_x, val_y = data.val_x.to(device), data.val_y.to(device)
    n, batch, k = len(train_y), train_cfg.batch_size, len(seeds)
    results = [SeedResult(seed=seed, status="ok", strategy=trainer.strategy) for seed in seeds]
    done, first_step, resumed = 0, 0, [[] for _ in seeds]
    loss_sum = torch.zeros(k, device=device)
    correct = torch.zeros(k, device=device, dtype=torch.long)
    seconds_before = 0.0
    if resume:
        trainer.load_state([state.trainer for state in resume])
        set_rng_state(resume[0].rng)
        for order, result, state, where in zip(orders, results, resume, resumed):
            order.set_state(state.order)
            result.status, result.error, result.metrics, result.history = state.status, state.error, state.metrics, state.history
            where += [*state.resumed, {"epoch": state.epoch, "step": state.step}]
        done, first_step = resume[0].epoch, resume[0].step
        if first_step:
            loss_sum = torch.tensor([state.partial["loss_sum"] for state in resume], device=device)
            correct = torch.tensor([state.partial["correct"] for state in resume], device=device, dtype=torch.long)
            seconds_before = resume[0].partial["seconds"]

    def snapshot(epoch: int, step: int, order_states: list[torch.Tensor], partial: Optional[list[dict[str, float]]] = None) -> list[SeedState]:
        rng, trained = rng_state(), trainer.state()
        return [SeedState(seed=r.seed, group=list(seeds), strategy=trainer.strategy, epoch=epoch, step=step, order=o, trainer=t, rng=rng,
                          partial=p or {}, status=r.status, error=r.error, metrics=dict(r.metrics), history=list(r.history),
                          resumed=list(w))
                for r, o, t, p, w in zip(results, order_states, trained, partial or [None] * k, resumed)]

    for epoch in range(done + 1, train_cfg.epochs + 1):
        trainer.train(True)
        started = time.perf_counter() - seconds_before
        at_start = [order.get_state() for order in orders]
        permutations = torch.stack([torch.randperm(n, generator=order) for order in orders]).to(device)
        augmented = _augmentation(orders, n, train_cfg, device)
        for step, start in enumerate(range(first_step * batch, n, batch), start=first_step):
            if hooks.stop():
                partial = [{"loss_sum": l, "correct": c, "seconds": time.perf_counter() - started}
                           for l, c in zip(loss_sum.tolist(), correct.tolist())]
                raise Stopped(snapshot(epoch - 1, step, at_start, partial if step else None))
            index = permutations[:, start : start + batch]
            y = train_y[index]
            losses, logits = trainer.step(augmented(train_x[index], start), y)
            loss_sum += losses * y.shape[1]
            correct += (logits.argmax(-1) == y).sum(1)
            on_step(epoch, losses)
        train_losses, train_accs = (loss_sum / n).tolist(), (correct / n).tolist()
        seconds = (time.perf_counter() - started) / k
        test_losses, test_accs = evaluate(trainer, test_x, test_y)
        val_losses, val_accs = evaluate(trainer, val_x, val_y) if len(val_y) else ([], [])
        for i, result in enumerate(results):
            if result.status != "ok":
                continue
            if not math.isfinite(train_losses[i]):
                result.status, result.error = "diverged", f"training loss became {train_losses[i]} in epoch {epoch}"
                result.metrics = {"diverged_epoch": epoch}
                continue
            result.history.append({"epoch": epoch, "train_loss": train_losses[i], "train_acc": train_accs[i],
                                   **({"val_loss": val_losses[i], "val_acc": val_accs[i]} if val_accs else {}),
                                   "test_loss": test_losses[i], "test_acc": test_accs[i], "seconds": seconds})
        first_step, seconds_before = 0, 0.0
        loss_sum, correct = torch.zeros_like(loss_sum), torch.zeros_like(correct)
        hooks.on_epoch(epoch, results, lambda: snapshot(epoch, 0, [order.get_state() for order in orders]))
        if all(result.status != "ok" for result in results):
            break
    for result, state, where in zip(results, trainer.state_dicts(), resumed):
        if result.status == "ok":
            result.metrics, result.state_dict = _final_metrics(result.history), state
        result.wall_seconds = (time.perf_counter() - started_all) / k
        result.resumed = where
    return results


def train_seed(model_cfg: ModelConfig, train_cfg: TrainConfig, data: Dataset, seed: int, device: torch.device,
               precision: str, on_step: StepHook = lambda epoch, losses: None,
               weights: Optional[dict[str, torch.Tensor]] = None, hooks: Hooks = Hooks(),
               resume: Optional[SeedState] = None) -> SeedResult:
    """Train one model for `train_cfg.epochs` epochs, the plain way: freshly initialised from the seed, its backbone
    from `weights` when model.transfer says so, or going on from `resume`; curves and metrics in a SeedResult."""
    model, groups = init_model(model_cfg, train_cfg, data, seed, device, weights)
    trainer = EagerTrainer(model, train_cfg, device, precision, groups)
    return train_group(trainer, [seed], train_cfg, data, device, on_step, hooks, [resume] if resume else None)[0]


def train_vectorized(model_cfg: ModelConfig, train_cfg: TrainConfig, data: Dataset, seeds: list[int], device: torch.device,
                     precision: str, on_step: StepHook = lambda epoch, losses: None, hooks: Hooks = Hooks(),
                     resume: Optional[list[SeedState]] = None) -> list[SeedResult]:
    """Train `seeds` together as one stacked model; each seed has the init and batch order `train_seed` would give it
    (or goes on from its state in `resume`, all at one point)."""
    models = [init_model(model_cfg, train_cfg, data, seed, device)[0] for seed in seeds]
    trainer = VectorizedTrainer(models, train_cfg, device, precision)
    return train_group(trainer, seeds, train_cfg, data, device, on_step, hooks, resume)


def seed_bytes(model_cfg: ModelConfig, data: Dataset, train_cfg: TrainConfig) -> int:
    """Rough upper estimate of one seed's memory when trained vectorised, in bytes (fp32).

    Weights, gradients and two optimizer moments (4 copies), plus each layer's output kept for backward, its
    gradient and a workspace (3 copies) for a training batch, or the two largest maps of an evaluation batch.
    """
    sizes = sorted(output_sizes(model_cfg, data.input_shape, data.num_classes))
    params = parameter_count(build_model(model_cfg, data.input_shape, data.num_classes))
    activations = max(3 * sum(sizes) * train_cfg.batch_size, sum(sizes[-2:]) * EVAL_BATCH)
    return 4 * (4 * params + activations)


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


def seed_groups(model_cfg: ModelConfig, train_cfg: TrainConfig, data: Dataset, seeds: list[int], device: torch.device) -> list[list[int]]:
    """The groups of seeds to train together: bounded by `train.seeds_per_group` and, on CUDA, by free GPU memory."""
    available = None
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        available = int(free * MEMORY_SHARE)
    return plan_groups(seeds, seed_bytes(model_cfg, data, train_cfg), available, train_cfg.seeds_per_group)


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
) -> list[SeedResult]:
    """Train every seed with `train_cfg.strategy` (eager or vectorized, already resolved: see ablate/study/resolve.py), each
    starting from `weights_for(seed)` under model.transfer, or going on from its checkpoint (`hooks.resume`);
    `on_result` gets each result as soon as its seed (or group) ends. A resumed vectorized group trains as it did.

    An exception in one seed (a shape error, CUDA out of memory) becomes a `failed` result; the others go on. A
    vectorized group that runs out of memory is retried in two smaller vectorized groups, so a study never mixes
    strategies; any other error fails the group's seeds.
    """
    strategy = train_cfg.strategy
    if strategy not in ("eager", "vectorized"):
        raise ValueError(f"train_seeds needs a resolved strategy (eager or vectorized), not {strategy!r}")
    data = data.to(device)
    steps = math.ceil(len(data.train_y) / train_cfg.batch_size)
    bar = tqdm(total=len(seeds) * train_cfg.epochs * steps, desc=label, unit="step", disable=not progress, dynamic_ncols=True, mininterval=1.0)
    found = {seed: hooks.resume(seed) for seed in seeds}
    states = {seed: state for seed, state in found.items() if state is not None}
    bar.update(sum(state.epoch * steps + state.step for state in states.values()))

    def hook(group: list[int]) -> StepHook:
        def show(epoch: int, losses: torch.Tensor) -> None:
            if bar.update(len(losses)):  # True only when the bar redraws (at most once a second): the one host sync
                bar.set_postfix_str(f"seeds {group}, epoch {epoch}/{train_cfg.epochs}, loss {losses.mean().item():.4f}", refresh=False)
        return show

    def attempt(group: list[int], train: Callable[[], list[SeedResult]]) -> list[SeedResult]:
        started, done_before = time.perf_counter(), bar.n
        try:
            return train()
        except Exception as error:  # noqa: BLE001 - one failed seed or group must not stop the study
            bar.n = done_before  # undo the failed attempt's progress
            if strategy == "vectorized" and len(group) > 1 and _out_of_memory(error):
                half = (len(group) + 1) // 2
                return vectorized(group[:half]) + vectorized(group[half:])
            return [_failed(seed, error, (time.perf_counter() - started) / len(group), strategy) for seed in group]

    def vectorized(group: list[int]) -> list[SeedResult]:
        resume = [states[seed] for seed in group] if all(seed in states for seed in group) else None
        return attempt(group, lambda: train_vectorized(model_cfg, train_cfg, data, group, device, precision, hook(group), hooks, resume))

    def eager(seed: int) -> list[SeedResult]:
        return attempt([seed], lambda: [train_seed(model_cfg, train_cfg, data, seed, device, precision, hook([seed]), weights_for(seed),
                                                   hooks, states.get(seed))])

    results: list[SeedResult] = []
    with bar:
        groups = [[seed] for seed in seeds]
        if strategy == "vectorized":  # a resumed group trains as it did; the other seeds as planned
            resumed = [list(group) for group in dict.fromkeys(tuple(state.group) for state in states.values())]
            fresh = [seed for seed in seeds if seed not in states]
            groups = resumed + seed_groups(model_cfg, train_cfg, data, fresh, device)
        for group in groups:
            for outcome in vectorized(group) if strategy == "vectorized" else eager(group[0]):
                on_result(outcome)
                results.append(outcome)
    return results
