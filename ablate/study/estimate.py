"""How long a plan's runs will take on this machine, before any trains (the dry run's `estimated time:` line), from
the measurements the machine remembers: `bench/bench.py --scaling` fits the three constants of this model on
studies it times and keeps them in ablate's cache, under the machine's key and what training resolved to:

    seconds = start-up + sum over the runs to train of (per-run overhead + FLOPs of the run / throughput)
    FLOPs of a run = epochs x forward FLOPs of one image x (3 x training images + evaluated images)

A training image costs its forward pass and a backward of twice its FLOPs (the gradients of the input and of the
weights); an evaluated one (test and validation, every epoch) its forward pass. Forward FLOPs are the network's own
count (`ablate inspect`: the layer plan for ablate's CNN, no torch).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Optional, Sequence

from ablate.config import AblateConfig
from ablate.data.catalog import image_counts, input_spec
from ablate.networks.network import create_network
from ablate.store import cache
from ablate.study import machine
from ablate.study.plan import RunSpec, VariantPlan

SPEED = "speed"  # the cache's kind for these measurements
BACKWARD = 2  # a training step's backward pass, in forward passes
MEASURE = "python bench/bench.py --scaling measures it (a few minutes; from a checkout: make bench BENCH=--scaling)"


@dataclass(frozen=True)
class Speed:
    """The model's constants as measured here: a study's start-up (s), each run's overhead outside its FLOPs (s), the
    engine's throughput (GFLOP/s), and the command that measured them."""

    startup_s: float
    run_overhead_s: float
    gflops: float
    measured_by: str


def speed_key(device: str, precision: str, strategy: str, threads: Optional[str] = None) -> str:
    """What a measurement holds for: this machine (study/machine.py's key), what training resolved to, and the
    threads torch is told to use (OMP_NUM_THREADS; unset, all the cores)."""
    threads = threads or os.environ.get("OMP_NUM_THREADS") or "all"
    return f"{machine.key()}/{device}/{precision}/{strategy}/threads={threads}"


def remember(speed: Speed, device: str, precision: str, strategy: str, threads: Optional[str] = None) -> None:
    """Keep a measurement for the next dry runs on this machine."""
    cache.remember(SPEED, speed_key(device, precision, strategy, threads), asdict(speed))


def recall(device: str, precision: str, strategy: str) -> Optional[Speed]:
    """The measurement remembered for training so here, or None."""
    found = cache.recall(SPEED, speed_key(device, precision, strategy))
    try:
        return Speed(**found) if isinstance(found, dict) else None
    except TypeError:  # written by another version of this record
        return None


def run_flops(config: AblateConfig) -> Optional[float]:
    """FLOPs of training one run of `config`, every epoch's evaluation included; None where the images are not counted
    before loading (a folder without data.train_size and data.test_size)."""
    counts = image_counts(config.data)
    if counts is None:
        return None
    train, evaluated = counts
    forward = create_network(config.model, *input_spec(config.data)).flops()
    return float(config.train.epochs * forward * ((1 + BACKWARD) * train + evaluated))


def run_seconds(speed: Speed, flops: float) -> float:
    """The model's seconds for one run of these FLOPs, start-up aside."""
    return speed.run_overhead_s + flops / (speed.gflops * 1e9)


def seconds(speed: Speed, flops: Sequence[float]) -> float:
    """The model's seconds for one study of runs of these FLOPs."""
    return speed.startup_s + sum(run_seconds(speed, work) for work in flops)


def in_words(total: float) -> str:
    """Seconds as `45 s`, `3 min 20 s` or `2 h 05 min`."""
    minutes, secs = divmod(round(total), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def estimate(runs: Sequence[RunSpec]) -> str:
    """The dry run's line: the estimated time of these runs (those to train), or why there is none and how to measure."""
    if not runs:
        return "estimated time: nothing to train"
    variants: dict[int, VariantPlan] = {id(run.variant): run.variant for run in runs}
    if any(variant.deferred for variant in variants.values()):
        return "estimated time: none, each job resolves auto on the machine it runs on"
    speeds, works = {}, {}
    for key, variant in variants.items():
        resolved = variant.resolved
        speeds[key] = recall(resolved.device, resolved.precision, resolved.strategy)
        if speeds[key] is None:
            threads = os.environ.get("OMP_NUM_THREADS") or "all"
            return (f"estimated time: none, nothing measured yet on this machine for device {resolved.device}, precision "
                    f"{resolved.precision}, strategy {resolved.strategy}, threads {threads}; {MEASURE}")
        works[key] = run_flops(variant.config)
        if works[key] is None:
            return (f"estimated time: none, data.name={variant.config.data.name} counts its images only when it loads "
                    "them; give data.train_size and data.test_size")
    first, keys = next(iter(speeds.values())), [id(run.variant) for run in runs]
    total = first.startup_s + sum(run_seconds(speeds[key], works[key]) for key in keys)
    flops = sum(works[key] for key in keys)
    return (f"estimated time: {in_words(total)} for {len(runs)} run(s) ({flops / 1e12:.3g} TFLOP at {first.gflops:.3g} GFLOP/s, "
            f"{first.run_overhead_s:.1f} s per run, {first.startup_s:.1f} s start-up; measured by {first.measured_by})")
