"""Damage to what ablate wrote, and faults while it writes: a report killed at any file, damaged run folders,
folders whose record disagrees with their name, a full disk, unreadable files (issue 28)."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import run_ablate
from test_report import write

from ablate.config import ModelConfig
from ablate.store import files, results


# Smaller still than conftest's TINY: these tests train many seeds, and only their files matter.
TINY = ["data=synthetic", "data.train_size=64", "data.test_size=32", "data.image_size=8", "train.epochs=1", "device=cpu"]


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
    assert len(at_kill) == 12 and new.keys() == old.keys()  # 10 files of the study (runs.csv, summary-full.tex too), then index.md and index.html
    assert all(new[name] != old[name] for name in ("known/summary.md", "known/forest.png", "index.md"))
    for state in at_kill:
        assert state.keys() == old.keys()
        study = {name: data for name, data in state.items() if name.startswith("known/")}
        assert study in ({n: old[n] for n in study}, {n: new[n] for n in study})  # the study's report: old or new, never a mix
        assert all(state[name] in (old[name], new[name]) for name in ("index.md", "index.html"))
    assert at_kill[0] == old and at_kill[-1]["known/summary.md"] == new["known/summary.md"]
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # nothing staged is left behind


def cut(folder: Path) -> None:
    (folder / "metrics.json").write_bytes((folder / "metrics.json").read_bytes()[:300])


def edited(**values: object):
    def edit(folder: Path) -> None:
        record = json.loads((folder / "metrics.json").read_text())
        (folder / "metrics.json").write_text(json.dumps(record | values))
    return edit


# damage done to seed N's metrics.json -> what --dry-run, `ablate run` and `ablate report` say of that seed, and
# whether `run` moves its files aside (to seed=N/damaged-<time>/) and trains it again
DAMAGE = [
    ("cut to 300 bytes", cut, "metrics.json is not whole JSON", True),
    ("emptied", lambda f: (f / "metrics.json").write_text(""), "metrics.json is empty", True),
    ("garbled", lambda f: (f / "metrics.json").write_bytes(b"\xff\xfe\x00garbage"), "metrics.json is not whole JSON ('utf-8' codec", True),
    ("{}", lambda f: (f / "metrics.json").write_text("{}"), "metrics.json holds no run record", True),
    ("a metric not a number", edited(test_acc="high"), "metrics.json: test_acc is 'high', not a number", False),
]


def test_a_damaged_run_is_named_by_dry_run_run_and_report_and_set_aside_never_deleted(tmp_path: Path) -> None:
    seeds = f"seeds=[{','.join(str(n) for n in range(len(DAMAGE) + 1))}]"
    assert run_ablate("run", seeds, *TINY, "study=d", cwd=tmp_path).returncode == 0
    folders = [tmp_path / f"runs/d/baseline/seed={seed}" for seed in range(len(DAMAGE))]
    for (_, damage, _, _), folder in zip(DAMAGE, folders):
        damage(folder)
    before = {folder: (folder / "metrics.json").read_bytes() for folder in folders}
    dry = run_ablate("run", seeds, *TINY, "study=d", "--dry-run", cwd=tmp_path)
    report = run_ablate("report", "runs", cwd=tmp_path)
    assert dry.returncode == 0 and report.returncode == 0, dry.stderr + report.stdout + report.stderr
    assert "to train (0 in progress, 4 damaged)" in dry.stdout
    run = run_ablate("run", seeds, *TINY, "study=d", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    for (kind, _, said, retrained), folder in zip(DAMAGE, folders):
        seed = folder.name.removeprefix("seed=")
        assert f"seed {seed}: damaged ({said}" in report.stdout, kind
        aside = list(folder.glob("damaged-*"))
        if retrained:
            assert f"damaged   {folder.relative_to(tmp_path)}: {said}" in dry.stdout, kind
            assert f"seed {seed}: damaged: {folder.relative_to(tmp_path)}/{said}" in run.stdout + run.stderr, kind
            assert len(aside) == 1 and (aside[0] / "metrics.json").read_bytes() == before[folder], kind
            assert {p.name for p in aside[0].iterdir()} == {"config.yaml", "history.csv", "metrics.json", "model.pt"}, kind
            assert json.loads((folder / "metrics.json").read_text())["status"] == "ok", kind
        else:  # a whole record: a finished run, never trained again; the report names it and goes on
            assert not aside and (folder / "metrics.json").read_bytes() == before[folder], kind
    assert "n = 5" not in report.stdout and "Study d" in report.stdout


@pytest.mark.parametrize("name, code", [("checkpoint.pt", errno.ENOSPC), ("model.pt", errno.EACCES), ("metrics.json", errno.ENOSPC)])
def test_a_write_the_machine_refuses_is_one_line_and_no_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, code: int) -> None:
    replace = os.replace

    def refused(source: str, target: str) -> None:
        if Path(target).name == name:
            raise OSError(code, os.strerror(code))
        replace(source, target)

    with monkeypatch.context() as patched:
        patched.setattr(os, "replace", refused)
        full = run_ablate("run", "seeds=[0]", *TINY, "train.epochs=2", "study=full", cwd=tmp_path)
    folder = Path("runs/full/baseline/seed=0")
    assert full.returncode == 2 and "Traceback" not in full.stderr + full.stdout
    assert full.stderr.strip().splitlines()[-1] == (
        f"ablate: error: {folder}: cannot write {name} ({os.strerror(code)}); that run is not stored and trains again "
        "when the same command runs once this is fixed (the study's finished runs are kept)")
    assert not (tmp_path / folder / "metrics.json").exists()  # no result: not "failed", to be trained again
    again = run_ablate("run", "seeds=[0]", *TINY, "train.epochs=2", "study=full", cwd=tmp_path)
    assert again.returncode == 0 and "1 ok" in again.stdout


def test_a_folder_whose_config_disagrees_with_its_name_is_refused_naming_both(tmp_path: Path) -> None:
    small_study(tmp_path / "runs")
    copied = tmp_path / "runs/known/model.depth=9/seed=0"
    shutil.copytree(tmp_path / "runs/known/baseline/seed=0", copied)
    for name in ("metrics.json", "config.yaml"):  # its records say depth 9 too, but not its config's model.depth
        (copied / name).write_text((copied / name).read_text().replace("baseline", "model.depth=9"))
    said = (f"{Path('runs/known/model.depth=9/seed=0')}: the folder of variant 'model.depth=9' holds a run trained as another "
            "variant (model.depth=9 in its name, 2 in its config.yaml)")
    report = run_ablate("report", "runs", cwd=tmp_path)
    assert report.returncode == 2 and said in report.stderr
    run = run_ablate("run", "seeds=[0]", *TINY, "study=known", "--dry-run", cwd=tmp_path)
    assert run.returncode == 2 and said in run.stderr


def test_every_os_and_parse_error_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small_study(tmp_path / "runs")
    folder = tmp_path / "runs/known/baseline"
    (folder / "seed=0/history.csv").write_bytes(b"\xff\xfe garbled")
    (folder / "seed=1/history.csv").write_text((folder / "seed=1/history.csv").read_text()[:-40])  # cut in its last row
    (folder / "seed=2/model.pt").write_bytes(b"PK\x03\x04 cut off")
    report = run_ablate("report", "runs", cwd=tmp_path)
    assert report.returncode == 0 and "Traceback" not in report.stderr
    assert "seed 0: history.csv cannot be read ('utf-8' codec can't decode byte 0xff" in report.stdout
    assert "seed 1: history.csv is cut off or garbled" in report.stdout
    assert "seed 2: model.pt is cut off or garbled (File is not a zip file); ablate viz cannot read it" in report.stdout
    viz = run_ablate("viz", "runs/known/baseline/seed=2", cwd=tmp_path)
    assert viz.returncode == 2 and viz.stderr.startswith("ablate: error: runs/known/baseline/seed=2/model.pt cannot be read (")
    (tmp_path / "runs/known/model.width=64/seed=0/config.yaml").write_text("model:\n  depth: [2\n")  # cut off
    report = run_ablate("report", "runs", cwd=tmp_path)
    assert report.returncode == 0 and "seed 0: damaged (config.yaml cannot be read (while parsing a flow sequence" in report.stdout
    run = run_ablate("run", "seeds=[0]", *TINY, "study=known", cwd=tmp_path)
    assert run.returncode == 2 and run.stderr.startswith(
        "ablate: error: runs/known/model.width=64/seed=0/config.yaml cannot be read (while parsing")
    long = run_ablate("run", *TINY, f"study={'s' * 300}", cwd=tmp_path)
    assert long.returncode == 2 and "its folder name is 300 bytes, but the filesystem of" in long.stderr
    assert not (tmp_path / "runs/.hydra").exists()

    def read_only(*args: object, **kwargs: object) -> str:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), "reports")

    for making in ("mkdtemp", "mkstemp"):  # a staging folder starts with its lock file (mkstemp)
        monkeypatch.setattr(tempfile, making, read_only)
    report = run_ablate("report", "runs", "--out", "reports", cwd=tmp_path)
    assert report.returncode == 2 and report.stderr.strip() == (
        "ablate: error: reports: cannot write known (Read-only file system); a report not written there is left as it was")


def test_dry_run_works_on_a_runs_folder_it_cannot_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def read_only(runs_dir: object) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(results, "check_writable", read_only)
    dry = run_ablate("run", "seeds=[0,1,2]", *TINY, "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "note: runs_dir='runs': cannot write there (Read-only file system); ablate run would refuse it" in dry.stdout
    assert "3 run(s) planned, 0 finished, 3 to train" in dry.stdout
    assert run_ablate("run", "seeds=[0,1,2]", *TINY, cwd=tmp_path).returncode == 2


KILLED_BETWEEN_RENAMES = (
    "import os, signal, sys; from pathlib import Path; from ablate.store import files\n"
    "files._exchange = lambda first, second: False  # a kernel that cannot swap: two renames\n"
    "files.remove_dead_leftovers = lambda parent: None  # what the other killed report left stays for the next report\n"
    "renamed = os.rename\n"
    "def rename(source, target):\n"
    "    renamed(source, target)\n"
    "    os.kill(os.getpid(), signal.SIGKILL)  # after the first rename, before the second\n"
    "with files.staging_folder(Path(sys.argv[1])) as staged:\n"
    "    (staged / 'index.html').write_text('a new report')\n"
    "    os.rename = rename\n"
    "    files.replace_folder(staged, Path(sys.argv[1]))\n")


def test_what_killed_reports_leave_the_next_report_removes_or_puts_back_and_what_live_ones_hold_it_keeps(tmp_path: Path) -> None:
    small_study(tmp_path / "runs")
    out = tmp_path / "reports"
    killed = ("import os, signal, sys; from pathlib import Path; from ablate.store import files\n"
              "with files.staging_folder(Path(sys.argv[1])) as staged:\n"
              "    (staged / 'summary.md').write_text('half a report')\n"
              "    os.kill(os.getpid(), signal.SIGKILL)\n")
    with files.staging_folder(out / "other") as alive:  # a report still being built (made first: it cleans up nothing)
        ended = subprocess.run([sys.executable, "-c", killed, str(out / "known")], capture_output=True, timeout=120)
        assert ended.returncode == -signal.SIGKILL
        assert len([p for p in out.iterdir() if p.name.startswith(".known.new-")]) == 2  # the folder and its lock file
        (out / "gone").mkdir()
        (out / "gone" / "index.html").write_text("the old report")
        ended = subprocess.run([sys.executable, "-c", KILLED_BETWEEN_RENAMES, str(out / "gone")], capture_output=True, timeout=120)
        assert ended.returncode == -signal.SIGKILL and not (out / "gone").exists()  # its old folder set aside as .gone.new-*.old
        (out / ".index.md.k1ll3d.tmp").write_text("half an index")  # as a killed write leaves it: no process holds it
        live = out / ".index.html.al1ve.tmp"
        live.write_text("being written")
        with open(live) as writing:
            fcntl.flock(writing, fcntl.LOCK_EX)  # as a live write holds it
            result = run_ablate("report", "runs", "--out", "reports", cwd=tmp_path)
            assert result.returncode == 0 and not {".new-", ".old", ".tmp"} & set((result.stdout + result.stderr).split("/"))
            assert "Reports of studies no longer in runs (kept; delete those you no longer want): reports/gone" in result.stdout
            assert sorted(p.name for p in out.glob(".*")) == sorted([alive.name, alive.name + ".lock", live.name])
        live.unlink()  # as its writer renames it
    assert (out / "known" / "summary.md").read_text() != "half a report"
    assert (out / "gone" / "index.html").read_text() == "the old report"  # put back: a kill leaves the old report or the new
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # nothing staged is left behind
