"""What `auto` means here: the one place that turns device, precision and train.strategy into what a run uses.

Every command resolves through `resolve`, so the run-time check, the stored record and the report all see the
same device type, precision and strategy; the refusals that depend on them (fp16 on the CPU, vectorized fp16 or bf16, your
own network where torch.func.vmap cannot run it) live here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from ablate.config import AblateConfig, ConfigError
from ablate.recipe import AUTO_STRATEGY
from ablate.study import machine

if TYPE_CHECKING:  # torch is imported where `auto` is resolved: reading a stored Resolved (the report) needs none
    import torch

AUTO_SETTINGS = ("device", "precision", "train.strategy")  # the keys `auto` may stand for, as a user types them
TF32_SWITCHES = ("cudnn_tf32", "matmul_tf32")  # CUDA's TF32 switches, which change float results
RESOLVED_KEYS = frozenset(AUTO_SETTINGS + TF32_SWITCHES)  # the identity keys that hold what a machine resolved


@dataclass(frozen=True)
class Resolved:
    """What a run trains with: device type (cpu | cuda), precision (fp32 | bf16 | fp16), strategy (eager |
    vectorized), TF32 switches on CUDA (which change float results), and why the strategy differs from the request."""

    device: str
    precision: str
    strategy: str
    tf32: tuple[tuple[str, bool], ...] = ()
    strategy_note: Optional[str] = None

    @property
    def torch_device(self) -> torch.device:
        """The torch device to train on."""
        import torch

        return torch.device(self.device)

    @property
    def numerics(self) -> dict[str, bool]:
        """The TF32 switches as a dict (empty on the CPU)."""
        return dict(self.tf32)

    @property
    def settings(self) -> dict[str, object]:
        """What was resolved under RESOLVED_KEYS, as identity holds it: `train.strategy: vectorized`."""
        return dict(zip(AUTO_SETTINGS, (self.device, self.precision, self.strategy))) | self.numerics


def resolve_device(name: str) -> str:
    """`auto` is CUDA when a GPU is visible, else the CPU; `cuda` without a GPU is refused."""
    if name == "cuda" and not machine.cuda_available():
        raise ConfigError("device=cuda is not allowed here: no CUDA GPU is visible; use device=cpu or device=auto")
    if name == "auto":
        return "cuda" if machine.cuda_available() else "cpu"
    return name


def gpus_per_job(device: str) -> int:
    """GPUs one job (a variant) needs: 1 when `device` trains on CUDA here, else 0 (the Ray preset's num_gpus), so a
    CPU study does not wait for GPUs it never touches."""
    return int(device == "cuda" or (device == "auto" and machine.cuda_available()))


def auto_precision(device: str) -> str:
    """What `precision=auto` means here: bf16 autocast on CUDA (tensor cores) and on a CPU that computes bf16 natively
    (AVX512-BF16 or AMX: there one epoch of 10,000 MNIST images took 2.6 CPU s against 4.7 in fp32, one thread,
    eager, test accuracy 96.39 % against 96.47 %); fp32 on other CPUs, where bf16 is emulated and slower."""
    return "bf16" if device == "cuda" or machine.cpu_has_native_bf16() else "fp32"


# Precisions a vectorized group cannot train in. bf16: a seed's numbers would depend on the seeds trained beside it
# (the group's size picks other batched kernels, and bf16 rounding turns their different summation order into other
# steps: seed 0 alone against in a group of 3, 512 synthetic images, 2 epochs, training loss 1.605871 against
# 1.605774, 6e-5 relative, on a CPU that emulates bf16; issue 28 saw 0.2 points of training accuracy where it is native;
# in fp32 1.6066091 against 1.6066090, 7e-8, and 2e-7 after 6 epochs), so identity could no longer promise its numbers.
ONLY_EAGER_PRECISIONS = {"fp16": "precision=fp16 (one loss scale per seed)",
                         "bf16": "precision=bf16 (a seed's numbers would depend on the seeds trained beside it)"}


def _precision(cfg: AblateConfig, device: str) -> str:
    """The precision a run trains in: `auto` is bf16 where it is native (`auto_precision`), but fp32 for a vectorized
    group, which bf16 would tie to its group (ONLY_EAGER_PRECISIONS)."""
    if cfg.precision != "auto":
        return cfg.precision
    return "fp32" if cfg.train.strategy == "vectorized" else auto_precision(device)


def _tf32(device: str) -> tuple[tuple[str, bool], ...]:
    if device != "cuda":
        return ()
    import torch

    return tuple(zip(TF32_SWITCHES, (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)))


def _strategy(cfg: AblateConfig, device: str, precision: str) -> tuple[str, Optional[str]]:
    """The strategy and, where `auto` could not take what is fastest here, why."""
    asked, model = cfg.train.strategy, cfg.model
    only_eager = ONLY_EAGER_PRECISIONS.get(precision)
    if only_eager is None and "vectorized" in (asked, AUTO_STRATEGY[device]):
        from ablate.data.catalog import input_spec
        from ablate.networks.network import create_network

        only_eager = create_network(model, *input_spec(cfg.data)).not_vectorizable()  # your network: tried on the CPU
    if only_eager is None and model.transfer != "scratch":
        only_eager = f"model.transfer={model.transfer}"
    if asked == "vectorized" and only_eager:
        raise ConfigError(f"train.strategy=vectorized is not allowed with {only_eager}; use train.strategy=eager or auto"
                          + (", or precision=fp32" if precision == "bf16" else ""))
    if asked != "auto":
        return asked, None
    fastest = AUTO_STRATEGY[device]
    if fastest != "eager" and only_eager:
        return "eager", f"train.strategy=auto trains eagerly: {only_eager} cannot train {fastest}"
    return fastest, None


def requested(cfg: AblateConfig) -> Resolved:
    """Device, precision and strategy as the config asks for them, `auto` kept: the plan of jobs that run on other
    machines, each of which resolves on its own (`resolve`)."""
    return Resolved(cfg.device, cfg.precision, cfg.train.strategy)


def resolve(cfg: AblateConfig) -> Resolved:
    """Device, precision and strategy of a config as this machine will train it; raises ConfigError for settings
    the device cannot take."""
    device = resolve_device(cfg.device)
    precision = _precision(cfg, device)
    if precision == "fp16" and device != "cuda":
        raise ConfigError("precision=fp16 needs a CUDA GPU; on the CPU use precision=fp32 or precision=bf16")
    strategy, note = _strategy(cfg, device, precision)
    return Resolved(device, precision, strategy, _tf32(device), note)
