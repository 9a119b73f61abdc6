"""Damage to what ablate wrote, and faults while it writes: a report killed at any file, damaged run folders,
folders whose record disagrees with their name, a full disk, unreadable files (issue 28)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_ablate
from test_report import write

from ablate.config import ModelConfig
from ablate.store import files


class Killed(BaseException):
    """What the write hook raises in place of a SIGKILL: nothing of ablate's catches it."""


def small_study(runs: Path) -> None:
    """A baseline and a variant, 3 seeds each, written through the store (nothing trained)."""
    for seed, acc in enumerate([0.90, 0.91, 0.92]):
        write(runs, "baseline", seed, acc, ModelConfig())
        write(runs, "model.width=64", seed, acc + 0.03, ModelConfig(width=64))


def snapshot(out: Path) -> dict[str, bytes]:
    """Every file a user sees under a reports folder (hidden staging folders left out), by relative path."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(out).parts)}


def test_a_report_killed_at_any_file_it_writes_leaves_the_old_report_or_the_new_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small_study(tmp_path / "runs")
    out = tmp_path / "reports"
    assert run_ablate("report", "runs", "--out", "reports", cwd=tmp_path).returncode == 0
    old, write_file, at_kill = snapshot(out), files.write_atomically, []

    def killed_here(path: Path, data: str | bytes) -> Path:
        """What a SIGKILL just before this write would leave: the folder as it is now."""
        at_kill.append(snapshot(out))
        return write_file(path, data)

    monkeypatch.setattr(files, "write_atomically", killed_here)
    assert run_ablate("report", "runs", "--out", "reports", "--metric", "test_loss", cwd=tmp_path).returncode == 0
    new = snapshot(out)
    assert len(at_kill) == 10 and new.keys() == old.keys()  # 8 files of the study, then index.md and index.html
    assert all(new[name] != old[name] for name in ("known/summary.md", "known/forest.png", "index.md"))
    for state in at_kill:
        assert state.keys() == old.keys()
        study = {name: data for name, data in state.items() if name.startswith("known/")}
        assert study in ({n: old[n] for n in study}, {n: new[n] for n in study})  # the study's report: old or new, never a mix
        assert all(state[name] in (old[name], new[name]) for name in ("index.md", "index.html"))
    assert at_kill[0] == old and at_kill[-1]["known/summary.md"] == new["known/summary.md"]
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # nothing staged is left behind
