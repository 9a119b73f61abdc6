"""Whole studies timed end to end through the CLI (`python -m ablate run ...` in a fresh folder, start-up included),
and the scaling table: how a study's wall time grows with seeds, variants and images, fitted to the model of
ablate/study/estimate.py (seconds = start-up + runs x per-run overhead + FLOPs / throughput), whose constants it
remembers for the next dry runs on this machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from ablate.store import results
from ablate.study import estimate, plan

# The scaling table's studies: (what it varies, the overrides that make it, seeds, training images as a multiple of
# --train-size). One variant is the baseline alone; pooling has 3 variants, all 13.
SCALING = (
    ("1 variant, 1 seed", [], [0], 1), ("1 variant, 2 seeds", [], [0, 1], 1), ("1 variant, 4 seeds", [], [0, 1, 2, 3], 1),
    ("3 variants, 1 seed", ["+sweep=pooling"], [0], 1), ("13 variants, 1 seed", ["+sweep=all"], [0], 1),
    ("1 variant, 1 seed, 2x images", [], [0], 2), ("1 variant, 1 seed, 4x images", [], [0], 4),
)
SCALING_TRAIN_SIZE, SCALING_TEST_SIZE = 2000, 1000  # defaults of --scaling: short studies, training still most of a run


def timed(work: Callable[[], Any]) -> tuple[float, Any]:
    """Wall seconds of `work()` and its value."""
    started = time.perf_counter()
    value = work()
    return time.perf_counter() - started, value


def recorded(runs: pd.DataFrame, column: str) -> str:
    """The distinct values the runs recorded in one metrics.json field, comma-separated."""
    return ",".join(sorted(set(runs[column].astype(str))))


def settings(options: argparse.Namespace, study: str, seeds: Sequence[int], strategy: str, workdir: Path,
             train_size: Optional[int]) -> list[str]:
    """The overrides every timed study shares: its name, seeds, epochs, device, precision, strategy, sizes, runs_dir."""
    return ([f"study={study}", f"seeds=[{','.join(map(str, seeds))}]", f"train.epochs={options.epochs}",
             f"train.strategy={strategy}", f"device={options.device}", f"precision={options.precision}",
             f"runs_dir={workdir / 'runs'}"] + ([f"data.train_size={train_size}"] if train_size else [])
            + ([f"data.test_size={options.test_size}"] if options.test_size else []))


def run_study(overrides: list[str], study: str, options: argparse.Namespace, workdir: Path) -> tuple[float, pd.DataFrame]:
    """`python -m ablate run OVERRIDES` in `workdir`: wall seconds and the runs, every one of them finished ok."""
    command = [sys.executable, "-m", "ablate", "run", *overrides]
    print(" ".join(command), flush=True)
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **({"OMP_NUM_THREADS": str(options.threads)} if options.threads else {})}
    seconds, finished = timed(lambda: subprocess.run(command, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    if finished.returncode != 0:
        raise RuntimeError(f"the study failed ({finished.returncode}): {finished.stderr[-2000:]}")
    runs = results.load_runs(workdir / "runs" / study)
    bad = runs[runs["status"] != "ok"]
    if len(bad):
        raise RuntimeError(f"{len(bad)} run(s) did not finish ok: {bad[['variant', 'seed', 'status']].to_dict('records')}")
    return seconds, runs


def fit(rows: list[dict[str, Any]], measured_by: str) -> estimate.Speed:
    """The model's constants: the throughput from the runs' own seconds (metrics.json's wall_seconds, each run's
    training and evaluation timed inside it, so no start-up's noise) over all the rows' FLOPs; start-up and per-run
    overhead from what each study took beyond its runs (least squares, none negative)."""
    gflops = sum(row["tflop"] for row in rows) * 1e3 / sum(row["run_s"] for row in rows)
    design = np.array([[1.0, row["runs"]] for row in rows])  # seconds per start-up, per run
    (startup, overhead), _ = nnls(design, np.array([row["wall_s"] - row["run_s"] for row in rows]))
    return estimate.Speed(round(float(startup), 3), round(float(overhead), 3), round(gflops, 2), measured_by)


def scaling(options: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Time the SCALING studies in `workdir`, fit the model, print the table, remember the constants; the summary."""
    train_size, rows, runs = options.train_size or SCALING_TRAIN_SIZE, [], pd.DataFrame()
    options.test_size = options.test_size or SCALING_TEST_SIZE
    for number, (label, varied, seeds, images) in enumerate(SCALING):
        study = f"scaling-{number}"
        overrides = [*varied, *settings(options, study, seeds, options.strategy, workdir, train_size * images)]
        work = [estimate.run_flops(run.variant.config) for run in plan.build(overrides).runs]
        wall, runs = run_study(overrides, study, options, workdir)
        rows.append({"study": label, "variants": runs["variant"].nunique(), "seeds": len(seeds), "runs": len(runs),
                     "train_images": train_size * images, "tflop": sum(work) / 1e12, "wall_s": wall,
                     "run_s": float(runs["wall_seconds"].sum()), "train_s": float(runs["train_seconds"].sum())})
    command = "python bench/bench.py " + " ".join(sys.argv[1:]) if sys.argv[1:] else "python bench/bench.py --scaling"
    speed = fit(rows, f"{command} ({time.strftime('%Y-%m-%d')})")
    for row in rows:
        row["model_s"] = speed.startup_s + row["runs"] * speed.run_overhead_s + row["tflop"] * 1e3 / speed.gflops
    resolved = {key: recorded(runs, key) for key in ("device", "precision", "strategy")}
    estimate.remember(speed, **resolved, threads=str(options.threads) if options.threads else None)
    table = pd.DataFrame(rows).round({"tflop": 4, "wall_s": 2, "run_s": 2, "train_s": 2, "model_s": 2})
    print(table.to_markdown(index=False))
    print(f"model: seconds = {speed.startup_s:.2f} + runs x {speed.run_overhead_s:.2f} + TFLOP x 1000 / {speed.gflops:.1f} GFLOP/s "
          f"({', '.join(f'{k} {v}' for k, v in resolved.items())}; {train_size} training and {options.test_size} test images, "
          f"{options.epochs} epoch(s)); remembered for --dry-run")
    return {"mode": "scaling", **resolved, "epochs": options.epochs, "train_size": train_size, "test_size": options.test_size,
            "rows": table.to_dict("records"), "startup_s": speed.startup_s, "run_overhead_s": speed.run_overhead_s, "gflops": speed.gflops}
