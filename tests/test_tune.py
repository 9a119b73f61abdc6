"""+tune=NAME: every variant trains the grid at the tuning seeds (study <study>.tune), is trained at its own best
point (recomputed here from the stored runs), the dry run shows both, what would leak or mix is refused, and the
report shows each variant at its own best with the verdicts tuning changed."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Callable

import pandas as pd
import pytest
from conftest import TINY, run_ablate
from omegaconf import OmegaConf

from ablate.config import AblateConfig, DataConfig, ModelConfig, TrainConfig, TuneConfig
from ablate.store import results
from ablate.study.tune import best

GRID = "tune.grid={train.lr:[0.0003,0.03]}"
TUNED = [*TINY, "data.validation_size=64", "seeds=[0]", "study=t", "+tune=lr", GRID, "-m", "model.batchnorm=false,true"]


def test_the_best_point_has_the_best_mean_in_the_metrics_direction_and_waits_for_every_run() -> None:
    values = [[0.5, 0.7], [0.8, 0.3], [0.6, 0.65]]  # means 0.6, 0.55, 0.625
    assert best(values, "val_acc") == 2 and best(values, "val_loss") == 1
    assert best([[0.5], [0.5]], "val_acc") == 0  # the first of equal means
    assert best([[0.5], None], "val_acc") is None


def test_a_diverged_tuning_run_ends_tuning_and_its_point_is_never_chosen(workdir: Path) -> None:
    """A learning rate that blows up is a result of the grid, not an unfinished run: the study's report chooses the other
    point (a diverged seed scores the worst value), as tune.py's rule does, and draws the curve without it."""
    from ablate.study.tune import score

    assert score({"status": "diverged", "val_acc": 0.1}, "val_acc") == -float("inf")
    assert score({"status": "diverged", "val_loss": 2.3}, "val_loss") == float("inf")
    assert score({"status": "ok", "val_acc": 0.9}, "val_acc") == 0.9
    runs = workdir / "runs"
    for seed in (100, 101):
        stored(runs, "d.tune", "baseline", seed, 0.001, False, val_acc=0.95)
    stored(runs, "d.tune", "train.lr=0.01", 100, 0.01, False, val_acc=0.99)
    stored(runs, "d.tune", "train.lr=0.01", 101, 0.01, False, val_acc=0.11, status="diverged")
    for seed in range(3):
        stored(runs, "d", "baseline", seed, 0.001, False, test_acc=0.95 + seed / 1000)
    reported = run_ablate("report", "runs/d", cwd=workdir)
    assert reported.returncode == 0, reported.stderr
    table = pd.read_csv(workdir / "reports" / "d" / "tuning.csv")
    assert table[["train.lr", "chosen"]].values.tolist() == [[0.001, 1], [0.01, 0]]  # 0.99 of the other seed does not win
    assert (workdir / "reports" / "d" / "tuning.png").stat().st_size > 0


def test_each_variant_trains_the_grid_at_the_tuning_seeds_then_its_seeds_at_its_own_best(workdir: Path) -> None:
    listed = run_ablate("run", *TUNED, "--dry-run", cwd=workdir)
    assert listed.returncode == 0, listed.stderr
    assert "Tuning train.lr in [0.0003,0.03] at seeds [100,101] by mean val_acc, in study t.tune:" in listed.stdout
    assert "  model.batchnorm=true: 4 tuning run(s) (0 finished), then 1 final run(s) at its best, chosen after tuning" in listed.stdout
    assert "10 run(s) in all: 8 tuning, 2 final (the untuned study: 2)" in listed.stdout
    assert not (workdir / "runs").exists()

    trained = run_ablate("run", *TUNED, cwd=workdir)
    assert trained.returncode == 0, trained.stderr
    for variant, prefix in (("baseline", ""), ("model.batchnorm=true", "model.batchnorm=true,")):
        means = {}
        for lr in (0.0003, 0.03):  # neither is the baseline's 0.001: every tuning variant names its lr
            runs = [results.run_dir(workdir / "runs", "t.tune", f"{prefix}train.lr={lr}", seed) for seed in (100, 101)]
            records = [results.read_metrics(run) for run in runs]
            assert all(r["status"] == "ok" for r in records) and {results.read_config(run)["train.lr"] for run in runs} == {lr}
            means[lr] = statistics.fmean(r["val_acc"] for r in records)
        chosen = max(means, key=lambda lr: (means[lr], -lr))  # the first of equal means: the grid's order
        final = results.run_dir(workdir / "runs", "t", f"{prefix}train.lr={chosen}", 0)
        assert results.read_metrics(final)["status"] == "ok" and results.read_config(final)["train.lr"] == chosen
        assert f"  {variant}: 4 tuning run(s) (4 finished), then 1 final run(s) at its best train.lr={chosen}" in trained.stdout
    assert sorted(p.parent.name for p in (workdir / "runs" / "t").glob("*/seed=*")) == sorted(
        p.parent.name for p in (workdir / "runs" / "t").glob("*train.lr=*/seed=0"))  # no untuned run trained
    written = {path: path.stat().st_mtime_ns for path in (workdir / "runs").glob("**/metrics.json")}
    again = run_ablate("run", *TUNED, cwd=workdir)  # from the store alone: nothing trains again, the same choices
    assert again.returncode == 0, again.stderr
    assert {path: path.stat().st_mtime_ns for path in (workdir / "runs").glob("**/metrics.json")} == written
    chosen_lines = {line for line in trained.stdout.splitlines() if "at its best train.lr" in line}
    assert len(chosen_lines) == 2 and {line for line in again.stdout.splitlines() if "at its best" in line} == chosen_lines


@pytest.mark.parametrize(("change", "key", "allowed"), [
    (["data.validation_size=null"], "data.validation_size", "needs data.validation_size"),
    (["tune.seeds=[0,101]"], "tune.seeds", "seed(s) [0] are also the study's seeds"),
    (["-m", "train.lr=0.001,0.01"], "tune.grid.train.lr", "is a factor of this study"),
    (["++tune.grid={train.lrr:[0.1]}"], "tune.grid.train.lrr", "not a key of the config"),
])
def test_what_would_leak_or_mix_is_refused_before_anything_trains(workdir: Path, change: list[str], key: str, allowed: str) -> None:
    base = [*TINY, "data.validation_size=64", "seeds=[0]", "+tune=lr", GRID]
    refused = run_ablate("run", *base, *change, cwd=workdir)
    assert refused.returncode == 2 and key in refused.stderr and allowed in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and not (workdir / "runs").exists()


def stored(runs: Path, study: str, variant: str, seed: int, lr: float, batchnorm: bool, grid: tuple[float, ...] = (0.001, 0.01),
           **measured: object) -> None:
    """One finished run as the runner stores it, of a study tuned over train.lr in `grid` (an empty grid: untuned)."""
    cfg = AblateConfig(model=ModelConfig(batchnorm=batchnorm), train=TrainConfig(lr=lr), data=DataConfig(validation_size=100),
                       seeds=[seed], study=study, variant=variant, tune=TuneConfig(grid={"train.lr": list(grid)} if grid else {}))
    metrics = {"study": study, "variant": variant, "seed": seed, "status": "ok", "params": 1000, "device": "cpu",
               "precision": "fp32", "strategy": "eager", "train_seconds": 1.0, "test_loss": 0.1, "train_loss": 0.1, "error": None,
               **measured}  # status="diverged" among them: a run that blew up
    results.write_run(results.run_dir(runs, study, variant, seed), OmegaConf.to_yaml(OmegaConf.structured(cfg)), [], metrics)


def batchnorm_study(runs: Path) -> None:
    """BatchNorm tolerates the larger step: at the baseline's lr it makes no clear difference, at its own best (0.01,
    where the baseline's best stays 0.001) it is better."""
    tuning = {("baseline", 0.001): 0.95, ("train.lr=0.01", 0.01): 0.90,
              ("model.batchnorm=true", 0.001): 0.951, ("model.batchnorm=true,train.lr=0.01", 0.01): 0.97}
    for (variant, lr), acc in tuning.items():
        for seed, jitter in ((100, -0.001), (101, 0.001)):
            stored(runs, "bn.tune", variant, seed, lr, "batchnorm" in variant, val_acc=acc + jitter)
    for seed, (base, same, tuned) in enumerate([(0.950, 0.951, 0.972), (0.952, 0.950, 0.975), (0.949, 0.950, 0.971)]):
        stored(runs, "bn", "baseline", seed, 0.001, False, test_acc=base)
        stored(runs, "bn", "model.batchnorm=true", seed, 0.001, True, test_acc=same)
        stored(runs, "bn", "model.batchnorm=true,train.lr=0.01", seed, 0.01, True, test_acc=tuned)


def reported_once(tmp_path_factory: pytest.TempPathFactory, study: Callable[[Path], None]) -> tuple[Path, str]:
    """A stored study (written by `study` into runs/) reported once: its folder and the report's output, for the
    tests of a module that read its files."""
    workdir = tmp_path_factory.mktemp(study.__name__)
    study(workdir / "runs")
    reported = run_ablate("report", "runs/bn", cwd=workdir)
    assert reported.returncode == 0, reported.stderr
    return workdir, reported.stdout


@pytest.fixture(scope="module")
def batchnorm_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The BatchNorm study reported once."""
    return reported_once(tmp_path_factory, batchnorm_study)


def test_the_report_shows_each_variant_at_its_own_best_and_flags_the_verdict_that_tuning_changed(
        batchnorm_report: tuple[Path, str]) -> None:
    """Tuning.csv holds every variant x grid point; the second table the verdict that tuning changed."""
    workdir, stdout = batchnorm_report
    table = pd.read_csv(workdir / "reports" / "bn" / "tuning.csv")
    assert table[["variant", "train.lr", "n", "chosen"]].values.tolist() == [
        ["baseline", 0.001, 2, 1], ["baseline", 0.01, 2, 0], ["model.batchnorm=true", 0.001, 2, 0], ["model.batchnorm=true", 0.01, 2, 1]]
    assert table["val_acc_mean"].round(4).tolist() == [0.95, 0.90, 0.951, 0.97]
    untuned, best = stdout.split("## Each variant at its own best (test_acc)")
    assert "model.batchnorm=true,train.lr=0.01" not in untuned and "Effects on" not in untuned  # the baseline's settings only
    row = next(line for line in best.splitlines() if line.startswith("| model.batchnorm=true "))
    assert "train.lr=0.01" in row and "| better " in row and "no clear difference -> better" in row
    assert "`model.batchnorm=true`: its best point (train.lr=0.01) is at the edge of the grid; widen the grid" in best
    assert "## Each variant at its own best" in (workdir / "reports" / "bn" / "summary.md").read_text()


def test_both_latex_files_hold_the_table_at_each_variants_own_best_under_the_main_one_and_compile(
        batchnorm_report: tuple[Path, str]) -> None:
    """summary.tex: the paper table, then the one at each variant's own best (chosen values, the verdict changed);
    summary-full.tex: both with every column; each compiles with no overfull box."""
    from test_report import compile_without_an_overfull_box

    out = batchnorm_report[0] / "reports" / "bn"
    paper, full = (out / "summary.tex").read_text(), (out / "summary-full.tex").read_text()
    main, best = paper.split("% Each variant at its own best (+tune), test_acc.")
    assert "% This table: each variant at the baseline's settings" in main and main.count(r"\begin{tabular}{") == 1
    assert "lr=0.01" not in main  # the final runs at a chosen point are not the main table's
    row = next(line for line in best.splitlines() if line.startswith("batchnorm=true & "))
    assert row.startswith("batchnorm=true & lr=0.01 & ") and "better & " in row
    assert row.endswith(r"{@{}l@{}}no clear\\{}difference\\{}$\to$ better\end{tabular} \\")
    assert best.startswith(" The table above is each variant at the baseline's settings")
    assert "% `model.batchnorm=true`: its best point (train.lr=0.01) is at the edge of the grid" in best
    assert best.count(r"\begin{tabular}{") == 1 and "p Holm" not in best.split(r"\toprule")[1]
    full_main, full_best = full.split("% Each variant at its own best (+tune), test_acc.")
    assert full_main.count(r"\begin{tabular}{") == full_best.count(r"\begin{tabular}{") == 2
    assert "\nmodel.batchnorm=true & train.lr=0.01 & 3 & " in full_best and "& p Holm &" in full_best
    assert "& params" in full_best and r"no clear\\{}difference\\{}$\to$ better" in full_best
    compile_without_an_overfull_box(out)


def three_point_study(runs: Path) -> None:
    """A study tuned over train.lr in [0.001, 0.003, 0.01], with its untuned runs: the baseline's best is the middle
    point, BatchNorm's the grid's end."""
    grid = (0.001, 0.003, 0.01)
    tuning = {("baseline", 0.001): 0.95, ("train.lr=0.003", 0.003): 0.96, ("train.lr=0.01", 0.01): 0.90,
              ("model.batchnorm=true", 0.001): 0.95, ("model.batchnorm=true,train.lr=0.003", 0.003): 0.96,
              ("model.batchnorm=true,train.lr=0.01", 0.01): 0.97}
    for (variant, lr), acc in tuning.items():
        for seed, jitter in ((100, -0.002), (101, 0.002)):
            stored(runs, "bn.tune", variant, seed, lr, "batchnorm" in variant, grid, val_acc=acc + jitter)
    for seed, (base, tuned) in enumerate([(0.950, 0.972), (0.952, 0.975), (0.949, 0.971)]):
        stored(runs, "bn", "baseline", seed, 0.001, False, grid, test_acc=base - 0.01)  # the untuned study beside it
        stored(runs, "bn", "model.batchnorm=true", seed, 0.001, True, grid, test_acc=base - 0.005)
        stored(runs, "bn", "train.lr=0.003", seed, 0.003, False, grid, test_acc=base)
        stored(runs, "bn", "model.batchnorm=true,train.lr=0.01", seed, 0.01, True, grid, test_acc=tuned)


@pytest.fixture(scope="module")
def three_point_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The three-point study reported once."""
    return reported_once(tmp_path_factory, three_point_study)


def test_the_page_draws_the_tuning_curves_and_the_edge_note_names_only_a_choice_at_the_grids_end(
        three_point_report: tuple[Path, str]) -> None:
    workdir, stdout = three_point_report
    assert "`model.batchnorm=true`: its best point (train.lr=0.01) is at the edge of the grid; widen the grid" in stdout
    assert "`baseline`: its best point" not in stdout  # 0.003 lies inside [0.001, 0.01]
    report = workdir / "reports" / "bn"
    assert (report / "tuning.png").stat().st_size > 0 and "tuning.png" in stdout
    page = (report / "index.html").read_text()
    tuning = page[page.index('<section id="tuning">'):]
    tuning = tuning[:tuning.index("</section>")]
    assert "<svg" in tuning and "Tuning curves" in tuning and "train.lr (log scale)" in tuning
    assert "train.lr=0.01" in tuning and "its best point (train.lr=0.01) is at the edge of the grid" in tuning
    assert "`baseline`: its best point" not in tuning


def test_the_tuned_page_wraps_no_number_cuts_no_column_and_keeps_its_figures_text_inside(three_point_report: tuple[Path, str]) -> None:
    browser = pytest.importorskip("browser")
    if browser.CHROMIUM is None:
        pytest.skip("needs Debian's chromium (apt-get install chromium; .ci/run installs it)")
    from test_html_report import LAYOUT
    workdir = three_point_report[0]
    with browser.Browser(width=1280) as chromium:
        chromium.open((workdir / "reports" / "bn" / "index.html").as_uri())
        assert chromium.evaluate("document.querySelectorAll('#tuning figure svg').length") == 1
        assert chromium.evaluate(LAYOUT) == {"wrapped": [], "cut": [], "outside": []}
