"""Transfer learning as one more factor, `model.transfer`: where a network's starting weights come from, which
of its parts train, and at which learning rates.

scratch   random init, everything trains (model.weights is not used)
frozen    pretrained backbone, requires_grad=False and its BatchNorm kept in eval mode (running statistics
          neither used from the batch nor updated); only the new head trains
partial   as frozen, but the backbone's last stage trains too
finetune  everything trains; the head at train.lr, each backbone stage below it at train.lr x
          train.finetune_lr_decay^k (k = 1 for the stage just below the head), a discriminative schedule

The head is always new: its weights keep their seeded random init, so a pretrained model with another number
of classes transfers too. Where the pretrained weights come from is ablate/networks/weights.py's concern; this module
never touches files, so the engine can use it.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ablate.config import ConfigError, ModelConfig, TrainConfig
from ablate.networks.cnn import Parts


def _trainable_stages(parts: Parts, strategy: str) -> list[list[nn.Module]]:
    return {"scratch": parts.stages, "finetune": parts.stages, "partial": parts.stages[-1:], "frozen": []}[strategy]


def set_trainable(parts: Parts, strategy: str) -> None:
    """requires_grad per model.transfer: the head always trains; the backbone's stages as the strategy says."""
    trainable = _trainable_stages(parts, strategy)
    for stage in parts.stages:
        for module in stage:
            module.requires_grad_(any(stage is chosen for chosen in trainable))
    for module in parts.head:
        module.requires_grad_(True)


def train_mode(model: nn.Module) -> None:
    """model.train(), except that BatchNorm layers whose parameters are frozen stay in eval mode, so a frozen
    backbone normalises with its pretrained running statistics and never updates them."""
    model.train()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            weights = list(module.parameters())
            if weights and not any(w.requires_grad for w in weights):
                module.eval()


def parameter_groups(parts: Parts, model_cfg: ModelConfig, train_cfg: TrainConfig) -> list[dict[str, Any]]:
    """The optimizer's parameter groups: every trainable parameter once, each group with its own learning rate
    (one rate for all, except under finetune, where each stage below the head gets finetune_lr_decay times less)."""
    def trainable(modules: list[nn.Module]) -> list[nn.Parameter]:
        return [p for module in modules for p in module.parameters() if p.requires_grad]

    if model_cfg.transfer != "finetune":
        every = [module for stage in parts.stages for module in stage] + parts.head
        return [{"params": trainable(every), "lr": train_cfg.lr}]
    groups = [{"params": trainable(parts.head), "lr": train_cfg.lr}]
    for depth, stage in enumerate(reversed(parts.stages), start=1):
        groups.append({"params": trainable(stage), "lr": train_cfg.lr * train_cfg.finetune_lr_decay**depth})
    return groups


def _keys_of(model: nn.Module, modules: list[nn.Module]) -> set[str]:
    """state_dict keys of the tensors that belong to `modules` (parameters and buffers)."""
    owned = {id(t) for module in modules for t in (*module.parameters(), *module.buffers())}
    return {key for key, tensor in model.state_dict(keep_vars=True).items() if id(tensor) in owned}


def load_backbone(model: nn.Module, parts: Parts, state: dict[str, Tensor], source: str) -> None:
    """Copy every backbone tensor (weights and BatchNorm statistics) from `state`; the head keeps its own init.
    Raises ConfigError naming `source` when a tensor is missing or has another shape."""
    own = model.state_dict()
    for key in sorted(_keys_of(model, [m for stage in parts.stages for m in stage])):
        if key not in state:
            raise ConfigError(f"model.weights={source}: has no tensor {key!r}, so its network is not this one; match model.* to it")
        if state[key].shape != own[key].shape:
            raise ConfigError(
                f"model.weights={source}: {key} has shape {tuple(state[key].shape)} there and {tuple(own[key].shape)} here; "
                "match model.* (and the data's channels) to the pretrained network"
            )
        own[key] = state[key]
    model.load_state_dict(own)
