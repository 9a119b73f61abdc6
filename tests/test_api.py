"""ablate from Python: a stored study as tidy tables (in a process without torch), the report's own summary recomputed
from them with scipy, runs.csv and `ablate report --format csv|json`, effects and seeds=auto decisions, bad paths,
and `ablate.run` training as the command does."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import TINY, run_ablate
from scipy import stats
from test_report import WIDER, known_study, write  # noqa: F401 - known_study is a fixture

import ablate
from ablate.config import ConfigError, ModelConfig
from ablate.report.runs import ReportError
from ablate.study import sequential


@pytest.fixture
def known(known_study: Path) -> Path:
    """test_report's study of known numbers: baseline, wider (better), avg pooling (the same), depth 5 with a diverged
    seed, head=gap with one seed."""
    return known_study / "known"


def test_load_reads_a_study_as_tidy_tables_without_importing_torch(known: Path, tmp_path: Path) -> None:
    program = ("import sys, ablate; study = ablate.load('runs/known'); "
               "print(len(study.runs), len(study.history), 'torch' in sys.modules, 'matplotlib' in sys.modules)")
    shown = subprocess.run([sys.executable, "-c", program], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split() == ["21", "40", "False", "False"]  # 20 ok runs of 2 epochs; the diverged one has none
    study = ablate.load(known)
    runs = study.runs
    assert list(runs.columns[:8]) == ["study", "variant", "seed", "status", "model.depth", "model.width", "model.pool", "model.head"]
    assert runs["model.width"].dtype == np.int64 and runs["model.depth"].dtype == np.int64
    assert list(runs["variant"].unique()) == ["baseline", "model.depth=5", "model.width=64", "model.pool=avg", "model.head=gap"]  # the report's order
    wider = runs[runs["variant"] == "model.width=64"]
    assert set(wider["model.width"]) == {64} and set(runs.loc[runs["variant"] == "baseline", "model.width"]) == {32}
    assert wider["test_acc"].tolist() == WIDER and wider["identity_hash"].nunique() == 1
    assert runs.loc[runs["status"] == "diverged", "seed"].tolist() == [4] and "train_seconds" in runs
    assert {"params", "device", "precision", "strategy", "run_dir"} <= set(runs.columns)
    history = study.history
    assert list(history.columns[:7]) == ["study", "variant", "seed", "status", "model.depth", "model.width", "model.pool"]
    assert history.groupby(["variant", "seed"]).size().eq(2).all() and "test_acc" in history
    assert "<Study 'known'" in repr(study) and list(ablate.load_all(known.parent)) == ["known"]


def test_the_summary_is_the_reports_and_scipy_recomputes_it_from_the_runs_table(known: Path, tmp_path: Path) -> None:
    study = ablate.load(known)
    summary = study.summary().set_index("variant")
    page = study.report(out=tmp_path / "reports")
    written = pd.read_csv(tmp_path / "reports/known/summary.csv").set_index("variant")
    numbers = ["n", "mean", "std", "ci_low", "ci_high", "diff", "diff_ci_low", "diff_ci_high", "p_welch", "p_holm"]
    pd.testing.assert_frame_equal(summary[numbers], written[numbers], check_dtype=False)
    assert page == tmp_path / "reports/known/index.html" and page.is_file()

    ok = study.runs[study.runs["status"] == "ok"]
    by_seed = {variant: dict(zip(group["seed"], group["test_acc"])) for variant, group in ok.groupby("variant") if len(group) > 1}
    groups = {variant: np.array(list(values.values())) for variant, values in by_seed.items()}
    assert summary.loc["model.head=gap", "n"] == 1 and pd.isna(summary.loc["model.head=gap", "std"])  # one seed: no std
    for variant, values in groups.items():
        row = summary.loc[variant]
        half = stats.t.ppf(0.975, len(values) - 1) * stats.sem(values)
        assert (row["n"], row["mean"], row["std"]) == pytest.approx((len(values), values.mean(), values.std(ddof=1)))
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((values.mean() - half, values.mean() + half))
        if variant != "baseline":
            welch = stats.ttest_ind(values, groups["baseline"], equal_var=False)
            paired = by_seed[variant].keys() == by_seed["baseline"].keys()  # the same seeds: the verdict's test is paired
            seeds = sorted(by_seed[variant])
            chosen = stats.ttest_rel([by_seed[variant][s] for s in seeds], [by_seed["baseline"][s] for s in seeds]) if paired else welch
            interval = chosen.confidence_interval(row["ci_confidence"])  # Holm-adjusted, as the verdict
            assert row["p_welch"] == pytest.approx(welch.pvalue) and row["test"] == ("paired" if paired else "Welch")
            assert (row["diff_ci_low"], row["diff_ci_high"]) == pytest.approx((interval.low, interval.high))
    margin = study.summary(metric="test_loss", equivalence_margin=0.5, ci="bootstrap")
    assert set(margin["ci_method"]) == {"bootstrap"} and margin["margin"].dropna().eq(0.5).all()
    with pytest.raises(ReportError, match="--ci 'normal' is not allowed; choose one of: t, bootstrap"):
        study.summary(ci="normal")


def test_every_report_writes_runs_csv_and_format_csv_or_json_prints_it(known: Path, tmp_path: Path) -> None:
    study = ablate.load(known)
    as_json = run_ablate("report", str(known), "--format", "json", cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    records = json.loads(as_json.stdout)
    assert [(r["variant"], r["seed"], r["status"]) for r in records] == list(study.runs[["variant", "seed", "status"]].itertuples(index=False, name=None))
    assert [r["test_acc"] for r in records] == [None if pd.isna(v) else v for v in study.runs["test_acc"]]  # a diverged run's: null
    assert "model.width=64" in as_json.stderr and not (tmp_path / "reports/known/summary.csv").exists()  # tables for people on stderr
    on_disk = pd.read_csv(tmp_path / "reports/known/runs.csv")
    assert list(on_disk.columns) == list(study.runs.columns) and on_disk["test_acc"].equals(study.runs["test_acc"])
    as_csv = run_ablate("report", str(known), "--format", "csv", "--format", "md", cwd=tmp_path)
    assert as_csv.returncode == 0, as_csv.stderr
    assert pd.read_csv(io.StringIO(as_csv.stdout))["identity_hash"].astype(str).tolist() == study.runs["identity_hash"].tolist()
    assert (tmp_path / "reports/known/summary.md").is_file()
    both = run_ablate("report", str(known), "--format", "csv", "--format", "json", cwd=tmp_path)
    assert both.returncode == 2 and "choose one" in both.stderr


def test_effects_of_a_two_level_design_and_decisions_of_seeds_auto(tmp_path: Path) -> None:
    runs, rng = tmp_path / "runs", np.random.default_rng(1)
    points = {"baseline": ModelConfig(), "model.width=64": ModelConfig(width=64), "model.pool=avg": ModelConfig(pool="avg"),
              "model.pool=avg,model.width=64": ModelConfig(pool="avg", width=64)}
    for variant, model in points.items():
        for seed in range(3):
            write(runs, variant, seed, 0.90 + 0.02 * (model.width == 64) + rng.normal(0, 0.002), model, study="grid")
    study = ablate.load(runs / "grid")
    effects = study.effects().set_index("term")
    ok = study.runs
    wide = ok.loc[ok["model.width"] == 64, "test_acc"].mean() - ok.loc[ok["model.width"] == 32, "test_acc"].mean()
    assert effects.loc["width", "effect"] == pytest.approx(wide * 100)  # in points; balanced design: difference of means
    assert effects.loc["width", "p_holm"] < 0.05 < effects.loc["pool", "p_holm"]
    with pytest.raises(ReportError, match="not trained with seeds=auto"):
        study.decisions()

    base = {s: 0.90 + rng.normal(0, 0.002) for s in range(6)}
    for seed, value in base.items():
        write(runs, "baseline", seed, value, ModelConfig(), study="auto", extra={"adaptive": True})
        write(runs, "model.width=64", seed, value + 0.05 + rng.normal(0, 0.001), ModelConfig(width=64), study="auto", extra={"adaptive": True})
    auto = ablate.load(runs / "auto")
    decided = auto.decisions().set_index("variant").loc["model.width=64"]
    differences = np.subtract(*[auto.runs.loc[auto.runs["variant"] == v, "test_acc"].to_numpy() for v in ("model.width=64", "baseline")])
    low, high = sequential.interval(differences, 0.05)
    assert decided["verdict"] == "better" and decided["n_paired"] == 6
    assert (decided["diff"], decided["diff_ci_low"], decided["diff_ci_high"]) == pytest.approx((differences.mean(), low, high))
    with pytest.raises(ReportError, match="not a two-level design"):
        auto.effects()


def test_a_bad_path_is_named_with_what_a_study_folder_holds(known: Path, tmp_path: Path) -> None:
    holds = r"a study folder holds <variant>/seed=<s>/metrics.json"
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'nowhere'} is not a folder; {holds}"):
        ablate.load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match=f"{tmp_path / 'empty'} holds no finished runs; {holds}"):
        ablate.load(tmp_path / "empty")
    write(tmp_path / "runs", "baseline", 0, 0.9, ModelConfig(), study="other")
    with pytest.raises(ReportError, match=r"runs folder holding 2 studies \(known, other\), not one study: .*ablate.load_all"):
        ablate.load(tmp_path / "runs")
    assert list(ablate.load_all(tmp_path / "runs")) == ["known", "other"]


def test_run_trains_as_the_command_does_and_returns_the_study(workdir: Path, capsys: pytest.CaptureFixture) -> None:
    argv = list(sys.argv)
    with pytest.raises(ConfigError, match="model.pool='median' is not allowed; choose one of: max, avg, strided"):
        ablate.run(["model.pool=median", *TINY])
    with pytest.raises(ConfigError, match="--dry-run: ablate.run takes overrides"):
        ablate.run(["--dry-run", *TINY])
    command = ["+sweep=pooling", "seeds=[0]", "study=py", *TINY]
    assert ablate.run(command, dry_run=True) is None
    assert "3 run(s) planned, 0 finished, 3 to train" in capsys.readouterr().out and not (workdir / "runs/py").exists()
    study = ablate.run(command)
    assert sorted(study.runs["variant"]) == ["baseline", "model.pool=avg", "model.pool=strided"]
    assert set(study.runs["status"]) == {"ok"} and "Study py: 3 ok" in capsys.readouterr().out
    assert sys.argv == argv and Path.cwd() == workdir
    again = ablate.run(command)  # nothing left to train; the same runs
    assert again.runs["identity_hash"].tolist() == study.runs["identity_hash"].tolist()


def test_the_demo_notebook_runs_on_a_tiny_study(workdir: Path) -> None:
    import nbclient
    import nbformat

    trained = run_ablate("run", "+sweep=pooling", "seeds=[0,1]", "study=demo", *TINY, cwd=workdir)
    assert trained.returncode == 0, trained.stderr
    notebook = nbformat.read(Path(__file__).parents[1] / "docs/notebooks/demo.ipynb", as_version=4)
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}).execute()
    shown = notebook.cells[1].outputs[0]["data"]
    assert "text/html" in shown and "model.pool=avg" in shown["text/html"] and "<svg" in shown["text/html"]
