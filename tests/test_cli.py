"""`ablate run` and `ablate report` end to end, as a user runs them, in a temp folder."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest
from conftest import TINY, run_ablate
from PIL import Image

import ablate
from ablate.data import datasets
from ablate.study.resolve import auto_precision


def metrics_files(root: Path) -> list[Path]:
    return sorted(root.glob("runs/*/*/seed=*/metrics.json"))


def test_sweep_run_then_report_writes_every_file_and_a_rerun_trains_nothing(workdir: Path) -> None:
    first = run_ablate("run", "+sweep=batchnorm", "seeds=[0,1]", *TINY, cwd=workdir)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("baseline: model.batchnorm=false (the config's own values)")  # before training
    jobs = [line for line in (first.stdout + first.stderr).splitlines() if line.startswith("\t#")]  # the launcher's line per job
    assert jobs == [f"\t#0 : +sweep=batchnorm seeds=[0,1] {' '.join(TINY)}",
                    f"\t#1 : +sweep=batchnorm seeds=[0,1] {' '.join(TINY)} model.batchnorm=true"]  # no job spec
    files = metrics_files(workdir)
    assert [f.relative_to(workdir / "runs").as_posix() for f in files] == [
        "batchnorm/baseline/seed=0/metrics.json", "batchnorm/baseline/seed=1/metrics.json",
        "batchnorm/model.batchnorm=true/seed=0/metrics.json", "batchnorm/model.batchnorm=true/seed=1/metrics.json"]
    record = json.loads(files[2].read_text())
    assert record["status"] == "ok" and record["seed"] == 0 and record["factor"] == "model.batchnorm"
    assert record["params"] == 421_642 - 3136 * 128 + 64 * 4 * 4 * 128 + 2 * (32 + 64)  # 16x16 input: 4x4 maps; BN adds 2 per channel
    assert record["receptive_field"] == 10 and record["device"] == "cpu" and record["precision"] == auto_precision("cpu")
    for name in ("config.yaml", "history.csv", "model.pt"):
        assert (files[0].parent / name).is_file()

    stamps = [f.stat().st_mtime_ns for f in files]
    second = run_ablate("run", "+sweep=batchnorm", "seeds=[0,1]", *TINY, cwd=workdir)
    assert second.returncode == 0, second.stderr
    assert "2 finished run(s) skipped, 0 to train" in second.stdout + second.stderr
    assert [f.stat().st_mtime_ns for f in files] == stamps
    assert sorted(p.relative_to(workdir).as_posix() for p in workdir.glob("**/*") if p.is_dir() and "seed=" not in p.as_posix()) == [
        "runs", "runs/batchnorm", "runs/batchnorm/baseline", "runs/batchnorm/model.batchnorm=true"]  # nothing of Hydra's

    report = run_ablate("report", cwd=workdir)
    assert report.returncode == 0, report.stderr
    out = workdir / "reports" / "batchnorm"
    summary = pd.read_csv(out / "summary.csv")
    assert summary["variant"].tolist() == ["baseline", "model.batchnorm=true"]
    assert summary["n"].tolist() == [2, 2]
    assert "model.batchnorm=true" in (out / "summary.md").read_text() and "model.batchnorm=true" in report.stdout
    with Image.open(out / "accuracy.png") as image:
        assert image.format == "PNG" and image.size[0] > 400 and image.size[1] > 300


def test_single_variant_run_without_a_sweep(workdir: Path) -> None:
    result = run_ablate("run", "model.head=gap", "seeds=[3]", *TINY, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert [f.relative_to(workdir).as_posix() for f in metrics_files(workdir)] == ["runs/default/model.head=gap/seed=3/metrics.json"]
    assert [p.name for p in workdir.iterdir()] == ["runs"] and [p.name for p in (workdir / "runs").iterdir()] == ["default"]


def test_a_rerun_through_a_launcher_starts_no_job_for_a_variant_whose_runs_are_all_finished(workdir: Path) -> None:
    """A finished study sent again through joblib (or to a cluster) costs no job: the submitter names what it skips."""
    study = ["+sweep=head", "seeds=[0]", *TINY]
    assert run_ablate("run", *study, cwd=workdir).returncode == 0
    again = run_ablate("run", *study, "hydra/launcher=parallel", cwd=workdir)
    printed = again.stdout + again.stderr
    assert again.returncode == 0, printed
    assert "head/baseline: 1 finished run(s) skipped, 0 to train" in printed
    assert "head/model.head=gap: 1 finished run(s) skipped, 0 to train" in printed
    assert "Joblib" not in printed and "Study head: 2 ok" in printed  # joblib's launcher never started


def test_sweep_all_trains_thirteen_variants_with_one_shared_baseline(workdir: Path) -> None:
    result = run_ablate("run", "+sweep=all", "seeds=[0]", "study=everything", *TINY, cwd=workdir)
    assert result.returncode == 0, result.stderr
    variants = sorted(p.name for p in (workdir / "runs" / "everything").iterdir())
    assert len(variants) == 13 and variants.count("baseline") == 1
    assert "model.pool=strided" in variants and "model.head=gap" in variants and "model.depth=8" in variants


def test_version_names_the_release_and_its_free_name_on_pypi(workdir: Path) -> None:
    """`ablate --version` through the installed console script (a process: what a user types), the version and the
    distribution name pyproject.toml builds (`ablate` on PyPI is another project)."""
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    assert project["name"] == "ablate-cnn" and project["scripts"] == {"ablate": "ablate.cli:main"}
    shown = subprocess.run([Path(sys.executable).parent / "ablate", "--version"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == f"ablate {ablate.__version__} (ablate-cnn on PyPI)\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+", ablate.__version__)
    assert run_ablate("-V", cwd=workdir).stdout == shown.stdout


def test_a_report_and_a_repeated_plan_import_no_torch_and_read_no_image(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What makes everyday commands start at once: `ablate report` never imports torch, and a dry run of MNIST
    after the first reads no image (its check is remembered while the file is unchanged) and imports no torch (the
    machine's answers for `auto` are remembered too)."""
    assert run_ablate("run", "seeds=[0]", *TINY, cwd=workdir).returncode == 0
    program = "import sys; from ablate.cli import main; status = main(sys.argv[1:]); print('torch' in sys.modules); sys.exit(status)"
    report = subprocess.run([sys.executable, "-c", program, "report"], cwd=workdir, capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr
    assert report.stdout.splitlines()[-1] == "False" and (workdir / "reports/default/summary.md").is_file()
    first = run_ablate("run", "+sweep=depth", "--dry-run", cwd=workdir)
    assert first.returncode == 0, first.stderr
    monkeypatch.setattr(datasets, "load_dataset", lambda cfg: pytest.fail(f"read {cfg.name} again"))
    again = run_ablate("run", "+sweep=depth", "--dry-run", cwd=workdir)
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout and "12 run(s) planned, 0 finished, 12 to train" in again.stdout
    # A new process plans the same from what is remembered (the dataset check, the machine's devices), without torch.
    fresh = subprocess.run([sys.executable, "-c", program, "run", "+sweep=depth", "--dry-run"], cwd=workdir,
                           capture_output=True, text=True, timeout=300)
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stdout.splitlines()[-1] == "False" and fresh.stdout.splitlines()[:-1] == first.stdout.splitlines()


def test_a_dry_run_writes_nothing_where_it_is_typed(workdir: Path) -> None:
    """The plan is checked against the disk (runs_dir writable, file locks working) without making runs_dir."""
    result = run_ablate("run", "+sweep=depth", *TINY, "--dry-run", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "to train  runs/depth/baseline/seed=0" in result.stdout
    assert list(workdir.iterdir()) == []
