"""Benchmark: the textbook MNIST loop against ablate's engine and this machine's ceiling, a whole study through the
CLI, or the scaling of a study's time.

Default mode, in one process, same device, same model config and data: (a) torchvision's MNIST dataset
with ToTensor + Normalize, a shuffling DataLoader (batch 64) and Adam 1e-3, as in the seed's notebook;
(b) ablate's engine (`train_seeds`) in `--precision` (auto: what `ablate run` trains with here). Seconds per
run-epoch are the wall time of a seed's whole training (per-epoch test evaluation included, dataset files and
start-up excluded) divided by its epochs. It also measures the machine's ceiling (bench/ceiling.py) and gives each
loop's achieved GFLOP/s (the network's forward FLOPs x (3 x training images + test images) per epoch, as
ablate/study/estimate.py counts them) as a fraction of it.
`--study NAME` times `python -m ablate run +sweep=NAME ...` end to end instead, start-up included; `--scaling`
times the studies of bench/studies.py's table and remembers the fitted model for `ablate run ... --dry-run`.
The last line printed is one JSON object with the figures.

    python bench/bench.py                                   # full MNIST, 1 epoch, seed 0
    python bench/bench.py --train-size 10000 --seeds 0 1 2 --repeats 3
    python bench/bench.py --study all --seeds 0 --epochs 1 --train-size 2000
    python bench/bench.py --scaling                         # 7 short studies, then the model of their time
"""

from __future__ import annotations

import argparse
import json
import statistics
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

import ceiling
import studies
from ablate.config import PRECISIONS, STRATEGIES, AblateConfig, DataConfig, ModelConfig, TrainConfig
from ablate.data.datasets import MNIST_MEAN, MNIST_STD, load_dataset, subset_indices, write_mnist_idx
from ablate.networks.network import build_model
from ablate.recipe import EVAL_BATCH
from ablate.study import estimate, machine
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


def cpu_timed(work: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall and CPU seconds of `work()` (this process, all threads) and its value.

    With one thread, CPU seconds barely change when other processes share the cores; wall seconds do.
    """
    started = time.process_time()
    seconds, value = studies.timed(work)
    return seconds, time.process_time() - started, value


def welch_p(first: Sequence[float], second: Sequence[float]) -> float | None:
    """Welch's t-test p-value of two samples of accuracies, or None when either has fewer than two or no spread."""
    if min(len(first), len(second)) < 2 or statistics.pstdev([*first, *second]) == 0:
        return None
    return float(stats.ttest_ind(first, second, equal_var=False).pvalue)


def compare_loops(options: argparse.Namespace) -> dict[str, Any]:
    """The machine's ceiling, then the textbook loop and ablate's engine `repeats` times each, alternating; medians of
    seconds per run-epoch, and the GFLOP/s each achieved as a fraction of the ceiling."""
    device = torch.device(resolve_device(options.device))
    precision = resolve(AblateConfig(train=TrainConfig(strategy=options.strategy), device=device.type, precision=options.precision)).precision
    measured = measure_ceiling(options) if device.type == "cpu" else {}
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
                                                                                  options.test_size, device, precision, options.strategy))
            ablate_times.append(seconds / (len(options.seeds) * options.epochs))
            ablate_cpu.append(cpu / (len(options.seeds) * options.epochs))
            print(f"repeat {repeat + 1}/{options.repeats}: textbook {textbook_times[-1]:.2f} s/epoch ({textbook_cpu[-1]:.2f} CPU s), "
                  f"ablate ({strategy}) {ablate_times[-1]:.2f} s/epoch ({ablate_cpu[-1]:.2f} CPU s)", flush=True)
    textbook_s, ablate_s = statistics.median(textbook_times), statistics.median(ablate_times)
    p = welch_p(textbook_accs, ablate_accs)
    print(f"textbook loop: {textbook_s:.2f} s per run-epoch, test accuracy {statistics.mean(textbook_accs):.4f} ({len(textbook_accs)} runs)")
    print(f"ablate engine: {ablate_s:.2f} s per run-epoch, test accuracy {statistics.mean(ablate_accs):.4f} ({len(ablate_accs)} runs, {strategy})")
    print(f"speedup: {textbook_s / ablate_s:.2f}x" + (f"; Welch p of the accuracies {p:.3f}" if p is not None else ""))
    limit = against_ceiling(options, measured, precision, textbook_s, ablate_s)
    return {
        "mode": "loop", "device": str(device), "threads": torch.get_num_threads(), "epochs": options.epochs,
        "train_size": options.train_size or 60_000, "test_size": options.test_size or 10_000, "seeds": list(options.seeds),
        "repeats": options.repeats, "precision": precision, "strategy": strategy,
        "textbook_s_per_epoch": round(textbook_s, 3), "ablate_s_per_epoch": round(ablate_s, 3),
        "speedup": round(textbook_s / ablate_s, 3),
        "textbook_acc": round(statistics.mean(textbook_accs), 5), "ablate_acc": round(statistics.mean(ablate_accs), 5),
        "textbook_accs": textbook_accs, "ablate_accs": ablate_accs, "welch_p": p,
        "textbook_s_per_epoch_all": [round(t, 3) for t in textbook_times], "ablate_s_per_epoch_all": [round(t, 3) for t in ablate_times],
        "textbook_cpu_s_per_epoch": round(statistics.median(textbook_cpu), 3), "ablate_cpu_s_per_epoch": round(statistics.median(ablate_cpu), 3),
        **limit,
    }


def measure_ceiling(options: argparse.Namespace) -> dict[str, dict[str, float]]:
    """The ceiling's measurements in fp32 and bf16 (bf16 matmul at most 512 wide where the CPU only emulates bf16:
    2048 would take seconds per product); printed."""
    emulated = not machine.cpu_has_native_bf16()
    sizes = {"fp32": options.ceiling_size, "bf16": min(options.ceiling_size, 512) if emulated else options.ceiling_size}
    measured = ceiling.measure(sizes, options.ceiling_seconds)
    print(ceiling.describe(measured) + (" (bf16 emulated: this CPU has no native bf16)" if emulated else ""), flush=True)
    return measured


def against_ceiling(options: argparse.Namespace, measured: dict[str, dict[str, float]], precision: str, textbook_s: float,
                    ablate_s: float) -> dict[str, Any]:
    """Each loop's achieved GFLOP/s and its fraction of the ceiling (the engine's at its precision, the textbook's at
    fp32), printed; None where no ceiling was measured (a GPU)."""
    config = AblateConfig(data=DataConfig(name="mnist", train_size=options.train_size, test_size=options.test_size),
                          train=TrainConfig(epochs=1))
    flops = estimate.run_flops(config)
    engine, textbook = flops / ablate_s / 1e9, flops / textbook_s / 1e9
    if precision not in measured:
        print(f"engine: {engine:.1f} GFLOP/s, textbook loop: {textbook:.1f} GFLOP/s; no ceiling measured on {options.device}")
        limit, fraction, textbook_fraction = None, None, None
    else:
        limit = max(measured[precision].values())
        fraction, textbook_fraction = engine / limit, textbook / max(measured["fp32"].values())
        print(f"engine: {engine:.1f} GFLOP/s in {precision}, {fraction:.3f} of the {precision} ceiling ({limit:.1f} GFLOP/s); "
              f"textbook loop: {textbook:.1f} GFLOP/s, {textbook_fraction:.3f} of the fp32 ceiling "
              f"({flops / 1e9:.1f} GFLOP per run-epoch: forward x 3 per training image, x 1 per test image)")
    return {"flops_per_epoch": flops, "engine_gflops": round(engine, 2), "textbook_gflops": round(textbook, 2),
            "ceiling_gflops": limit, "fraction_of_ceiling": None if fraction is None else round(fraction, 4),
            "textbook_fraction_of_ceiling": None if textbook_fraction is None else round(textbook_fraction, 4), "ceiling": measured}


def describe(values: Sequence[float]) -> str:
    """mean ± sample std in percent."""
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.2f} ± {100 * spread:.2f} %"


def sweep_study(options: argparse.Namespace, strategy: str, workdir: Path) -> tuple[float, dict[str, list[float]], pd.DataFrame]:
    """`python -m ablate run +sweep=NAME ...` with the options: wall seconds, test accuracies per variant, and the runs."""
    study = f"bench-{options.study}"
    overrides = [f"+sweep={options.study}", *studies.settings(options, study, options.seeds, strategy, workdir, options.train_size)]
    seconds, runs = studies.run_study(overrides, study, options, workdir)
    accuracies = {variant: group.sort_values("seed")["test_acc"].tolist() for variant, group in runs.groupby("variant", sort=False)}
    return seconds, accuracies, runs


def time_study(options: argparse.Namespace) -> dict[str, Any]:
    """A whole study end to end through the CLI; with --reference-strategy, that strategy's study too, variant by variant."""
    with tempfile.TemporaryDirectory(prefix="ablate-bench-study-") as root:
        seconds, accuracies, runs = sweep_study(options, options.strategy, Path(root) / "fast")
        reference = (sweep_study(options, options.reference_strategy, Path(root) / "reference")
                     if options.reference_strategy else None)
    print(f"{options.study}: {len(accuracies)} variants, {len(runs)} runs, {seconds:.1f} s wall "
          f"({seconds / (len(runs) * options.epochs):.2f} s per run-epoch, start-up included), strategy {studies.recorded(runs, 'strategy')}")
    summary: dict[str, Any] = {
        "mode": "study", "study": options.study, "device": studies.recorded(runs, "device"), "precision": studies.recorded(runs, "precision"),
        "epochs": options.epochs, "seeds": list(options.seeds), "train_size": options.train_size or 60_000,
        "strategy": studies.recorded(runs, "strategy"), "variants": len(accuracies), "runs": len(runs), "study_wall_s": round(seconds, 2),
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
        summary.update(reference_strategy=studies.recorded(ref_runs, "strategy"), reference_wall_s=round(ref_seconds, 2),
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
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="ablate's precision (default auto, as ablate run: bf16 where the CPU has it natively; the textbook loop is fp32)")
    parser.add_argument("--strategy", default="auto", choices=STRATEGIES, help="ablate's train.strategy (default auto)")
    parser.add_argument("--study", default=None, help="time this sweep (e.g. all) end to end through the CLI instead")
    parser.add_argument("--reference-strategy", default=None, choices=STRATEGIES, help="with --study: also run the study with this strategy and compare accuracies")
    parser.add_argument("--scaling", action="store_true",
                        help="time the scaling table's studies (1, 2, 4 seeds; 3 and 13 variants; 2x and 4x images) and remember the fitted model "
                             f"for --dry-run (default sizes {studies.SCALING_TRAIN_SIZE} training, {studies.SCALING_TEST_SIZE} test images)")
    parser.add_argument("--ceiling-size", type=int, default=2048, help="side of the ceiling's square matmul (default 2048)")
    parser.add_argument("--ceiling-seconds", type=float, default=0.5, help="least seconds of each ceiling measurement's timing blocks (default 0.5)")
    return parser.parse_args(arguments)


def main(arguments: Sequence[str] | None = None) -> None:
    """Run the benchmark the options ask for and print its JSON summary as the last line."""
    options = parse(sys.argv[1:] if arguments is None else arguments)
    if options.threads:
        torch.set_num_threads(options.threads)
    if options.scaling:
        with tempfile.TemporaryDirectory(prefix="ablate-bench-scaling-") as root:
            summary = studies.scaling(options, Path(root))
    else:
        summary = time_study(options) if options.study else compare_loops(options)
    summary["torch"] = torch.__version__
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
