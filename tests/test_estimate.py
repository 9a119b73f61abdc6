"""The dry run's estimated time: the stated model over the runs still to train, from the measurement this machine
remembers (each test has a cache folder of its own, never the user's), or a plain line saying there is none."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import TINY, run_ablate

from ablate.config import DataConfig, ModelConfig
from ablate.data.catalog import image_counts
from ablate.networks.network import create_network
from ablate.study import estimate

STUDY = ["+sweep=pooling", "seeds=[0,1]", *TINY]  # 3 variants x 2 seeds of 256 synthetic 16x16 images, 1 epoch


def estimated(stdout: str) -> str:
    """The dry run's last line, the estimate."""
    line = stdout.strip().splitlines()[-1]
    assert line.startswith("estimated time: ")
    return line


def test_without_a_measurement_the_dry_run_says_there_is_none_and_how_to_make_one(workdir: Path) -> None:
    result = run_ablate("run", *STUDY, "--dry-run", cwd=workdir)
    assert result.returncode == 0, result.stderr
    line = estimated(result.stdout)
    assert "none, nothing measured yet on this machine for device cpu" in line and "bench/bench.py --scaling" in line


def test_the_dry_run_estimates_the_runs_to_train_from_the_remembered_measurement(workdir: Path) -> None:
    assert run_ablate("run", "+sweep=pooling", "seeds=[0]", *TINY, cwd=workdir).returncode == 0  # seed 0 of each is done
    planned = run_ablate("run", *STUDY, "--dry-run", cwd=workdir)
    resolved = re.search(r"device (\w+), precision (\w+), strategy (\w+)", planned.stdout).groups()
    estimate.remember(estimate.Speed(startup_s=7.0, run_overhead_s=2.0, gflops=0.5, measured_by="a test"), *resolved)
    line = estimated(run_ablate("run", *STUDY, "--dry-run", cwd=workdir).stdout)
    # by hand: each variant's forward FLOPs as `ablate inspect` counts them, x (3 x 256 training + 128 test images)
    data = DataConfig(name="synthetic", train_size=256, test_size=128, image_size=16)
    assert image_counts(data) == (256, 128)
    flops = [create_network(ModelConfig(pool=pool), (1, 16, 16), 10).describe().flops * (3 * 256 + 128) for pool in ("max", "avg", "strided")]
    seconds = 7.0 + sum(2.0 + work / 0.5e9 for work in flops)  # seed 1 of the 3 variants
    assert line == (f"estimated time: {estimate.in_words(seconds)} for 3 run(s) ({sum(flops) / 1e12:.3g} TFLOP at 0.5 GFLOP/s, "
                    "2.0 s per run, 7.0 s start-up; measured by a test)")


def test_a_measurement_holds_only_for_what_it_measured(workdir: Path) -> None:
    estimate.remember(estimate.Speed(7.0, 2.0, 50.0, "a test"), "cpu", "fp16", "eager")  # nothing trains so on a CPU
    assert "none, nothing measured yet" in estimated(run_ablate("run", *STUDY, "--dry-run", cwd=workdir).stdout)


def test_time_in_words() -> None:
    assert [estimate.in_words(s) for s in (4.4, 59.6, 200, 7260)] == ["4 s", "1 min 00 s", "3 min 20 s", "2 h 01 min"]
