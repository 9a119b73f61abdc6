"""The one-file HTML report, opened in a real headless Chromium with the network cut off: it loads with no request
and no console error, its table holds summary.csv's numbers, it is not blank, and it prints to a PDF with the table."""

from __future__ import annotations

import io
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_ablate
from matplotlib.text import Text
from PIL import Image, ImageStat
from pypdf import PdfReader
from test_report import write

from ablate.config import ModelConfig
from ablate.report import plots
from ablate.report.summary import write_reports
from ablate.store import checkpoints, results

browser = pytest.importorskip("browser")
pytestmark = pytest.mark.skipif(browser.CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium; .ci/run installs it)")

SEEDS = [0, 1, 2, 3, 4]
# The `all` study's shape: the baseline and twelve one-key variants, each with its mean accuracy and parameter count.
VARIANTS = {
    "baseline": ({}, 0.980, 150_000), "model.depth=3": ({"depth": 3}, 0.984, 120_000), "model.depth=4": ({"depth": 4}, 0.985, 95_000),
    "model.width=16": ({"width": 16}, 0.972, 40_000), "model.width=64": ({"width": 64}, 0.986, 560_000),
    "model.kernel_size=5": ({"kernel_size": 5}, 0.982, 180_000), "model.kernel_size=7": ({"kernel_size": 7}, 0.981, 230_000),
    "model.pool=avg": ({"pool": "avg"}, 0.979, 150_000), "model.pool=strided": ({"pool": "strided"}, 0.977, 160_000),
    "model.batchnorm=true": ({"batchnorm": True}, 0.987, 150_200), "model.head=gap": ({"head": "gap"}, 0.955, 20_000),
    "model.dropout=0.5": ({"dropout": 0.5}, 0.981, 150_000), "model.activation=gelu": ({"activation": "gelu"}, 0.983, 150_000),
}
FAILED = ("model.dropout=0.5", 4)
IN_PROGRESS = ("model.width=16", 4)  # a checkpoint, no metrics.json yet


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[float]]]:
    """13 variants x 5 seeds written through the results store (one seed failed, one still training) and reported
    once for the module's tests (which only read it); returns the folder holding runs/ and reports/, and the
    accuracies of the finished runs."""
    folder = tmp_path_factory.mktemp("study")
    runs, noise, written = folder / "runs", np.random.default_rng(0), {}
    for variant, (keys, mean, params) in VARIANTS.items():
        written[variant] = []
        for seed in SEEDS:
            if (variant, seed) == IN_PROGRESS:
                results.write_file(results.run_dir(runs, "all", variant, seed), checkpoints.CHECKPOINT_FILE, b"training")
                continue
            if (variant, seed) == FAILED:
                write(runs, variant, seed, None, ModelConfig(**keys), status="failed", study="all", params=params)
                continue
            written[variant].append(round(mean + noise.normal(0, 0.002), 4))
            write(runs, variant, seed, written[variant][-1], ModelConfig(**keys), study="all", params=params)
    write_reports([str(runs)], str(folder / "reports"))
    return folder, written


def test_the_page_opens_offline_with_the_summary_numbers_and_prints(study: tuple[Path, dict[str, list[float]]]) -> None:
    folder, written = study
    page = folder / "reports" / "all" / "index.html"
    summary = pd.read_csv(folder / "reports" / "all" / "summary.csv")
    with browser.Browser() as chromium:
        chromium.open(page.as_uri())
        assert chromium.requests() == [page.as_uri()]  # the page itself, nothing else
        assert chromium.errors() == []
        assert chromium.evaluate("[...document.querySelectorAll('[src], link[href], a[href]:not([href^=\"#\"])')].length") == 0
        rows = chromium.evaluate("[...document.querySelectorAll('#summary-table tbody tr')].map(r => [...r.cells].map(c => c.textContent.trim()))")
        verdicts = chromium.evaluate("[...document.querySelectorAll('#summary-table td.verdict')].map(c => c.textContent.trim())")
        assert [row[0] for row in rows] == list(summary["variant"]) and sorted(summary["variant"]) == sorted(VARIANTS)
        for row, verdict, csv in zip(rows, verdicts, summary.itertuples()):
            accs = written[csv.variant]
            assert row[1] == str(len(accs)) == str(csv.n)
            assert row[2] == f"{np.mean(accs) * 100:.2f} ± {np.std(accs, ddof=1) * 100:.2f}" == f"{csv.mean * 100:.2f} ± {csv.std * 100:.2f}"
            assert verdict.endswith(csv.verdict)  # the verdict in words, after its shape
        shapes = chromium.evaluate("Object.fromEntries([...document.querySelectorAll('#summary-table tbody tr')].map(r => [r.dataset.variant, r.querySelector('.mark').textContent]))")
        assert shapes["model.width=16"] == "▼" and shapes["model.batchnorm=true"] == "▲"  # verdicts as shapes, not colour alone
        problems = chromium.evaluate("document.querySelector('#problems').textContent")
        assert f"{FAILED[0]}: seed {FAILED[1]}: failed" in " ".join(problems.split())
        assert f"{IN_PROGRESS[0]}: in progress: seed {IN_PROGRESS[1]}" in " ".join(problems.split())
        assert chromium.evaluate("document.querySelectorAll('figure svg').length") == 4
        tips = chromium.evaluate("[...document.querySelectorAll('#figure-cost svg title')].map(t => t.textContent)")
        width = summary.set_index("variant").loc["model.width=64"]
        assert len(tips) == len(VARIANTS) and f"model.width=64: {width['mean'] * 100:.2f} ± {width['std'] * 100:.2f}, 560,000 trainable parameters" in tips
        with Image.open(io.BytesIO(chromium.screenshot())) as shot:
            assert shot.size[0] == 1280 and shot.size[1] > 3000
            grey = shot.convert("L")
            assert ImageStat.Stat(grey).stddev[0] > 20 and len(shot.convert("RGB").getcolors(1 << 20)) > 100  # not blank
        pdf = PdfReader(io.BytesIO(chromium.pdf()))
        text = " ".join(" ".join(page.extract_text().split()) for page in pdf.pages)
        assert "Summary" in text and all(variant in text for variant in VARIANTS)
        assert f"{summary.loc[summary['variant'] == 'model.width=64', 'mean'].iloc[0] * 100:.2f}" in text
        chromium.send("Emulation.setEmulatedMedia", media="print")  # A4 landscape less the 12 mm margins, at 96 px per inch:
        chromium.send("Emulation.setDeviceMetricsOverride", width=1032, height=700, deviceScaleFactor=1, mobile=False)
        assert chromium.evaluate("document.querySelector('#summary-table').scrollWidth <= document.documentElement.clientWidth")
        chromium.open((folder / "reports" / "index.html").as_uri())
        assert chromium.evaluate("[...document.querySelectorAll('a')].map(a => a.getAttribute('href'))") == ["all/index.html"]


def test_each_variants_command_plans_its_finished_runs_again(study: tuple[Path, dict[str, list[float]]]) -> None:
    folder, _ = study
    with browser.Browser() as chromium:
        chromium.open((folder / "reports" / "all" / "index.html").as_uri())
        commands = dict(chromium.evaluate("[...document.querySelectorAll('#command-table tbody tr')].map(r => [r.cells[0].textContent, r.cells[2].textContent])"))
    assert sorted(commands) == sorted(VARIANTS)
    line = shlex.split(commands["model.width=64"])
    assert line[:4] == ["ablate", "run", "-m", "model.width=32,64"] and "train.epochs=2" in line and "study=all" in line
    planned = run_ablate(*line[1:], "--dry-run", cwd=folder)
    assert planned.returncode == 0, planned.stderr
    assert "10 run(s) planned, 10 finished, 0 to train" in planned.stdout  # the same identity: nothing to train again
    finished = {row.split()[1] for row in planned.stdout.splitlines() if row.split()[:1] == ["ok"]}
    assert finished == {f"runs/all/{variant}/seed={seed}" for variant in ("baseline", "model.width=64") for seed in SEEDS}


def test_the_cost_chart_labels_every_point_without_overlap(study: tuple[Path, dict[str, list[float]]]) -> None:
    summary = pd.read_csv(study[0] / "reports" / "all" / "summary.csv").fillna({"factor": "", "value": ""})
    figure = plots.cost_chart(summary, "all", "test_acc")
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    axes = figure.axes[0]
    labels = {text.get_text(): Text.get_window_extent(text, renderer) for text in axes.texts}  # the words, not the leader line
    assert sorted(labels) == sorted(v.removeprefix("model.") for v in VARIANTS)
    inside = axes.get_window_extent(renderer)
    boxes = list(labels.values())
    assert all(inside.containsx(b.x0) and inside.containsx(b.x1) and inside.containsy(b.y0) and inside.containsy(b.y1) for b in boxes)
    assert not [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:] if a.overlaps(b)]


# Per table cell that holds a number (digits, signs, ±, brackets, %, pt): how many lines its text takes; per table,
# whether a column is cut (wider than its box); per figure, text that leaves the figure's box.
LAYOUT = """(() => {
  const lines = el => { const r = document.createRange(); r.selectNodeContents(el);
                        return new Set([...r.getClientRects()].map(b => Math.round(b.top))).size; };
  const wrapped = [...document.querySelectorAll('td')].filter(c => /\\d/.test(c.textContent)
      && /^[\\s\\d.,:=±+\\-−–\\[\\]%()a-z_]*$/i.test(c.textContent.trim()) && !c.closest('#command-table') && lines(c) > 1)
      .map(c => c.textContent.trim());
  const cut = [...document.querySelectorAll('.wide')].filter(w => w.scrollWidth > w.clientWidth + 1).map(w => w.firstElementChild.id);
  const outside = [...document.querySelectorAll('figure svg')].flatMap(svg => { const box = svg.getBoundingClientRect();
      return [...svg.querySelectorAll('text')].filter(t => { const b = t.getBoundingClientRect();
          return b.width && (b.left < box.left - 1 || b.right > box.right + 1 || b.top < box.top - 1 || b.bottom > box.bottom + 1); })
      .map(t => t.textContent); });
  return {wrapped, cut, outside};
})()"""


@pytest.mark.parametrize("width", [1280, 1920])
def test_no_number_wraps_no_column_is_cut_and_no_text_leaves_its_figure(study: tuple[Path, dict[str, list[float]]], width: int) -> None:
    with browser.Browser(width=width) as chromium:
        chromium.open((study[0] / "reports" / "all" / "index.html").as_uri())
        assert chromium.evaluate(LAYOUT) == {"wrapped": [], "cut": [], "outside": []}
