"""The kept benchmark runs end to end on a tiny subset and ends with the JSON line it promises."""

from __future__ import annotations

import importlib.util
import json
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import pytest

BENCH = Path(__file__).parents[1] / "bench" / "bench.py"


def load_bench():  # noqa: ANN201 - a module object
    spec = importlib.util.spec_from_file_location("bench", BENCH)
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
    bench.main(["--train-size", "256", "--test-size", "200", "--device", "cpu", *options])
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


def test_the_paired_simulation_keeps_alpha_and_shows_the_power_correlated_seeds_give(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("paired_sim", BENCH.with_name("paired_sim.py"))
    sim = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sim)
    monkeypatch.setattr(sim, "REPEATS", 4000)
    (paired_null, welch_null), (paired_power, welch_power) = sim.rejection_rates(5, 0.8, 0.0), sim.rejection_rates(5, 0.8, 1.0)
    assert abs(paired_null - 0.05) < 0.012 and welch_null < 0.02  # Welch's ignores the pairing: far below α
    assert paired_power > 2 * welch_power
