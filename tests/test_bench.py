"""The kept benchmark runs end to end on a tiny subset and ends with the JSON line it promises."""

from __future__ import annotations

import importlib.util
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import pytest

from ablate.config import ModelConfig
from ablate.networks.network import create_network
from ablate.study import estimate

BENCH = Path(__file__).parents[1] / "bench" / "bench.py"
TINY_CEILING = ["--ceiling-size", "64", "--ceiling-seconds", "0.001"]


def load_bench(name: str = "bench"):  # noqa: ANN201 - a module object
    """A module of bench/ as `python bench/bench.py` imports it (its folder first on the path)."""
    if str(BENCH.parent) not in sys.path:
        sys.path.insert(0, str(BENCH.parent))
    spec = importlib.util.spec_from_file_location(name, BENCH.with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("options", "strategy"), [([], "eager"), (["--strategy", "vectorized", "--seeds", "0", "1"], "vectorized")],
                         ids=["auto", "vectorized"])
def test_bench_compares_both_loops_on_the_same_subset_and_ends_with_json(
        options: list[str], strategy: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    bench = load_bench()
    took: dict[str, list[float]] = {"textbook_run": [], "ablate_runs": []}  # this test's own clock on each loop
    for name, seconds in took.items():
        def clocked(*args: Any, plain: Callable[..., Any] = getattr(bench, name), seconds: list[float] = seconds) -> Any:
            started = time.perf_counter()
            value = plain(*args)
            seconds.append(time.perf_counter() - started)
            return value
        monkeypatch.setattr(bench, name, clocked)
    bench.main(["--train-size", "256", "--test-size", "200", "--device", "cpu", *TINY_CEILING, *options])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    summary = json.loads(last)
    for key in ("device", "textbook_s_per_epoch", "ablate_s_per_epoch", "speedup", "textbook_acc", "ablate_acc"):
        assert key in summary
    assert summary["device"] == "cpu" and summary["train_size"] == 256 and summary["test_size"] == 200
    assert summary["strategy"] == strategy  # auto is eager on the CPU
    runs, epochs, repeats = len(summary["textbook_accs"]), summary["epochs"], summary["repeats"]
    assert len(took["textbook_run"]) == runs * repeats and len(took["ablate_runs"]) == repeats
    textbook = statistics.median(sum(took["textbook_run"][r * runs:(r + 1) * runs]) / (runs * epochs) for r in range(repeats))
    ablate = statistics.median(seconds / (len(summary["seeds"]) * epochs) for seconds in took["ablate_runs"])
    assert summary["textbook_s_per_epoch"] == pytest.approx(textbook, rel=0.05, abs=0.002)
    assert summary["ablate_s_per_epoch"] == pytest.approx(ablate, rel=0.05, abs=0.002)
    assert summary["speedup"] == pytest.approx(textbook / ablate, rel=0.1)
    for key in ("textbook_acc", "ablate_acc"):  # 256 images, 4 steps: above chance (0.1) on the 200 test images
        assert 0.15 < summary[key] <= 1
    # the ceiling: the best measurement at the engine's precision; the engine's FLOPs per epoch from `ablate inspect`'s count
    assert summary["ceiling_gflops"] == max(summary["ceiling"][summary["precision"]].values()) > 0
    assert summary["flops_per_epoch"] == create_network(ModelConfig(), (1, 28, 28), 10).describe().flops * (3 * 256 + 200)
    assert summary["engine_gflops"] == pytest.approx(summary["flops_per_epoch"] / summary["ablate_s_per_epoch"] / 1e9, rel=0.01)
    assert summary["fraction_of_ceiling"] == pytest.approx(summary["engine_gflops"] / summary["ceiling_gflops"], rel=0.01)


def test_the_ceiling_is_the_baseline_convolutions_and_a_matmul_each_a_positive_finite_gflops() -> None:
    measured = load_bench("ceiling").measure({"fp32": 32, "bf16": 32}, seconds=0.001)
    expected = ["matmul 32", "conv1 1x28x28 forward", "conv1 1x28x28 backward", "conv2 32x14x14 forward", "conv2 32x14x14 backward"]
    for precision in ("fp32", "bf16"):
        assert list(measured[precision]) == expected
        assert all(math.isfinite(value) and value > 0 for value in measured[precision].values())


def test_the_scaling_table_fits_the_model_and_remembers_it_for_the_dry_run(monkeypatch: pytest.MonkeyPatch,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Studies whose runs each take their FLOPs at 20 GFLOP/s (their metrics.json's wall_seconds) and whose time is
    exactly 3 s + 1.5 s per run + those give back the three constants."""
    bench = load_bench()
    studies = bench.studies

    def run_study(overrides: list[str], study: str, options: Any, workdir: Path) -> tuple[float, pd.DataFrame]:
        runs = studies.plan.build(overrides).runs
        seconds = [estimate.run_flops(run.variant.config) / 20e9 for run in runs]
        return 3.0 + sum(1.5 + s for s in seconds), pd.DataFrame({
            "variant": [run.variant.variant.name for run in runs], "wall_seconds": seconds, "train_seconds": 0.1,
            "device": "cpu", "precision": "fp32", "strategy": "eager"})

    monkeypatch.setattr(studies, "run_study", run_study)
    monkeypatch.setattr(sys, "argv", ["bench.py", "--scaling"])
    bench.main(["--scaling", "--train-size", "64", "--test-size", "32", "--device", "cpu"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [(row["variants"], row["seeds"], row["train_images"]) for row in summary["rows"]] == [
        (1, 1, 64), (1, 2, 64), (1, 4, 64), (3, 1, 64), (13, 1, 64), (1, 1, 128), (1, 1, 256)]
    assert (summary["startup_s"], summary["run_overhead_s"], summary["gflops"]) == pytest.approx((3.0, 1.5, 20.0), rel=1e-3)
    remembered = estimate.recall("cpu", "fp32", "eager")
    assert remembered is not None and remembered.gflops == pytest.approx(20.0, rel=1e-3)
    assert remembered.measured_by.startswith("python bench/bench.py --scaling")


def test_a_studys_noisy_start_up_never_sets_the_throughput() -> None:
    """The throughput is the runs' FLOPs over their own seconds: studies whose start-ups differ by seconds (other work
    on the machine) still give it exactly, where one fit of the studies' wall times took the noise for FLOPs (on
    these rows 182 GFLOP/s)."""
    rows = [{"runs": runs, "tflop": tflop, "run_s": tflop * 1e3 / 70, "wall_s": startup + runs * 0.5 + tflop * 1e3 / 70}
            for runs, tflop, startup in ((1, 0.06, 14.0), (2, 0.12, 9.0), (4, 0.24, 16.0), (3, 0.2, 12.0), (13, 2.9, 4.0))]
    speed = load_bench().studies.fit(rows, "test")
    assert speed.gflops == pytest.approx(70.0)
    assert 4.0 <= speed.startup_s <= 16.0 and speed.run_overhead_s >= 0


def test_the_paired_simulation_keeps_alpha_and_shows_the_power_correlated_seeds_give(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("paired_sim", BENCH.with_name("paired_sim.py"))
    sim = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sim)
    monkeypatch.setattr(sim, "REPEATS", 4000)
    (paired_null, welch_null), (paired_power, welch_power) = sim.rejection_rates(5, 0.8, 0.0), sim.rejection_rates(5, 0.8, 1.0)
    assert abs(paired_null - 0.05) < 0.012 and welch_null < 0.02  # Welch's ignores the pairing: far below α
    assert paired_power > 2 * welch_power
