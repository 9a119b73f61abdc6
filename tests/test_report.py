"""The report's statistics against independent scipy computations, on runs with known numbers."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import TINY, run_ablate
from omegaconf import OmegaConf
from PIL import Image
from scipy import stats

from ablate.config import AblateConfig, ModelConfig, TrainConfig
from ablate.report.summary import ReportError, write_reports
from ablate.report.summary import curves as summary_curves
from ablate.store import results

BASELINE = [0.980, 0.984, 0.982, 0.979, 0.983]
WIDER = [0.990, 0.991, 0.989, 0.992, 0.990]         # clearly better
SAME = [0.981, 0.983, 0.980, 0.984, 0.982]          # no clear difference
WORSE = [0.975, 0.973, 0.976, 0.972]                # clearly worse, seed 4 diverged
SEEDS = [0, 1, 2, 3, 4]


def write(runs: Path, variant: str, seed: int, acc: float | None, model: ModelConfig, status: str = "ok",
          train: TrainConfig | None = None, study: str = "known", strategy: str = "eager", params: int = 1000,
          extra: dict | None = None) -> None:
    """One run through the project's own results store, as the runner writes it (`extra`: more of metrics.json)."""
    factor, _, value = variant.partition("=") if variant != "baseline" else ("", "", "")
    cfg = AblateConfig(model=model, train=train or TrainConfig(epochs=2), seeds=[seed], study=study, variant=variant)
    metrics = {"study": study, "variant": variant, "factor": factor, "value": value, "seed": seed, "status": status,
               "params": params, "receptive_field": 10, "device": "cpu", "precision": "fp32", "strategy": strategy,
               "train_seconds": 1.0, "planned_seeds": SEEDS, "error": None if status == "ok" else "loss became nan",
               "finished_at": f"2026-01-01T00:00:{seed:02d}", **(extra or {})}
    history = []
    if acc is not None:
        metrics.update(test_acc=acc, test_loss=1 - acc, train_loss=1.1 - acc)
        history = [{"epoch": e, "train_loss": 2 - e * acc / 2, "train_acc": acc - 0.1 / e, "test_loss": 1 - acc,
                    "test_acc": acc - 0.05 / e, "seconds": 0.5} for e in (1, 2)]
    results.write_run(results.run_dir(runs, study, variant, seed), OmegaConf.to_yaml(OmegaConf.structured(cfg)), history, metrics)


@pytest.fixture
def known_study(tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    for seed, acc in zip(SEEDS, BASELINE):
        write(runs, "baseline", seed, acc, ModelConfig())
    for seed, acc in zip(SEEDS, WIDER):
        write(runs, "model.width=64", seed, acc, ModelConfig(width=64))
    for seed, acc in zip(SEEDS, SAME):
        write(runs, "model.pool=avg", seed, acc, ModelConfig(pool="avg"))
    for seed, acc in zip(SEEDS, WORSE):
        write(runs, "model.depth=5", seed, acc, ModelConfig(depth=5))
    write(runs, "model.depth=5", 4, None, ModelConfig(depth=5), status="diverged")
    write(runs, "model.head=gap", 0, 0.970, ModelConfig(head="gap"))  # one seed only
    return runs


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjustment, written out independently of the project's code."""
    order = np.argsort(pvalues)
    adjusted, running = [0.0] * len(pvalues), 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[index]))
        adjusted[index] = running
    return adjusted


def test_every_statistic_matches_scipy(known_study: Path, tmp_path: Path) -> None:
    write_reports([str(known_study)], str(tmp_path / "reports"))
    summary = pd.read_csv(tmp_path / "reports" / "known" / "summary.csv").set_index("variant")
    assert list(summary.index) == ["baseline", "model.depth=5", "model.width=64", "model.pool=avg", "model.head=gap"]

    groups = {"model.width=64": WIDER, "model.pool=avg": SAME, "model.depth=5": WORSE}
    welch = {v: stats.ttest_ind(x, BASELINE, equal_var=False) for v, x in groups.items()}
    # width and pool ran the baseline's seeds: paired; depth lost seed 4: Welch's two groups
    verdicts = {v: stats.ttest_rel(x, BASELINE) if len(x) == len(BASELINE) else welch[v] for v, x in groups.items()}
    adjusted = dict(zip(groups, holm([verdicts[v].pvalue for v in groups])))
    for variant, values in {"baseline": BASELINE, **groups}.items():
        row = summary.loc[variant]
        t = stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / np.sqrt(len(values))
        assert row["n"] == len(values)
        assert row["mean"] == pytest.approx(np.mean(values)) and row["std"] == pytest.approx(np.std(values, ddof=1))
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((np.mean(values) - t, np.mean(values) + t))
        if variant == "baseline":
            assert row["verdict"] == "baseline"
            continue
        interval = verdicts[variant].confidence_interval(1 - 0.05 * verdicts[variant].pvalue / adjusted[variant])  # Holm's
        assert row["test"] == ("paired" if len(values) == len(BASELINE) else "Welch")
        assert row["p_test"] == pytest.approx(verdicts[variant].pvalue)
        assert row["diff"] == pytest.approx(np.mean(values) - np.mean(BASELINE))
        assert (row["diff_ci_low"], row["diff_ci_high"]) == pytest.approx((interval.low, interval.high))
        assert row["p_welch"] == pytest.approx(welch[variant].pvalue)
        assert row["p_holm"] == pytest.approx(adjusted[variant])
        shared = SEEDS[: len(values)]
        assert row["p_paired"] == pytest.approx(stats.ttest_rel(values, [BASELINE[s] for s in shared]).pvalue)
        assert row["n_paired"] == len(shared)
    assert summary.loc["model.width=64", "verdict"] == "better"
    assert summary.loc["model.depth=5", "verdict"] == "worse"
    assert summary.loc["model.pool=avg", "verdict"] == "no clear difference"
    assert "seed 4: diverged" in summary.loc["model.depth=5", "problems"]


def test_every_interval_excludes_0_exactly_where_the_verdict_finds_a_difference(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    shifts = {8: 0.0, 16: 0.0025, 24: 0.0029, 40: 0.0041, 64: 0.009}  # Welch p 0.9, 0.040, 0.024, 0.005, <0.001
    for seed, acc in zip(SEEDS, BASELINE):
        write(runs, "baseline", seed, acc, ModelConfig())
    for width, shift in shifts.items():  # seeds apart from the baseline's: Welch verdicts, whose p the shifts set
        for seed, acc in zip(SEEDS, SAME):
            write(runs, f"model.width={width}", seed + 100, acc + shift, ModelConfig(width=width))
    write_reports([str(runs)], str(tmp_path / "reports"))
    summary = pd.read_csv(tmp_path / "reports" / "known" / "summary.csv").set_index("variant").drop("baseline")
    assert_intervals_match_verdicts(summary)
    assert summary.loc["model.width=24", "p_welch"] < 0.05 and summary.loc["model.width=24", "verdict"] == "no clear difference"
    assert summary.loc["model.width=40", "verdict"] == "better" and summary.loc["model.width=40", "ci_confidence"] < 0.99
    table = (tmp_path / "reports" / "known" / "summary.md").read_text()
    assert "Δ vs baseline [Holm-adjusted 95% CI]" in table and "g [Holm-adjusted 95% CI]" in table


def test_a_paired_verdicts_intervals_agree_with_it_too(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for seed, acc in zip(SEEDS, BASELINE):
        write(runs, "baseline", seed, acc, ModelConfig())
    for seed, acc in zip(SEEDS, SAME):  # the baseline's seeds: a paired verdict
        write(runs, "model.width=128", seed, acc + 0.004, ModelConfig(width=128))
    write_reports([str(runs)], str(tmp_path / "reports"))
    summary = pd.read_csv(tmp_path / "reports" / "known" / "summary.csv").set_index("variant").drop("baseline")
    assert list(summary["test"]) == ["paired"]
    assert_intervals_match_verdicts(summary)


def assert_intervals_match_verdicts(summary: pd.DataFrame) -> None:
    """Every row's Δ interval excludes 0 exactly where its verdict is better or worse; g's does too under Welch,
    and under a paired verdict its row says where g's (two-group) interval disagrees."""
    for variant, row in summary.iterrows():
        excludes_0 = row["diff_ci_low"] > 0 or row["diff_ci_high"] < 0
        assert excludes_0 == (row["verdict"] in ("better", "worse")), (variant, row["diff_ci_low"], row["diff_ci_high"], row["verdict"])
        g_excludes_0 = row["hedges_g_ci_low"] > 0 or row["hedges_g_ci_high"] < 0
        if row["test"] == "Welch":  # g's interval is the two-group one: it matches a Welch verdict ...
            assert g_excludes_0 == excludes_0
        else:  # ... and, under a paired verdict, is flagged on its row where the two disagree
            assert ("g's interval" in str(row["notes"])) == (g_excludes_0 != excludes_0), (variant, row["notes"])


def test_a_single_seed_gets_mean_and_n_but_no_std_ci_or_test_and_never_nan(known_study: Path, tmp_path: Path) -> None:
    write_reports([str(known_study)], str(tmp_path / "reports"))
    row = pd.read_csv(tmp_path / "reports" / "known" / "summary.csv").set_index("variant").loc["model.head=gap"]
    assert row["n"] == 1 and row["mean"] == pytest.approx(0.970)
    assert pd.isna(row["std"]) and pd.isna(row["ci_low"]) and pd.isna(row["p_welch"]) and row["verdict"] == "not tested"
    assert "missing seeds 1, 2, 3, 4" in row["problems"] and "one seed" in row["notes"]
    for name, row in (("summary.md", "| model.head=gap"), ("summary-full.tex", "\nmodel.head=gap &"), ("summary.tex", "\nhead=gap &")):
        text = (tmp_path / "reports" / "known" / name).read_text()  # the paper table names keys without their group
        assert "nan" not in text.lower() and row in text
    assert r"\toprule" in (tmp_path / "reports" / "known" / "summary.tex").read_text()


def test_runs_that_differ_in_more_than_their_factor_are_refused(known_study: Path, tmp_path: Path) -> None:
    write(known_study, "model.width=64", 5, 0.99, ModelConfig(width=64), train=TrainConfig(epochs=3))
    with pytest.raises(ReportError, match="differ in train.epochs"):
        write_reports([str(known_study)], str(tmp_path / "reports"))


def test_runs_pool_on_the_strategy_they_trained_with_and_a_study_never_mixes_strategies(known_study: Path, tmp_path: Path) -> None:
    eager = TrainConfig(epochs=2, strategy="eager", seeds_per_group=2)  # the others asked for auto, which is eager here
    write(known_study, "model.width=64", 5, 0.99, ModelConfig(width=64), train=eager)
    write_reports([str(known_study)], str(tmp_path / "reports"))
    write(known_study, "model.width=64", 6, 0.99, ModelConfig(width=64), train=TrainConfig(epochs=2, strategy="vectorized"),
          strategy="vectorized")
    with pytest.raises(ReportError, match="differ in train.strategy: eager -> vectorized"):
        write_reports([str(known_study)], str(tmp_path / "reports"))


def test_a_run_written_before_the_transfer_keys_existed_pools_with_new_ones(known_study: Path, tmp_path: Path) -> None:
    config = known_study / "known/model.width=64/seed=0/config.yaml"
    old = OmegaConf.load(config)
    for section, keys in {"model": ("arch", "transfer", "weights"), "data": ("classes",), "train": ("finetune_lr_decay",)}.items():
        for key in keys:
            del old[section][key]
    del old["pretrain"]
    config.write_text(OmegaConf.to_yaml(old))
    assert "arch" not in config.read_text()
    write_reports([str(known_study)], str(tmp_path / "reports"))
    assert pd.read_csv(tmp_path / "reports/known/summary.csv").set_index("variant").loc["model.width=64", "n"] == 5


def test_metric_and_format_options(known_study: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    result = run_ablate("report", str(known_study), "--out", str(out), "--metric", "test_loss", "--format", "csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = pd.read_csv(out / "known" / "summary.csv").set_index("variant")
    assert summary.loc["model.width=64", "verdict"] == "better"  # lower loss is better
    assert not (out / "known" / "summary.md").exists() and not (out / "known" / "summary.tex").exists()
    assert "known/: summary.csv, runs.csv, forest.png" in result.stdout + result.stderr and "summary.{" not in result.stdout + result.stderr
    bad = run_ablate("report", str(known_study), "--metric", "accuracy", cwd=tmp_path)
    assert bad.returncode == 2 and "test_acc" in bad.stderr and "Traceback" not in bad.stderr


def test_a_study_whose_median_difference_is_0_says_so_under_its_table(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for seed, acc in zip(SEEDS, BASELINE):
        write(runs, "baseline", seed, acc, ModelConfig())
        write(runs, "model.pool=avg", seed, acc, ModelConfig(pool="avg"))  # the same numbers: Δ = 0
    result = run_ablate("report", str(runs), "--out", str(tmp_path / "reports"), "--format", "md", "--format", "tex", cwd=tmp_path)
    assert "the median observed |Δ| is 0, which no number of seeds detects." in result.stdout and "needs –" not in result.stdout
    assert "known/: summary.md, summary.tex, summary-full.tex, runs.csv, forest.png" in result.stdout


def test_a_tiny_trained_study_gets_every_file_and_valid_pictures(workdir: Path) -> None:
    trained = run_ablate("run", "+sweep=head", "seeds=[0,1]", *TINY, cwd=workdir)
    assert trained.returncode == 0, trained.stderr
    report = run_ablate("report", cwd=workdir)
    assert report.returncode == 0, report.stderr
    out = workdir / "reports"
    assert "model.head=gap" in report.stdout and (out / "index.md").is_file()
    for name in ("summary.csv", "summary.md", "summary.tex"):
        assert (out / "head" / name).stat().st_size > 100
    for name in ("accuracy.png", "curves.png", "cost.png"):
        with Image.open(out / "head" / name) as image:
            image.verify()
            assert image.format == "PNG" and image.size[0] >= 600 and image.size[1] >= 400
        assert f"head/{name}" in (out / "index.md").read_text()
    assert not (out / "head" / "tuning.png").exists() and 'id="tuning"' not in (out / "head" / "index.html").read_text()  # untuned


def test_a_variant_with_no_finished_run_is_listed_as_missing(known_study: Path, tmp_path: Path) -> None:
    (known_study / "known" / "model.depth=3" / "seed=0").mkdir(parents=True)  # started, never finished
    write_reports([str(known_study)], str(tmp_path / "reports"))
    row = pd.read_csv(tmp_path / "reports" / "known" / "summary.csv").set_index("variant").loc["model.depth=3"]
    assert row["n"] == 0 and row["problems"] == "missing seeds 0, 1, 2, 3, 4" and row["verdict"] == "not tested"
    assert "nan" not in (tmp_path / "reports" / "known" / "summary.md").read_text().lower()


def test_equivalence_margin_prints_mde_g_tost_and_verdict_per_row(known_study: Path, tmp_path: Path) -> None:
    from scipy import optimize
    from by_hand import hedges_by_hand, mde_by_hand, paired_mde_by_hand, power, seeds_by_search, tost_by_hand, tost_paired_by_hand

    out = tmp_path / "reports"
    result = run_ablate("report", str(known_study), "--out", str(out), "--equivalence-margin", "1.0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for column in ("MDE", "g [Holm-adjusted 95% CI]", "TOST p (Holm)", "verdict"):
        assert column in result.stdout
    summary = pd.read_csv(out / "known" / "summary.csv").set_index("variant")
    groups = {"model.width=64": WIDER, "model.pool=avg": SAME, "model.depth=5": WORSE}
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith("model.")}
    for variant, values in groups.items():
        row, paired = summary.loc[variant], len(values) == len(BASELINE)  # the baseline's seeds: the paired design
        assert row["mde"] == pytest.approx((paired_mde_by_hand if paired else mde_by_hand)(values, BASELINE), rel=1e-4)
        assert (row["hedges_g"], row["hedges_g_ci_low"], row["hedges_g_ci_high"]) == pytest.approx(hedges_by_hand(values, BASELINE, row["ci_confidence"]), abs=2e-4)
        assert row["p_tost"] == pytest.approx((tost_paired_by_hand if paired else tost_by_hand)(values, BASELINE, 0.01))
        assert f"±{row['mde'] * 100:.2f} pt" in lines[variant] and f"{row['hedges_g']:+.2f}" in lines[variant]
    assert summary.loc["model.pool=avg", "verdict"] == "equivalent" and "equivalent (±1.00 pt)" in lines["model.pool=avg"]
    assert summary.loc["model.width=64", "verdict"] == "better" and "better" in lines["model.width=64"]
    assert summary.loc["model.depth=5", "verdict"] == "worse" and "worse" in lines["model.depth=5"]
    # The line under the table: the median over variants of the pooled std with the baseline, 5 seeds per variant
    # (the usual count; model.head=gap has one seed and no std).
    std = np.median([np.sqrt(((len(g) - 1) * np.var(g, ddof=1) + 4 * np.var(BASELINE, ddof=1)) / (len(g) + 3)) for g in (WIDER, SAME, WORSE)])
    detectable = optimize.brentq(lambda d: power(d, 5, 5) - 0.8, 1e-6, 4) * std * 100
    needed = seeds_by_search(0.01 / std, 1.0)
    assert f"With 5 seeds per variant this study can detect ±{detectable:.2f} pt" in result.stdout
    assert f"±1.00 pt needs {needed} seeds per variant" in result.stdout
    assert f"±{detectable:.2f} pt" in (out / "known" / "summary.md").read_text()
    with Image.open(out / "known" / "forest.png") as image:
        assert image.format == "PNG" and image.size[1] >= 400


def test_bootstrap_intervals_and_a_bad_margin(known_study: Path, tmp_path: Path) -> None:
    from by_hand import bca_by_enumeration

    out = tmp_path / "reports"
    write_reports([str(known_study)], str(out), ci="bootstrap")
    summary = pd.read_csv(out / "known" / "summary.csv").set_index("variant")
    low, high = bca_by_enumeration(BASELINE)
    row = summary.loc["baseline"]
    assert row["ci_method"] == "bootstrap"
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high), abs=0.1 * (high - low))
    assert "95% CI (BCa bootstrap)" in (out / "known" / "summary.md").read_text()
    bad = run_ablate("report", str(known_study), "--equivalence-margin", "0", cwd=tmp_path)
    assert bad.returncode == 2 and "--equivalence-margin must be a positive number" in bad.stderr and "Traceback" not in bad.stderr


def test_both_latex_tables_compile_with_pdflatex_without_an_overfull_box(known_study: Path, tmp_path: Path) -> None:
    for seed, acc in zip(SEEDS, SAME):  # long names, verdicts, parameter counts and differences of tens of points
        write(known_study, "model.kernel_size=7", seed, acc - 0.0005, ModelConfig(kernel_size=7), params=1_903_498)
        write(known_study, "model.batchnorm=true", seed, acc - 0.3 - 0.05 * seed, ModelConfig(batchnorm=True), params=1_903_498)
    write_reports([str(known_study)], str(tmp_path / "reports"), margin=0.1)
    out = tmp_path / "reports" / "known"
    paper, full = (out / "summary.tex").read_text(), (out / "summary-full.tex").read_text()
    assert r"\usepackage{booktabs}" in paper and "$-$0.76" in paper and not re.search(r"(?<![\w.$])-\d", paper + full)
    assert "inconclusive" in paper and r"\texttt" not in paper and len(full) > len(paper)
    compile_without_an_overfull_box(out)


def compile_without_an_overfull_box(out: Path) -> None:
    """Compile a report folder's summary.tex in a one-column article and summary-full.tex on a landscape page, as
    their first lines say; assert each compiles with no overfull box (a skip where pdflatex is not installed)."""
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex is not installed (Debian's texlive-latex-recommended, which .ci/run installs)")
    documents = {"paper": (r"\documentclass{article}\usepackage{booktabs}", r"\begin{table}\centering\input{summary.tex}\end{table}"),
                 "full": (r"\documentclass{article}\usepackage{booktabs,pdflscape}", r"\begin{landscape}\footnotesize\input{summary-full.tex}\end{landscape}")}
    for name, (preamble, body) in documents.items():
        (out / f"{name}.tex").write_text(f"{preamble}\n\\begin{{document}}\n{body}\n\\end{{document}}\n")
        compiled = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", f"{name}.tex"], cwd=out,
                                  capture_output=True, text=True, timeout=120)
        log = (out / f"{name}.log").read_text(errors="replace")
        assert compiled.returncode == 0 and (out / f"{name}.pdf").is_file(), log[-2000:]
        assert "Overfull \\hbox" not in log, log[log.index("Overfull"):][:600]


def test_the_summary_decides_far_outliers_and_the_curves_the_pictures_only_draw(known_study: Path, tmp_path: Path) -> None:
    collapsed = [0.31, 0.30, 0.33]  # a variant that learned nothing: far below the others, on both axes named off axis
    for seed, acc in enumerate(collapsed):
        write(known_study, "model.dropout=0.5", seed, acc, ModelConfig(dropout=0.5))
    write_reports([str(known_study)], str(tmp_path / "reports"))
    summary = pd.read_csv(tmp_path / "reports" / "known" / "summary.csv").set_index("variant")
    means = {v: np.mean(a) for v, a in {"baseline": BASELINE, "model.width=64": WIDER, "model.pool=avg": SAME,
                                        "model.depth=5": WORSE, "model.head=gap": [0.970], "model.dropout=0.5": collapsed}.items()}
    diffs = {v: m - means["baseline"] for v, m in means.items() if v not in ("baseline", "model.head=gap")}  # gap: 1 seed, untested

    def far(values: dict[str, float]) -> set[str]:  # 8 median absolute deviations, at least half a point
        centre = np.median(list(values.values()))
        spread = max(np.median([abs(v - centre) for v in values.values()]), 0.005)
        return {k for k, v in values.items() if abs(v - centre) > 8 * spread}

    assert far(means) == {"model.dropout=0.5"} == set(summary.index[summary["mean_off_axis"]])
    assert far(diffs) == {"model.dropout=0.5"} == set(summary.index[summary["diff_off_axis"]])
    runs = results.load_runs(known_study / "known")
    curves = summary_curves(results.load_histories(runs[runs["status"] == "ok"])).set_index(["variant", "epoch"])
    for variant, accs in (("baseline", BASELINE), ("model.depth=5", WORSE)):  # depth=5: its diverged seed has no curve
        for epoch in (1, 2):
            seen = [a - 0.05 / epoch for a in accs]  # write()'s test_acc of that epoch
            row = curves.loc[(variant, epoch)]
            assert row["n"] == len(accs)
            assert (row["acc_mean"], row["acc_std"]) == pytest.approx((np.mean(seen), np.std(seen, ddof=1)))
            assert row["loss_mean"] == pytest.approx(np.mean([2 - epoch * a / 2 for a in accs]))


def test_a_report_of_a_study_whose_runs_are_gone_is_kept_and_named(tmp_path: Path) -> None:
    for study in ("kept", "gone"):
        write(tmp_path / "runs", "baseline", 0, 0.98, ModelConfig(), study=study)
    assert run_ablate("report", cwd=tmp_path).returncode == 0
    shutil.rmtree(tmp_path / "runs/gone")  # the user deletes a study's runs
    again = run_ablate("report", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "Reports of studies no longer in runs (kept; delete those you no longer want): reports/gone" in again.stdout
    assert (tmp_path / "reports/gone/index.html").is_file() and "gone" not in (tmp_path / "reports/index.html").read_text()


def test_a_study_with_nothing_to_compare_is_reported_without_a_warning(tmp_path: Path) -> None:
    write(tmp_path / "runs", "baseline", 0, 0.98, ModelConfig(), study="alone")
    report = run_ablate("report", cwd=tmp_path)
    assert report.returncode == 0 and "Warning" not in report.stderr, report.stderr
    assert "nothing compared yet" in (tmp_path / "reports/alone/index.html").read_text()


def test_the_cost_charts_axis_spans_the_sizes_it_shows() -> None:
    """The demo's sizes, 421,642 and 442,218 parameters: a linear axis around them, not a log axis from 210k to 884k."""
    from ablate.report import plots

    summary = pd.DataFrame({"variant": ["baseline", "model.pool=avg", "model.pool=strided"], "factor": ["", "model.pool", "model.pool"],
                            "value": ["", "avg", "strided"], "n": [3, 3, 3], "mean": [0.97, 0.96, 0.965], "std": [0.003, 0.005, 0.002],
                            "trainable_params": [421_642, 421_642, 442_218]})
    low, high = plots.cost_chart(summary, "demo", "test_acc").axes[0].get_xlim()
    assert 400_000 < low < 421_642 and 442_218 < high < 465_000


def test_a_report_on_a_fresh_matplotlib_cache_prints_only_its_own_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for seed, acc in enumerate([0.90, 0.91, 0.92]):
        write(tmp_path / "runs", "baseline", seed, acc, ModelConfig())
        write(tmp_path / "runs", "model.width=64", seed, acc + 0.03, ModelConfig(width=64))
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "matplotlib"))  # empty: matplotlib builds its font cache
    result = run_ablate("report", "runs", "--out", "reports", cwd=tmp_path, process=True)
    assert result.returncode == 0 and (tmp_path / "matplotlib").is_dir()
    assert "font" not in (result.stdout + result.stderr).lower(), result.stdout + result.stderr
