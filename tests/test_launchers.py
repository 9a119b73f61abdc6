"""The same study through Hydra's launchers: the same run folders and the same numbers as the basic one."""

from __future__ import annotations

from pathlib import Path

import pytest

from ablate import results
from conftest import TINY, run_ablate

STUDY = ["+sweep=head", "seeds=[0,1]", *TINY]


def numbers(root: Path) -> dict[str, tuple]:
    """Each finished run's path under runs/ and its metrics that training decides."""
    found = {}
    for path in sorted(root.glob("runs/head/*/seed=*")):
        record = results.read_metrics(path)
        found[path.relative_to(root / "runs").as_posix()] = (record["status"], record["test_acc"], record["test_loss"], record["train_loss"])
    return found


def same_numbers(mine: dict[str, tuple], theirs: dict[str, tuple]) -> bool:
    """Same runs, same status and accuracy; losses equal up to float summation order (joblib runs its workers
    with fewer threads, which reorders oneDNN's sums: the 7th significant digit of a loss may differ)."""
    return mine.keys() == theirs.keys() and all(
        mine[k][:2] == theirs[k][:2] and mine[k][2:] == pytest.approx(theirs[k][2:], rel=1e-6) for k in mine)


@pytest.mark.parametrize("launcher", ["parallel", "slurm_local"])
def test_a_launcher_gives_the_same_runs_and_numbers_as_the_basic_launcher(tmp_path: Path, launcher: str) -> None:
    basic, other = tmp_path / "basic", tmp_path / launcher
    basic.mkdir(), other.mkdir()
    assert run_ablate("run", *STUDY, cwd=basic).returncode == 0
    result = run_ablate("run", *STUDY, f"hydra/launcher={launcher}", cwd=other)
    assert result.returncode == 0, result.stderr
    assert len(numbers(basic)) == 4 and same_numbers(numbers(other), numbers(basic))
    stamps = sorted(p.stat().st_mtime_ns for p in other.glob("runs/head/*/seed=*/metrics.json"))
    again = run_ablate("run", *STUDY, f"hydra/launcher={launcher}", cwd=other)  # resume: nothing is trained again
    assert again.returncode == 0 and "4 ok" in again.stdout
    assert sorted(p.stat().st_mtime_ns for p in other.glob("runs/head/*/seed=*/metrics.json")) == stamps
