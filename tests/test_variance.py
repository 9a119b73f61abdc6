"""+variance=sources: one variant per seed stream that can vary (it per seed, the others held) and one of them all,
listed by the dry run; its report's variance.csv recomputed here from runs.csv; streams that draw nothing left out
and said so; bad keys refused in one line."""

from __future__ import annotations

import html
import json
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import TINY, run_ablate
from scipy import stats

from ablate.report import plots
from ablate.study import plan

VARIANCE = [*TINY, "+variance=sources", "seeds=[0,1]", "study=v"]
ALL3 = "seed_streams.init=per_seed,seed_streams.order=per_seed"


def streams(variant: plan.VariantPlan) -> dict[str, object]:
    """A planned variant's seed streams as its config holds them."""
    s = variant.config.seed_streams
    return {"init": s.init, "order": s.order, "augment": s.augment, "dropout": s.dropout, "split": s.split}


def test_each_stream_that_can_vary_varies_alone_then_all_together() -> None:
    planned = plan.build([*TINY, "+variance=sources", "train.augment=shift", "model.dropout=0.25", "variance.fixed=7"])
    named = {v.variant.name: streams(v) for v in planned.variants}
    assert list(named) == ["seed_streams.init=per_seed", "seed_streams.order=per_seed", "seed_streams.augment=per_seed",
                           "seed_streams.dropout=per_seed",
                           "seed_streams.augment=per_seed,seed_streams.dropout=per_seed,seed_streams.init=per_seed,seed_streams.order=per_seed"]
    assert named["seed_streams.order=per_seed"] == {"init": 7, "order": "per_seed", "augment": 7, "dropout": 7, "split": "fixed"}
    assert set(list(named.values())[-1].values()) == {"per_seed", "fixed"}  # split: synthetic data draws no subset
    assert planned.variants[0].config.seeds == [0, 1, 2, 3, 4]  # the group's five seeds per source
    assert planned.notes == ("  variance: split left out (data.name=synthetic draws its images from data.subset_seed)",)


def test_split_varies_on_a_subset_of_real_data_and_the_dry_run_lists_every_run(workdir: Path) -> None:
    planned = plan.build(["+variance=sources", "data.train_size=200", "seeds=[0,1]"])
    split = next(v for v in planned.variants if v.variant.name == "seed_streams.split=per_seed")
    assert streams(split) == {"init": 0, "order": 0, "augment": "per_seed", "dropout": "per_seed", "split": "per_seed"}
    listed = run_ablate("run", *VARIANCE, "--dry-run", cwd=workdir)
    assert listed.returncode == 0, listed.stderr
    assert "6 run(s) planned, 0 finished, 6 to train" in listed.stdout
    for left_out in ("augment left out (train.augment=none draws no shifts)", "dropout left out (model.dropout=0 draws no masks)"):
        assert f"  variance: {left_out}" in listed.stdout
    for variant in ("seed_streams.init=per_seed", "seed_streams.order=per_seed", ALL3):
        assert f"to train  runs/v/{variant}/seed=1" in listed.stdout
    assert not (workdir / "runs").exists()


def chi_square_std(values: np.ndarray) -> tuple[float, float, float]:
    """The std and its 95 % chi-square interval, from the textbook formula."""
    n, var = len(values), values.var(ddof=1)
    return np.sqrt(var), np.sqrt((n - 1) * var / stats.chi2.ppf(0.975, n - 1)), np.sqrt((n - 1) * var / stats.chi2.ppf(0.025, n - 1))


def test_the_report_writes_each_sources_std_interval_and_share_and_the_command_that_trains_them(workdir: Path) -> None:
    launched = run_ablate("run", *VARIANCE, cwd=workdir)
    assert "Ablation: variance by source, 3 variant(s): init, order each alone, then all together" in launched.stdout + launched.stderr
    reported = run_ablate("report", "runs/v", cwd=workdir)
    assert reported.returncode == 0, reported.stderr
    found = pd.read_csv(workdir / "reports/v/variance.csv")
    assert list(found.columns) == ["source", "n", "std", "ci_low", "ci_high", "share"]
    assert list(found["source"]) == ["init", "order", "all"]
    runs = pd.read_csv(workdir / "reports/v/runs.csv")
    source_of = {"seed_streams.init=per_seed": "init", "seed_streams.order=per_seed": "order", ALL3: "all"}
    whole = runs.loc[runs["variant"] == ALL3, "test_acc"].to_numpy().var(ddof=1)
    for variant, source in source_of.items():
        values = runs.loc[runs["variant"] == variant, "test_acc"].to_numpy()
        row = found[found["source"] == source].iloc[0]
        assert row["n"] == 2
        assert (row["std"], row["ci_low"], row["ci_high"]) == pytest.approx(chi_square_std(values))
        assert row["share"] == pytest.approx(values.var(ddof=1) / whole)
    summary = (workdir / "reports/v/summary.md").read_text()
    assert summary.startswith("# Study `v`: test_acc, variance by source\n\n| source ")
    for shown in (summary, reported.stdout):  # each source's spread, and nothing against a baseline there is not
        assert "| init     |   2 |" in shown and "chi-square interval" in shown and "Σ source variance / all" in shown
        assert "Δ" not in shown and "verdict" not in shown and "p Holm" not in shown
    assert "-> reports/v/: summary.md, summary.csv, summary.tex, summary-full.tex, runs.csv, variance.csv, variance.png, index.html" in reported.stdout
    assert not {"forest.png", "accuracy.png", "cost.png", "tuning.png"} & {p.name for p in (workdir / "reports/v").iterdir()}
    assert "diff" not in pd.read_csv(workdir / "reports/v/summary.csv").columns
    page = (workdir / "reports/v/index.html").read_text()
    assert 'id="variance-table"' in page and "Σ source variance / all" in page and "init per seed, order 0" in page
    assert "Δ" not in page and "baseline +" not in page and 'id="summary-table"' not in page and 'id="figure-forest"' not in page

    # the page's one command plans every source's runs again, each found finished by its identity
    line = shlex.split(html.unescape(re.search(r'id="study-command">(.*?)</code>', page).group(1)))
    assert line[:3] == ["ablate", "run", "+variance=sources"] and not [a for a in line if a.startswith("seed_streams.")]
    shutil.rmtree(workdir / "runs/v/seed_streams.order=per_seed/seed=1")
    again = run_ablate(*line[1:], "--dry-run", cwd=workdir)
    assert again.returncode == 0, again.stderr
    assert "6 run(s) planned, 5 finished, 1 to train" in again.stdout and "to train  runs/v/seed_streams.order=per_seed/seed=1" in again.stdout

@pytest.mark.parametrize(("extra", "line"), [
    (["variance.sources=[init,shape]"], "variance.sources: 'shape' is not allowed; choose among: init, order, augment, dropout, split"),
    (["+variance.of=x"], "variance.of: no such key"),
    (["variance.sources=[init]"], "variance.sources=init leaves fewer than two streams that can vary here"),
    (["seeds=[0]"], "seeds=[0] is not allowed with +variance=sources"),
    (["-m", "model.depth=2,3"], "model.depth is a factor, and +variance=sources varies seed streams only"),
    (["seed_streams.order=7"], "seed_streams.order is set by +variance=sources for each source"),
])
def test_bad_settings_are_refused_in_one_line_naming_the_key(workdir: Path, extra: list[str], line: str) -> None:
    refused = run_ablate("run", *VARIANCE, *extra, "--dry-run", cwd=workdir)
    assert refused.returncode == 2 and line in refused.stderr, refused.stderr


def test_the_variance_charts_title_stays_inside_its_figure_with_two_sources() -> None:
    found = pd.DataFrame({"source": ["init", "all"], "n": [2, 2], "std": [0.05, 0.03], "ci_low": [0.02, 0.01],
                          "ci_high": [1.6, 1.1], "share": [2.25, 1.0]})
    figure = plots.variance_chart(found, "v", "test_acc", "chi-square interval of the variance (95 %, scipy.stats.chi2)")
    figure.canvas.draw()
    title, box = figure.axes[0].title.get_window_extent(), figure.bbox
    assert box.x0 <= title.x0 and title.x1 <= box.x1
