"""Benchmark: the textbook MNIST loop against ablate's engine, or a whole study through the CLI.

Default mode, in one process, same device, same model config and data: (a) torchvision's MNIST dataset
with ToTensor + Normalize, a shuffling DataLoader (batch 64) and Adam 1e-3, as in the seed's notebook;
(b) ablate's engine (`train_seeds`). Seconds per run-epoch are the wall time of a seed's whole training
(per-epoch test evaluation included, dataset files and start-up excluded) divided by its epochs.
`--study NAME` times `python -m ablate run +sweep=NAME ...` end to end instead, start-up included.
The last line printed is one JSON object with the figures.

    python bench/bench.py                                   # full MNIST, 1 epoch, seed 0
    python bench/bench.py --train-size 10000 --seeds 0 1 2 --repeats 3
    python bench/bench.py --study all --seeds 0 --epochs 1 --train-size 2000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd
import torch
import torch.nn.functional as F
from scipy import stats
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms

from ablate.config import STRATEGIES, AblateConfig, DataConfig, ModelConfig, TrainConfig
from ablate.data.datasets import MNIST_MEAN, MNIST_STD, load_dataset, subset_indices, write_mnist_idx
from ablate.networks.network import build_model
from ablate.recipe import EVAL_BATCH
from ablate.store import results
from ablate.study.resolve import resolve, resolve_device
from ablate.training.engine import train_seeds

BATCH, LR = 64, 1e-3  # the seed notebook's; the textbook loop evaluates in ablate's batches (recipe.EVAL_BATCH)


def textbook_split(root: Path, train: bool, size: int | None) -> torch.utils.data.Dataset:
    """torchvision's MNIST from `root` with ToTensor + Normalize, reduced to the same fixed subset ablate takes."""
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))])
    split = datasets.MNIST(str(root), train=train, download=False, transform=transform)
    if size is None:
        return split
    return Subset(split, subset_indices(len(split), size, DataConfig.subset_seed).tolist())


def textbook_run(root: Path, seed: int, epochs: int, train_size: int | None, test_size: int | None, device: torch.device) -> float:
    """The seed's loop: DataLoader(batch 64, shuffle) over torchvision MNIST, Adam 1e-3; test accuracy at the end."""
    torch.manual_seed(seed)
    model = build_model(ModelConfig(), (1, 28, 28), 10).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    train_loader = DataLoader(textbook_split(root, True, train_size), batch_size=BATCH, shuffle=True)
    test_loader = DataLoader(textbook_split(root, False, test_size), batch_size=EVAL_BATCH)
    for _ in range(epochs):
        model.train()
        for x, y in train_loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in test_loader:
                correct += (model(x.to(device)).argmax(1) == y.to(device)).sum().item()
    return correct / len(test_loader.dataset)


def ablate_runs(seeds: Sequence[int], epochs: int, train_size: int | None, test_size: int | None, device: torch.device,
                precision: str, strategy: str) -> tuple[list[float], str]:
    """ablate's engine on the same model, data and hyperparameters: per-seed test accuracies and the strategy it used."""
    data = load_dataset(DataConfig(name="mnist", train_size=train_size, test_size=test_size))
    train = TrainConfig(epochs=epochs, batch_size=BATCH, lr=LR, optimizer="adam", strategy=strategy)
    resolved = resolve(AblateConfig(train=train, device=device.type, precision=precision))
    outcomes = train_seeds(ModelConfig(), replace(train, strategy=resolved.strategy), data, list(seeds), device, precision, progress=False)
    failed = [f"seed {r.seed}: {r.error}" for r in outcomes if r.status != "ok"]
    if failed:
        raise RuntimeError("ablate's engine failed: " + "; ".join(failed))
    return [r.metrics["test_acc"] for r in outcomes], outcomes[0].strategy


def timed(work: Callable[[], Any]) -> tuple[float, Any]:
    """Wall seconds of `work()` and its value."""
    started = time.perf_counter()
    value = work()
    return time.perf_counter() - started, value


def cpu_timed(work: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall and CPU seconds of `work()` (this process, all threads) and its value.

    With one thread, CPU seconds barely change when other processes share the cores; wall seconds do.
    """
    started = time.process_time()
    seconds, value = timed(work)
    return seconds, time.process_time() - started, value


def welch_p(first: Sequence[float], second: Sequence[float]) -> float | None:
    """Welch's t-test p-value of two samples of accuracies, or None when either has fewer than two or no spread."""
    if min(len(first), len(second)) < 2 or statistics.pstdev([*first, *second]) == 0:
        return None
    return float(stats.ttest_ind(first, second, equal_var=False).pvalue)


def compare_loops(options: argparse.Namespace) -> dict[str, Any]:
    """Time the textbook loop and ablate's engine `repeats` times each, alternating; medians of seconds per run-epoch."""
    device = torch.device(resolve_device(options.device))
    textbook_seeds = options.seeds[: options.textbook_runs or len(options.seeds)]
    textbook_times, ablate_times, textbook_cpu, ablate_cpu = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="ablate-bench-") as root:
        write_mnist_idx(Path(root))
        load_dataset(DataConfig(name="mnist", train_size=options.train_size, test_size=options.test_size))  # start-up, not timed
        for repeat in range(options.repeats):
            seconds, cpu, textbook_accs = cpu_timed(lambda: [textbook_run(Path(root), s, options.epochs, options.train_size,
                                                                          options.test_size, device) for s in textbook_seeds])
            textbook_times.append(seconds / (len(textbook_seeds) * options.epochs))
            textbook_cpu.append(cpu / (len(textbook_seeds) * options.epochs))
            seconds, cpu, (ablate_accs, strategy) = cpu_timed(lambda: ablate_runs(options.seeds, options.epochs, options.train_size,
                                                                                  options.test_size, device, options.precision, options.strategy))
            ablate_times.append(seconds / (len(options.seeds) * options.epochs))
            ablate_cpu.append(cpu / (len(options.seeds) * options.epochs))
            print(f"repeat {repeat + 1}/{options.repeats}: textbook {textbook_times[-1]:.2f} s/epoch ({textbook_cpu[-1]:.2f} CPU s), "
                  f"ablate ({strategy}) {ablate_times[-1]:.2f} s/epoch ({ablate_cpu[-1]:.2f} CPU s)", flush=True)
    textbook_s, ablate_s = statistics.median(textbook_times), statistics.median(ablate_times)
    p = welch_p(textbook_accs, ablate_accs)
    print(f"textbook loop: {textbook_s:.2f} s per run-epoch, test accuracy {statistics.mean(textbook_accs):.4f} ({len(textbook_accs)} runs)")
    print(f"ablate engine: {ablate_s:.2f} s per run-epoch, test accuracy {statistics.mean(ablate_accs):.4f} ({len(ablate_accs)} runs, {strategy})")
    print(f"speedup: {textbook_s / ablate_s:.2f}x" + (f"; Welch p of the accuracies {p:.3f}" if p is not None else ""))
    return {
        "mode": "loop", "device": str(device), "threads": torch.get_num_threads(), "epochs": options.epochs,
        "train_size": options.train_size or 60_000, "test_size": options.test_size or 10_000, "seeds": list(options.seeds),
        "repeats": options.repeats, "precision": options.precision, "strategy": strategy,
        "textbook_s_per_epoch": round(textbook_s, 3), "ablate_s_per_epoch": round(ablate_s, 3),
        "speedup": round(textbook_s / ablate_s, 3),
        "textbook_acc": round(statistics.mean(textbook_accs), 5), "ablate_acc": round(statistics.mean(ablate_accs), 5),
        "textbook_accs": textbook_accs, "ablate_accs": ablate_accs, "welch_p": p,
        "textbook_s_per_epoch_all": [round(t, 3) for t in textbook_times], "ablate_s_per_epoch_all": [round(t, 3) for t in ablate_times],
        "textbook_cpu_s_per_epoch": round(statistics.median(textbook_cpu), 3), "ablate_cpu_s_per_epoch": round(statistics.median(ablate_cpu), 3),
    }


def recorded(runs: pd.DataFrame, column: str) -> str:
    """The distinct values the runs recorded in one metrics.json field, comma-separated."""
    return ",".join(sorted(set(runs[column].astype(str))))


def run_study(sweep: str, options: argparse.Namespace, strategy: str, workdir: Path) -> tuple[float, dict[str, list[float]], pd.DataFrame]:
    """`python -m ablate run +sweep=NAME ...` in `workdir`: wall seconds, test accuracies per variant, and the runs."""
    command = [sys.executable, "-m", "ablate", "run", f"+sweep={sweep}", f"study=bench-{sweep}",
               f"seeds=[{','.join(map(str, options.seeds))}]", f"train.epochs={options.epochs}", f"train.strategy={strategy}",
               f"device={options.device}", f"precision={options.precision}", f"runs_dir={workdir / 'runs'}"]
    command += [f"data.train_size={options.train_size}"] if options.train_size else []
    command += [f"data.test_size={options.test_size}"] if options.test_size else []
    print(" ".join(command), flush=True)
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **({"OMP_NUM_THREADS": str(options.threads)} if options.threads else {})}
    seconds, finished = timed(lambda: subprocess.run(command, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    if finished.returncode != 0:
        raise RuntimeError(f"the study failed ({finished.returncode}): {finished.stderr[-2000:]}")
    runs = results.load_runs(workdir / "runs" / f"bench-{sweep}")
    bad = runs[runs["status"] != "ok"]
    if len(bad):
        raise RuntimeError(f"{len(bad)} run(s) did not finish ok: {bad[['variant', 'seed', 'status']].to_dict('records')}")
    accuracies = {variant: group.sort_values("seed")["test_acc"].tolist() for variant, group in runs.groupby("variant", sort=False)}
    return seconds, accuracies, runs


def describe(values: Sequence[float]) -> str:
    """mean ± sample std in percent."""
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.2f} ± {100 * spread:.2f} %"


def time_study(options: argparse.Namespace) -> dict[str, Any]:
    """A whole study end to end through the CLI; with --reference-strategy, that strategy's study too, variant by variant."""
    with tempfile.TemporaryDirectory(prefix="ablate-bench-study-") as root:
        seconds, accuracies, runs = run_study(options.study, options, options.strategy, Path(root) / "fast")
        reference = (run_study(options.study, options, options.reference_strategy, Path(root) / "reference")
                     if options.reference_strategy else None)
    print(f"{options.study}: {len(accuracies)} variants, {len(runs)} runs, {seconds:.1f} s wall "
          f"({seconds / (len(runs) * options.epochs):.2f} s per run-epoch, start-up included), strategy {recorded(runs, 'strategy')}")
    summary: dict[str, Any] = {
        "mode": "study", "study": options.study, "device": recorded(runs, "device"), "precision": recorded(runs, "precision"),
        "epochs": options.epochs, "seeds": list(options.seeds), "train_size": options.train_size or 60_000,
        "strategy": recorded(runs, "strategy"), "variants": len(accuracies), "runs": len(runs), "study_wall_s": round(seconds, 2),
        "s_per_run_epoch": round(seconds / (len(runs) * options.epochs), 3),
        "mean_acc": {variant: round(statistics.mean(values), 5) for variant, values in accuracies.items()},
    }
    if reference is not None:
        ref_seconds, ref_accuracies, ref_runs = reference
        within = {}
        for variant, values in accuracies.items():
            theirs = ref_accuracies[variant]
            spread = statistics.stdev(theirs) if len(theirs) > 1 else 0.0
            within[variant] = abs(statistics.mean(values) - statistics.mean(theirs)) <= spread
            print(f"  {variant:22s} {describe(values)}   {options.reference_strategy}: {describe(theirs)}"
                  f"   {'within' if within[variant] else 'NOT within'} one std")
        summary.update(reference_strategy=recorded(ref_runs, "strategy"), reference_wall_s=round(ref_seconds, 2),
                       within_one_std=within, all_within_one_std=all(within.values()))
    else:
        for variant, values in accuracies.items():
            print(f"  {variant:22s} {describe(values)}")
    return summary


def parse(arguments: Sequence[str]) -> argparse.Namespace:
    """Command-line options of the benchmark."""
    parser = argparse.ArgumentParser(prog="bench.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=1, help="epochs per run (default 1)")
    parser.add_argument("--train-size", type=int, default=None, help="training images, a fixed subset (default: all 60,000)")
    parser.add_argument("--test-size", type=int, default=None, help="test images, a fixed subset (default: all 10,000)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds ablate trains (default: 0)")
    parser.add_argument("--textbook-runs", type=int, default=None, help="how many of those seeds the textbook loop trains (default: all)")
    parser.add_argument("--repeats", type=int, default=1, help="time each loop this many times, alternating; medians are reported")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads of both loops, or of the study (default: torch's, one per core)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="device of both loops (default auto)")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"], help="ablate's precision (default fp32, as the textbook loop)")
    parser.add_argument("--strategy", default="auto", choices=STRATEGIES, help="ablate's train.strategy (default auto)")
    parser.add_argument("--study", default=None, help="time this sweep (e.g. all) end to end through the CLI instead")
    parser.add_argument("--reference-strategy", default=None, choices=STRATEGIES, help="with --study: also run the study with this strategy and compare accuracies")
    return parser.parse_args(arguments)


def main(arguments: Sequence[str] | None = None) -> None:
    """Run the benchmark the options ask for and print its JSON summary as the last line."""
    options = parse(sys.argv[1:] if arguments is None else arguments)
    if options.threads:
        torch.set_num_threads(options.threads)
    summary = time_study(options) if options.study else compare_loops(options)
    summary["torch"] = torch.__version__
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
