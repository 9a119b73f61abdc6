"""A Ray job's share of one GPU (the ray_tasks preset's `num_gpus`), so that several small variants train on one GPU.

`hydra.launcher.ray.remote.num_gpus` is Ray's own key: a number given there is passed to Ray as it is; the preset's
default asks the resolver `ablate.gpus_per_job` here, which gives 0 to a job that does not train on CUDA and, to one
that does, the share its estimated memory allows on the GPU visible where `ablate run` is typed (`share`).
"""

from __future__ import annotations

import math
from typing import Optional

from omegaconf import DictConfig, OmegaConf

from ablate import recipe
from ablate.config import AblateConfig, typed
from ablate.study import machine


def job_bytes(cfg: AblateConfig) -> int:
    """Rough upper estimate of one job's GPU memory, in bytes: one seed of the baseline's network as the engine plans
    a vectorized seed (`Description.training_bytes`), plus its training and test images resident on the GPU in fp32."""
    from ablate.data.catalog import input_spec
    from ablate.networks.network import create_network

    shape, classes = input_spec(cfg.data)
    described = create_network(cfg.model, shape, classes).describe()
    images = recipe.RESIDENT_IMAGES if None in (cfg.data.train_size, cfg.data.test_size) else cfg.data.train_size + cfg.data.test_size
    return described.training_bytes(cfg.train.batch_size) + 4 * images * math.prod(shape)


def share(needed_bytes: int, total_bytes: Optional[int]) -> float:
    """1/k of a GPU: the most jobs k (1 to recipe.JOBS_PER_GPU) whose estimates fit together in recipe.MEMORY_SHARE of
    its memory; a whole GPU where its memory is unknown (no GPU visible here) or one job's estimate alone exceeds it."""
    if total_bytes is None:
        return 1.0
    fits = int(recipe.MEMORY_SHARE * total_bytes // max(needed_bytes, 1))
    return 1 / min(max(fits, 1), recipe.JOBS_PER_GPU)


def total_memory() -> Optional[int]:
    """Bytes of memory of the first GPU visible here, None without one."""
    import torch

    return torch.cuda.get_device_properties(0).total_memory if machine.cuda_available() and torch.cuda.device_count() else None


def gpus_per_job(device: str, *, _root_: DictConfig) -> float:
    """The resolver behind the preset's num_gpus: 0 unless `device` trains on CUDA here (cuda, or auto with a GPU
    visible), so a CPU study waits for no GPU; else `share` of the study's baseline (the command line's settings) on
    this machine's first GPU."""
    if device != "cuda" and not (device == "auto" and machine.cuda_available()):
        return 0.0
    settings = OmegaConf.masked_copy(_root_, [key for key in _root_ if key != "hydra"])
    return share(job_bytes(typed(settings)), total_memory())
