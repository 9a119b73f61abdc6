"""The two ways of training the same seeds, behind one interface the loop (ablate/training/loop.py) calls: `eager`
trains one seed as a plain nn.Module with its optimizer; `vectorized` trains a group of seeds as one stacked model
(torch.func.vmap over parameters stacked by torch.func.stack_module_state).

Each strategy supplies the step, the logits the evaluation needs, and each seed's state for checkpoints. Everything
random in a seed's training comes from that seed's own streams (ablate/training/streams.py: its init from the global
generator seeded by its init stream, its batch order and shifts in the loop, its dropout masks here), so a seed's
draws never depend on the seeds trained beside it (its group's size changes only the batched kernels' rounding).
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any, Iterable, Iterator, Optional, Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ablate import recipe
from ablate.config import ModelConfig, TrainConfig
from ablate.data.datasets import Dataset
from ablate.networks import transfer
from ablate.networks.cnn import SeededDropout, dropout_mask
from ablate.networks.network import create_network
from ablate.training.schedule import make_schedule

PRECISION_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def make_optimizer(params: Iterable[torch.Tensor] | Iterable[dict[str, Any]], cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD (with momentum) over parameters or parameter groups (each with its own lr), as the train
    config says; torch's fused kernels on the CPU (recipe.CPU_FUSED_OPTIMIZER).

    All three are elementwise, so on stacked parameters (one slice per seed) they equal one optimizer per seed.
    """
    fused = True if device.type == "cpu" and recipe.CPU_FUSED_OPTIMIZER else None  # None: torch's own default
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, fused=fused)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)


def memory_layout(device: torch.device) -> torch.memory_format:
    """channels_last on the CPU (recipe.CPU_CHANNELS_LAST); unchanged elsewhere."""
    return torch.channels_last if device.type == "cpu" and recipe.CPU_CHANNELS_LAST else torch.preserve_format


def init_model(model_cfg: ModelConfig, train_cfg: TrainConfig, data: Dataset, init_seed: int, device: torch.device,
               weights: Optional[dict[str, torch.Tensor]] = None) -> tuple[nn.Module, list[dict[str, Any]]]:
    """The network for a run's init stream and its optimizer's parameter groups: the global RNG is seeded with
    `init_seed`, then the model is built (every strategy), so two variants whose networks have the same parameter
    shapes start seed s from the same weights; under model.transfer its backbone comes from `weights` and only what
    the strategy trains trains."""
    torch.manual_seed(init_seed)
    network = create_network(model_cfg, data.input_shape, data.num_classes)
    model = network.build()
    parts = network.parts(model)
    if model_cfg.transfer != "scratch":
        if weights is None:
            raise ValueError(f"model.transfer={model_cfg.transfer} starts from pretrained weights, and none were given")
        transfer.load_backbone(model, parts, weights, model_cfg.weights or "")
    transfer.set_trainable(parts, model_cfg.transfer)
    return model.to(device), transfer.parameter_groups(parts, model_cfg, train_cfg)


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


def per_seed_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, reduction: str, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy of logits (K, B, classes) against labels (K, B) or (B,), reduced over B for each of the K seeds
    (label smoothing: training's loss only; evaluation measures the plain one)."""
    labels = labels.expand(logits.shape[:2])
    losses = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), reduction="none",
                             label_smoothing=label_smoothing).view(labels.shape)
    return losses.mean(1) if reduction == "mean" else losses.sum(1)


@torch.no_grad()
def clip_per_seed(stacked: Iterable[torch.Tensor], max_norm: float) -> None:
    """Clip each seed's slice of the stacked gradients to total L2 norm `max_norm`, as torch's clip_grad_norm_ clips
    one seed's (same norms, same 1e-6 guard, never scaled up), so vectorized seeds clip as eager ones do."""
    grads = [p.grad for p in stacked if p.grad is not None]
    if not grads:
        return
    norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads]).norm(dim=0)  # (K,)
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.view(-1, *[1] * (g.dim() - 1)).to(g.dtype))


def _schedule_state(schedule: Optional[torch.optim.lr_scheduler.LRScheduler]) -> dict[str, Any]:
    """A schedule's state_dict for a checkpoint (empty without a schedule)."""
    return {} if schedule is None else schedule.state_dict()


def _load_schedule(schedule: Optional[torch.optim.lr_scheduler.LRScheduler], state: dict[str, Any]) -> None:
    """Put a checkpoint's schedule state back, so the next batch trains at the lr it would have had."""
    if schedule is not None:
        schedule.load_state_dict(state["schedule"])


class DropoutMasks:
    """The masks of a network's SeededDropout layers, drawn for each seed from its own generator, seeded by its dropout
    stream alone (`seeds`: ablate/training/streams.py); the same draws whether the seed trains eagerly or in any
    vectorized group."""

    def __init__(self, model: nn.Module, seeds: Sequence[int], device: torch.device) -> None:
        self.layers = [module for module in model.modules() if isinstance(module, SeededDropout)]
        self.generators = [torch.Generator(device).manual_seed(seed) for seed in seeds]

    def draw(self, batch: int) -> list[torch.Tensor]:
        """One mask per layer for the next batch, stacked over the seeds: (K, batch, *layer shape)."""
        per_seed = [[dropout_mask(layer, batch, generator) for layer in self.layers] for generator in self.generators]
        return [torch.stack(masks) for masks in zip(*per_seed)] if self.layers else []

    def states(self) -> list[torch.Tensor]:
        """Each seed's generator state, for its checkpoint."""
        return [generator.get_state() for generator in self.generators]

    def load(self, states: Sequence[torch.Tensor]) -> None:
        """Put back what `states` returned."""
        for generator, state in zip(self.generators, states):
            generator.set_state(state)


@contextlib.contextmanager
def masks_given(layers: Sequence[SeededDropout], masks: Sequence[torch.Tensor]) -> Iterator[None]:
    """The layers use these masks for one forward, then none again."""
    for layer, mask in zip(layers, masks):
        layer.mask = mask
    try:
        yield
    finally:
        for layer in layers:
            layer.mask = None


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
        """Each seed's weights, optimizer, grad-scaler and dropout-generator state (a checkpoint's `trainer`)."""

    def load_state(self, states: list[dict[str, Any]]) -> None:
        """Put back what `state` returned, one entry per seed in the same order."""


class EagerTrainer:
    """One seed's nn.Module and optimizer: the plain PyTorch loop (K = 1), in the device's fast memory layout;
    `dropout_seed` (its dropout stream's) seeds its dropout masks."""

    strategy = "eager"

    def __init__(self, model: nn.Module, train_cfg: TrainConfig, device: torch.device, precision: str,
                 groups: Optional[list[dict[str, Any]]] = None, dropout_seed: int = 0, *, steps_per_epoch: int) -> None:
        self.device, self.precision, self.layout = device, precision, memory_layout(device)
        self.smoothing, self.clip = train_cfg.label_smoothing, train_cfg.grad_clip
        self.model = model.to(memory_format=self.layout)
        self.optimizer = make_optimizer(self.model.parameters() if groups is None else groups, train_cfg, device)
        self.schedule = make_schedule(self.optimizer, train_cfg, steps_per_epoch)
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        self.masks = DropoutMasks(self.model, [dropout_seed], device)

    def train(self, mode: bool) -> None:
        """Training mode (frozen BatchNorm layers excepted, see transfer.train_mode) or evaluation mode of the model."""
        if mode:
            transfer.train_mode(self.model)
        else:
            self.model.eval()

    def step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward (with the seed's next dropout masks), cross-entropy, backward, clipping, optimizer and schedule step
        on its batch."""
        masks = [mask[0] for mask in self.masks.draw(x.shape[1])]
        with _autocast(self.device, self.precision), masks_given(self.masks.layers, masks):
            logits = self.model(x[0].contiguous(memory_format=self.layout))
            loss = F.cross_entropy(logits.float(), y[0], label_smoothing=self.smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.clip is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.schedule is not None:
            self.schedule.step()
        return loss.detach().unsqueeze(0), logits.detach().unsqueeze(0)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The model's logits, with a leading seed axis of 1."""
        with _autocast(self.device, self.precision):
            return self.model(x.contiguous(memory_format=self.layout)).unsqueeze(0)

    def state_dicts(self) -> list[dict[str, torch.Tensor]]:
        """The one model's state_dict, copied to the CPU."""
        return [_cpu_copy(self.model.state_dict())]

    def state(self) -> list[dict[str, Any]]:
        """The model's, optimizer's, schedule's and grad scaler's state_dicts, copied to the CPU, and the dropout
        generator's state."""
        return [{"model": self.state_dicts()[0], "optimizer": _cpu_tree(self.optimizer.state_dict()),
                 "schedule": _schedule_state(self.schedule), "scaler": self.scaler.state_dict(), "dropout": self.masks.states()[0]}]

    def load_state(self, states: list[dict[str, Any]]) -> None:
        """Load the one seed's state into the model, optimizer, schedule, grad scaler and dropout generator."""
        (state,) = states
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        _load_schedule(self.schedule, state)
        self.scaler.load_state_dict(state["scaler"])
        self.masks.load([state["dropout"]])


class VectorizedTrainer:
    """K seeds' models as one: parameters and buffers stacked along a new first axis, the forward vmapped over it.

    Each seed keeps its own weights, BatchNorm statistics, batches and dropout masks (drawn outside vmap from its own
    generator: vmap itself may draw nothing, randomness="error"); the per-seed losses are summed before backward, so
    each slice of a stacked gradient is exactly its own seed's gradient.
    """

    strategy = "vectorized"

    def __init__(self, models: list[nn.Module], train_cfg: TrainConfig, device: torch.device, precision: str,
                 dropout_seeds: Sequence[int], *, steps_per_epoch: int) -> None:
        self.device, self.precision = device, precision
        self.smoothing, self.clip = train_cfg.label_smoothing, train_cfg.grad_clip
        self.params, self.buffers = torch.func.stack_module_state(models)
        self.seeds = len(models)
        self.base = copy.deepcopy(models[0]).to("meta")
        self.optimizer = make_optimizer(self.params.values(), train_cfg, device)
        self.schedule = make_schedule(self.optimizer, train_cfg, steps_per_epoch)  # one lr for all: every seed's batch k
        self.masks = DropoutMasks(self.base, dropout_seeds, device)
        self._per_seed = torch.vmap(self._forward, in_dims=(0, 0, 0, 0), randomness="error")

    def _forward(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], x: torch.Tensor,
                 masks: list[torch.Tensor]) -> torch.Tensor:
        with masks_given(self.masks.layers, masks):
            return torch.func.functional_call(self.base, (params, buffers), (x,))

    def train(self, mode: bool) -> None:
        """Training or evaluation mode of the shared module structure (BatchNorm's and dropout's behaviour)."""
        self.base.train(mode)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every seed's forward on its own batch and masks in one vmapped call, one backward, each seed's gradient
        clipped on its own, one optimizer and schedule step."""
        masks = self.masks.draw(x.shape[1])
        with _autocast(self.device, self.precision):
            logits = self._per_seed(self.params, self.buffers, x, masks)
            losses = per_seed_cross_entropy(logits, y, "mean", self.smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        if self.clip is not None:
            clip_per_seed(self.params.values(), self.clip)
        self.optimizer.step()
        if self.schedule is not None:
            self.schedule.step()
        return losses.detach(), logits.detach()

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Every seed's logits on the same inputs, one seed after another.

        Not vmapped: on the CPU, 3 seeds on the 10k test images took 15 s vmapped and 5.7 s one after another.
        """
        with _autocast(self.device, self.precision):
            return torch.stack([torch.func.functional_call(self.base, self._seed(k), (x,)) for k in range(self.seeds)])

    def state_dicts(self) -> list[dict[str, torch.Tensor]]:
        """Each seed's slice of every stacked parameter and buffer, under the names (and in the order) of one
        module's state_dict; copied, so a seed's model.pt holds its own weights, not the whole stack's storage."""
        names, stacked = self.base.state_dict().keys(), {**self.params, **self.buffers}  # the meta module: names only
        return [_cpu_copy({name: stacked[name][k] for name in names}) for k in range(self.seeds)]

    def state(self) -> list[dict[str, Any]]:
        """Each seed's own slice of the weights and of the optimizer's moments (its step count is shared), its dropout
        generator's state, the shared schedule's state; no scaler."""
        optimizer = self.optimizer.state_dict()
        return [{"model": weights, "scaler": {}, "dropout": generator, "schedule": _schedule_state(self.schedule), "optimizer": {
                    "param_groups": optimizer["param_groups"],
                    "state": {index: {name: _cpu_tree(value[k] if value.dim() else value) for name, value in moments.items()}
                              for index, moments in optimizer["state"].items()}}}
                for k, (weights, generator) in enumerate(zip(self.state_dicts(), self.masks.states()))]

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
        _load_schedule(self.schedule, states[0])
        self.masks.load([state["dropout"] for state in states])

    def _seed(self, k: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Seed k's parameters and buffers: views into the stacked tensors."""
        return {name: p[k] for name, p in self.params.items()}, {name: b[k] for name, b in self.buffers.items()}
