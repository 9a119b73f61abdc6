"""The kept benchmark runs end to end on a tiny subset and ends with the JSON line it promises."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

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
        options: list[str], strategy: str, capsys: pytest.CaptureFixture[str]) -> None:
    load_bench().main(["--train-size", "256", "--test-size", "200", "--device", "cpu", *options])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    summary = json.loads(last)
    for key in ("device", "textbook_s_per_epoch", "ablate_s_per_epoch", "speedup", "textbook_acc", "ablate_acc"):
        assert key in summary
    assert summary["device"] == "cpu" and summary["train_size"] == 256 and summary["test_size"] == 200
    assert summary["strategy"] == strategy  # auto is eager on the CPU
    assert summary["speedup"] == pytest.approx(summary["textbook_s_per_epoch"] / summary["ablate_s_per_epoch"], rel=0.01)
    for key in ("textbook_acc", "ablate_acc"):  # 256 images, 4 steps: above chance (0.1) on the 200 test images
        assert 0.15 < summary[key] <= 1
