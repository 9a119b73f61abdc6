"""What this machine can train on, as torch says: whether a CUDA GPU is visible and whether the CPU computes bf16
natively. `auto` (ablate/study/resolve.py) is decided from these two answers.

Importing torch to ask takes 1.7 s, most of a dry run, so a process that has not imported torch (a plan, a dry run)
asks it once and remembers the answers in ablate's cache, keyed on everything they depend on: the host, the torch
build, the GPU driver and device files, the variables that hide devices, and the CPU's flags. A process that has
imported torch (every training job, which verifies its plan with its own answers) asks torch itself, and corrects
the remembered answers where they differ.
"""

from __future__ import annotations

import glob
import hashlib
import importlib.util
import json
import os
import platform
import sys
from functools import lru_cache
from pathlib import Path

from ablate.store import cache

FACTS = "machine"  # the cache's kind for these answers
# Variables that change which devices torch sees or which CPU kernels it picks.
DEVICE_VARIABLES = ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES",
                    "PYTORCH_NVML_BASED_CUDA_CHECK", "ATEN_CPU_CAPABILITY")


def cuda_available() -> bool:
    """Whether torch sees a CUDA (or ROCm) GPU here."""
    return _facts()["cuda"]


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX tiles), as torch's CPU dispatcher sees it."""
    return _facts()["native_bf16"]


def ask_torch() -> dict[str, bool]:
    """The answers from torch itself (imports it)."""
    import torch

    probes = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    return {"cuda": torch.cuda.is_available(), "native_bf16": any(probe is not None and probe() for probe in probes)}


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def key() -> str:
    """What the answers depend on, hashed; computed without importing torch (a few file reads)."""
    torch_spec = importlib.util.find_spec("torch")
    torch_dir = Path(torch_spec.origin).parent if torch_spec and torch_spec.origin else None
    cpu_flags = [line for line in _read("/proc/cpuinfo").splitlines() if line.startswith(("flags", "model name"))][:2]
    parts = {
        "host": platform.node(), "python": sys.executable,
        "torch": [str(torch_dir), _read(str(torch_dir / "version.py")) if torch_dir else ""],
        "driver": _read("/proc/driver/nvidia/version"), "devices": sorted(glob.glob("/dev/nvidia*") + glob.glob("/dev/kfd")),
        "variables": {name: os.environ.get(name) for name in DEVICE_VARIABLES}, "cpu": cpu_flags,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


@lru_cache(maxsize=1)
def _remembered(machine: str) -> dict[str, bool]:
    """The answers for one machine key: from the cache, else from torch (then remembered)."""
    found = cache.recall(FACTS, machine)
    if isinstance(found, dict) and set(found) == {"cuda", "native_bf16"}:
        return found
    answers = ask_torch()
    cache.remember(FACTS, machine, answers)
    return answers


def _facts() -> dict[str, bool]:
    machine = key()
    if "torch" not in sys.modules:
        return _remembered(machine)
    answers = ask_torch()  # torch is loaded anyway: its answer is free and current
    if cache.recall(FACTS, machine) != answers:  # so a remembered answer that went stale is corrected for the next plan
        cache.remember(FACTS, machine, answers)
    return answers
