"""Small runs packed onto GPUs through Ray: a job's GPU share, `auto` from the network's estimated memory, and a real
Ray head declaring two fake GPUs on this CPU machine."""

from __future__ import annotations

import collections
from datetime import datetime
from pathlib import Path
from typing import Optional

import pytest
import torch
from conftest import TINY, run_ablate

from ablate import recipe
from ablate.store import results
from ablate.study import gpu_share
from ablate.study.plan import compose_config

GIB = 2**30


@pytest.mark.parametrize(("needed", "total", "expected"), [
    (GIB, None, 1.0),                # no GPU visible here to measure: a whole GPU
    (GIB, 80 * GIB, 1 / recipe.JOBS_PER_GPU),  # many would fit: at most JOBS_PER_GPU jobs per GPU
    (3 * GIB, 10 * GIB, 0.5),        # 0.7 x 10 GiB holds two jobs of 3 GiB
    (8 * GIB, 10 * GIB, 1.0),        # one job alone exceeds 0.7 x 10 GiB: still a whole GPU, never less
])
def test_a_jobs_share_is_the_most_jobs_whose_estimates_fit_the_gpus_memory(needed: int, total: Optional[int], expected: float) -> None:
    assert gpu_share.share(needed, total) == expected


@pytest.mark.parametrize(("settings", "gpus"), [
    (["device=auto"], 1 / recipe.JOBS_PER_GPU),   # MNIST's baseline: 294 MB by the estimate, four fit on a 16 GiB GPU
    (["device=cuda", "data=synthetic", "data.image_size=256", "data.channels=3", "data.train_size=20000"], 1.0),  # some 16 GB of images
    (["device=cuda", "hydra.launcher.ray.remote.num_gpus=0.5"], 0.5),  # a share given is Ray's, as given
    (["device=cpu"], 0.0),
])
def test_the_ray_presets_gpu_share_comes_from_the_baselines_memory_on_the_gpu_seen_here(
        monkeypatch: pytest.MonkeyPatch, settings: list[str], gpus: float) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(gpu_share, "total_memory", lambda: 16 * GIB)  # a 16 GiB GPU, faked: none is measured here
    composed = compose_config(["+sweep=all", "hydra/launcher=ray_tasks", *settings])
    assert composed.hydra.launcher.ray.remote.num_gpus == gpus


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The most spans (start, end) open at one instant."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])  # an end before a start at a tie
    open_now, most = 0, 0
    for _, step in events:
        open_now += step
        most = max(most, open_now)
    return most


@pytest.mark.slow  # a Ray daemon
@pytest.mark.xdist_group("ray")  # conftest's one Ray head, which declares the two fake GPUs
def test_a_studys_jobs_share_two_fake_gpus_at_the_share_asked_and_record_the_gpu_they_were_given(tmp_path: Path, ray_head: str) -> None:
    result = run_ablate("run", "+sweep=all", "seeds=[0]", *TINY, "hydra/launcher=ray_tasks",
                        f"hydra.launcher.ray.init.address={ray_head}",
                        "hydra.launcher.ray.remote.num_gpus=0.25", "hydra.launcher.ray.remote.num_cpus=0.25", cwd=tmp_path, process=True)
    assert result.returncode == 0, result.stderr
    spans = collections.defaultdict(list)
    folders = list(tmp_path.glob("runs/all/*/seed=0"))
    for folder in folders:
        record = results.read_metrics(folder)
        assert record["status"] == "ok" and record["device"] == "cpu"  # trained on the CPU, holding its share of a fake GPU
        started = datetime.fromisoformat(record["started_at"]).timestamp()
        spans[record["gpu_assigned"]].append((started, (folder / "metrics.json").stat().st_mtime))
    assert len(folders) == 13 and set(spans) == {"0", "1"}  # every job saw one GPU id, and both GPUs were used
    assert all(most_at_once(held) <= 4 for held in spans.values())  # never more than 1 / 0.25 jobs on a GPU at once
