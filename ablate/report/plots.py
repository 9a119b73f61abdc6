"""The pictures of a study report: per-variant bars, learning curves, and accuracy against model size.

Every figure uses seaborn's colour-blind-safe palette, sets the baseline apart in grey, and says in its
title or caption what the marks mean. Each function draws what the summary computed (no statistic, no outlier rule
of its own) and returns the figure; `write` saves it as PNG and returns it as inline SVG for the HTML page.
Matplotlib's Agg backend: nothing opens a window.
"""

from __future__ import annotations

import io
import itertools
import re
from pathlib import Path

import matplotlib
import matplotlib.patches
import matplotlib.ticker
from matplotlib.transforms import Bbox

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from ablate.report.metrics import metric  # noqa: E402
from ablate.report.adaptive import CI_METHOD as ANYTIME_CI  # noqa: E402
from ablate.report.stats import ALPHA, POWER  # noqa: E402
from ablate.store import files  # noqa: E402
from ablate.study.variants import BASELINE  # noqa: E402

VERDICT_MARKS = {"better": "▲ better", "worse": "▼ worse", "no clear difference": "n.s.", "equivalent": "≈ equiv."}
# One sequential colour family per factor, so the variants of a factor read as one group and factors never share a
# colour; the baseline is grey in every figure.
FAMILIES = ("Blues", "Oranges", "Greens", "Purples", "Reds", "PuRd", "YlOrBr", "BuGn")
BASELINE_COLOUR = (0.55, 0.55, 0.55)
SIGNIFICANT = f"p < {ALPHA:g}"  # the labels say the levels the statistics used
POWERED = f"{POWER * 100:g} % power"
TIP = "ablate-tip:"  # an artist's gid that starts so becomes, in the page's SVG, a title shown on hover


def metric_scale(name: str) -> tuple[float, str]:
    """The factor a metric is shown multiplied by (100 for accuracies) and its label."""
    declared = metric(name)
    return declared.scale, declared.label


def verdict_mark(verdict: str) -> str:
    """The short mark of a verdict under a bar ('' for the baseline and untested variants)."""
    return "? inconcl." if verdict.startswith("inconclusive") else VERDICT_MARKS.get(verdict, "")


def variant_colours(summary: pd.DataFrame) -> dict[str, tuple]:
    """Grey for the baseline; for each factor (in the summary's order) one colour family, light to dark by value."""
    colours = {BASELINE: BASELINE_COLOUR}
    factors = [f for f in dict.fromkeys(summary["factor"]) if f]
    for index, factor in enumerate(factors):
        variants = list(summary.loc[summary["factor"] == factor, "variant"])
        family = matplotlib.colormaps[FAMILIES[index % len(FAMILIES)]]
        for variant, shade in zip(variants, np.linspace(0.45, 0.9, len(variants)) if len(variants) > 1 else [0.7]):
            colours[variant] = family(shade)[:3]
    return colours | {v: BASELINE_COLOUR for v in summary["variant"] if v not in colours}


def _short(variant: str) -> str:
    return variant.removeprefix("model.")


def _finish(figure: plt.Figure) -> plt.Figure:
    sns.despine(figure)
    figure.tight_layout()
    figure.set_layout_engine(None)  # laid out once: without an engine each savefig draws once, not twice
    return figure


def write(figure: plt.Figure, png: Path | None = None) -> str:
    """Save a figure as PNG (when a path is given) and return it as an inline <svg> element with its text as text,
    so the HTML page needs no other file and prints and searches like the page around it; closes the figure."""
    if png is not None:
        picture = io.BytesIO()
        figure.savefig(picture, format="png", dpi=130)
        files.write_atomically(png, picture.getvalue())
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "ablate"}):
        figure.savefig(buffer, format="svg")
    plt.close(figure)
    text = buffer.getvalue()
    count = itertools.count()
    return re.sub(f'<g id="{TIP}([^"]*)">', lambda m: f'<g id="tip-{next(count)}"><title>{m.group(1)}</title>', text[text.index("<svg"):])


def _grouped_positions(shown: pd.DataFrame) -> tuple[np.ndarray, list[tuple[float, str]]]:
    """x of each variant with a gap between factors, and (centre, factor) of each group for its label."""
    x, groups, position, previous = [], [], 0.0, None
    for factor in shown["factor"]:
        if previous is not None and factor != previous:
            position += 0.6
        x.append(position)
        position += 1.0
        previous = factor
    x = np.asarray(x)
    for factor in dict.fromkeys(shown["factor"]):
        where = x[(shown["factor"] == factor).to_numpy()]
        groups.append((float(where.mean()), factor.removeprefix("model.") if factor else "baseline"))
    return x, groups


def bar_chart(summary: pd.DataFrame, runs: pd.DataFrame, study: str, metric: str) -> plt.Figure:
    """Mean per variant (bars, grouped by factor), ±1 std (error bars), 95% CI of the mean (black ranges), each seed
    (dots). The y-axis spans the data, not zero, so differences of a point or less stay visible."""
    scale, label = metric_scale(metric)
    shown = summary[summary["n"] > 0].reset_index(drop=True)
    colours = variant_colours(summary)
    figure, axes = plt.subplots(figsize=(max(8.0, 0.75 * len(shown) + 3.5), 5.2))  # 8 in: the title's second line fits
    x, groups = _grouped_positions(shown)
    means = shown["mean"].astype(float) * scale
    stds = shown["std"].astype(float).fillna(0) * scale
    core = ~shown["mean_off_axis"].astype(bool)
    low = float(np.nanmin([(means - stds)[core].min(), (shown["ci_low"].astype(float) * scale)[core].min(), means[core].min()]))
    tops = np.maximum(means + stds, shown["ci_high"].astype(float).fillna(-np.inf) * scale)
    if scale == 100.0:
        tops = np.minimum(tops, 100.0)  # a CI or std may pass 100 %; the axis and labels stop there
    high = float(np.nanmax(tops[core]))
    margin = max(high - low, 0.5 if scale == 100.0 else 1e-3)
    bottom = low - 0.35 * margin
    if scale == 100.0:
        bottom = max(bottom, 0.0)
    axes.bar(x, np.maximum(means - bottom, 0), bottom=bottom, yerr=stds, color=[colours[v] for v in shown["variant"]], capsize=5,
             edgecolor="black", linewidth=0.6, error_kw={"elinewidth": 1.2, "ecolor": "#333333"}, zorder=2, width=0.8)
    has_ci = shown["ci_low"].notna().to_numpy()
    axes.vlines(x[has_ci] + 0.25, shown["ci_low"][has_ci] * scale, shown["ci_high"][has_ci] * scale,
                color="black", linewidth=3, zorder=3, label="95% CI of the mean")
    highest = []  # each variant's highest mark (std, CI or seed): its mean's label goes above it
    for i, variant in enumerate(shown["variant"]):
        seeds = runs[(runs["variant"] == variant) & (runs["status"] == "ok")][metric].astype(float) * scale
        highest.append(max([tops[i], *seeds]))
        jitter = np.linspace(-0.12, 0.12, len(seeds)) if len(seeds) > 1 else np.zeros(len(seeds))
        axes.scatter(x[i] + jitter, seeds, s=14, color="white", edgecolor="black", linewidth=0.7, zorder=4,
                     label="one seed" if i == 0 else None)
    if BASELINE in set(shown["variant"]):
        base = float(shown.loc[shown["variant"] == BASELINE, "mean"].iloc[0]) * scale
        axes.axhline(base, color="#555555", linestyle="--", linewidth=1, zorder=1, label="baseline mean")
    for i, row in shown.iterrows():
        mark = verdict_mark(row["verdict"])
        below = not core[i] and means[i] < bottom  # a far outlier under the axis: its value in words at the bottom
        axes.annotate(f"{means[i]:.2f}" + (f"\n{mark}" if mark else "") + ("\n↓ below axis" if below else ""),
                      (x[i], bottom if below else min(highest[i], high)), ha="center", va="bottom", fontsize=8, xytext=(0, 4),
                      textcoords="offset points", color="#b00000" if below else "black")
    top = min(high + 0.45 * margin, 110.0) if scale == 100.0 else high + 0.45 * margin
    axes.set_ylim(bottom, top)
    axes.set_xticks(x, [str(v) if f else "baseline" for f, v in zip(shown["factor"], shown["value"])], rotation=0, fontsize=9)
    for centre, factor in groups:
        axes.annotate(factor, (centre, 0), xycoords=("data", "axes fraction"), xytext=(0, -24), textcoords="offset points",
                      ha="center", va="top", fontsize=10, fontweight="bold")
    axes.set_ylabel(f"{label}: mean ± 1 std over seeds" + ("" if bottom == 0 else f"\n(axis starts at {bottom:.1f}, not 0)"))
    axes.set_title(f"Study '{study}': {label} per variant, grouped by factor\n(grey = baseline; ▲/▼ = Holm-adjusted Welch "
                   f"{SIGNIFICANT}; n.s. = no clear difference)", fontsize=11)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return _finish(figure)


def curves_chart(curves: pd.DataFrame, summary: pd.DataFrame, study: str, split: str = "test") -> plt.Figure:
    """Test (or, with split="val", validation) accuracy (top) and train loss (bottom) per epoch, one column per factor
    with the baseline (grey, dashed) in each: the mean over seeds as a line, ±1 std as a band (a whisker after one
    epoch); `summary.curves` computes both."""
    colours = variant_colours(summary)
    present = set(curves["variant"])
    factors = [f for f in dict.fromkeys(summary["factor"]) if f and set(summary.loc[summary["factor"] == f, "variant"]) & present]
    columns = max(len(factors), 1)
    figure, grid = plt.subplots(2, columns, figsize=(max(3.3 * columns, 6.0), 6.4), sharey="row", sharex=True, squeeze=False)
    rows = (("acc", 100.0, f"{'validation' if split == 'val' else 'test'} accuracy (%)"), ("loss", 1.0, "train loss"))
    for column, factor in enumerate(factors or [""]):
        variants = [v for v in summary.loc[summary["factor"] == factor, "variant"] if v in present]
        shown = ([BASELINE] if BASELINE in present else []) + variants
        for row, (y, scale, label) in enumerate(rows):
            axes = grid[row, column]
            for index, variant in enumerate(shown):
                line = curves[curves["variant"] == variant]
                mean, std = line[f"{y}_mean"] * scale, line[f"{y}_std"].fillna(0) * scale
                # after one epoch there is no band: ±1 std as a whisker, each variant's set a little apart
                x = line["epoch"] + (0 if len(line) > 1 else 0.1 * (index - (len(shown) - 1) / 2))
                axes.plot(x, mean, color=colours[variant], linestyle="--" if variant == BASELINE else "-", marker="o", markersize=3,
                          label="baseline" if variant == BASELINE else variant.partition("=")[2] or variant)
                if len(line) > 1:
                    axes.fill_between(x, mean - std, mean + std, color=colours[variant], alpha=0.2, linewidth=0)
                else:
                    axes.errorbar(x, mean, yerr=std, color=colours[variant], capsize=3, linewidth=1)
            axes.set_ylabel(label if column == 0 else "")
            axes.set_xlabel("epoch")
            axes.set_xticks(sorted(curves["epoch"].unique()))
            axes.grid(True, alpha=0.3)
            if row == 0:
                axes.set_title(factor.removeprefix("model.") or "baseline", fontsize=10, fontweight="bold")
                axes.legend(fontsize=7, loc="best")
    top = grid[0, 0].get_ylim()
    grid[0, 0].set_ylim(top[0], min(top[1], 100.5))
    grid[0, 0].set_xlim(curves["epoch"].min() - 0.5, curves["epoch"].max() + 0.5)
    figure.suptitle(f"Study '{study}': learning curves per factor\n(line = mean over seeds, {'band' if curves['epoch'].nunique() > 1 else 'whisker'} = ±1 std; grey dashed = baseline)", fontsize=11)
    return _finish(figure)


# Where a point's label may go, in points from the point: beside it first, then farther out with a line to it.
LABEL_OFFSETS = [(dx * r, dy * r) for r in (6, 16, 30) for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, 1), (1, -1), (-1, -1))]


def _overlap(box: Bbox, others: list[Bbox], inside: Bbox) -> float:
    """Pixels of `box` covered by `others` or outside `inside`: 0 where a label is readable."""
    def shared(a: Bbox, b: Bbox) -> float:
        return max(0.0, min(a.x1, b.x1) - max(a.x0, b.x0)) * max(0.0, min(a.y1, b.y1) - max(a.y0, b.y0))
    return sum(shared(box, other) for other in others) + box.width * box.height - shared(box, inside)


def _label_points(axes: plt.Axes, points: list[tuple[float, float]], texts: list[str]) -> None:
    """Label each point (data coordinates) at the first offset where its text covers no other label, no point and
    stays inside the axes, or where it covers least; a label away from its point gets a thin dark line to it."""
    renderer = axes.figure.canvas.get_renderer()
    inside = axes.get_window_extent(renderer)
    taken = [Bbox.from_bounds(x - 7, y - 7, 14, 14) for x, y in axes.transData.transform(points)]
    for point, text in zip(points, texts):
        tried = []
        for dx, dy in LABEL_OFFSETS:
            label = axes.annotate(text, point, xytext=(dx, dy), textcoords="offset points", fontsize=8,
                                  ha="left" if dx > 0 else "right" if dx < 0 else "center",
                                  va="bottom" if dy > 0 else "top" if dy < 0 else "center")
            box = label.get_window_extent(renderer).expanded(1.05, 1.1)
            label.remove()
            tried.append((_overlap(box, taken, inside), (dx, dy), box))
            if tried[-1][0] == 0:
                break
        _, (dx, dy), box = min(tried, key=lambda t: t[0])
        far = max(abs(dx), abs(dy)) > LABEL_OFFSETS[0][0]
        axes.annotate(text, point, xytext=(dx, dy), textcoords="offset points", fontsize=8,
                      ha="left" if dx > 0 else "right" if dx < 0 else "center", va="bottom" if dy > 0 else "top" if dy < 0 else "center",
                      arrowprops={"arrowstyle": "-", "color": "#444444", "linewidth": 0.7, "shrinkA": 1, "shrinkB": 4} if far else None)
        taken.append(box)


def cost_chart(summary: pd.DataFrame, study: str, metric: str) -> plt.Figure:
    """Mean metric (±1 std) against the number of trainable parameters (a log axis where they span a factor of 3 or
    more, else a linear one spanning them): what each change costs and buys. Each point is labelled beside it, or a
    little away with a line to it, where no other label or point is; in the page its variant, mean and parameters show
    on hover."""
    scale, label = metric_scale(metric)
    shown = summary[summary["n"] > 0].reset_index(drop=True)
    colours = variant_colours(summary)
    figure, axes = plt.subplots(figsize=(9.0, max(5.0, 0.3 * len(shown) + 1.5)))
    for row in shown.itertuples():
        marks = axes.errorbar(row.trainable_params, row.mean * scale, yerr=(row.std or 0) * scale, fmt="o", color=colours[row.variant],
                              markersize=8, capsize=4, markeredgecolor="black", zorder=3)
        spread = "" if pd.isna(row.std) else f" ± {row.std * scale:.2f}"
        marks.lines[0].set_gid(f"{TIP}{row.variant}: {row.mean * scale:.2f}{spread}, {int(row.trainable_params):,} trainable parameters")
    low, high = float(shown["trainable_params"].min()), float(shown["trainable_params"].max())
    wide = high > 3 * low  # sizes spanning a factor of 3 or more: a log axis; else a linear one that spans the data
    if wide:
        axes.set_xscale("log")
        axes.set_xlim(low / 1.5, high * 1.5)
        axes.xaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axes.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    else:
        pad = max(0.15 * (high - low), 0.02 * high)
        axes.set_xlim(low - pad, high + pad)
    axes.margins(y=0.15)
    axes.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(
        lambda value, _: f"{value / 1e3:,.1f}k" if value < 1e6 else f"{value / 1e6:,.2f}M"))
    axes.set_xlabel(f"trainable parameters{' (log scale)' if wide else ''}")
    axes.set_ylabel(f"{label}: mean ± 1 std")
    axes.set_title(f"Study '{study}': {label} against trainable parameters (grey = baseline)", fontsize=11)
    axes.grid(True, which="major", alpha=0.3)
    _finish(figure)
    _label_points(axes, [(row.trainable_params, row.mean * scale) for row in shown.itertuples()],
                  [_short(v) for v in shown["variant"]])
    return figure


VERDICT_STYLE = {  # verdict -> (marker, palette index or None for grey, legend text)
    "better": ("^", 2, f"better (Holm {SIGNIFICANT})"),
    "worse": ("v", 3, f"worse (Holm {SIGNIFICANT})"),
    "equivalent": ("D", 0, f"equivalent (TOST, Holm {SIGNIFICANT})"),
}
# seeds=auto studies: the interval is the anytime-valid one the decision was made on (report/adaptive.py).
ANYTIME_STYLE = {
    "better": ("^", 2, "better (anytime-valid interval above 0)"),
    "worse": ("v", 3, "worse (anytime-valid interval below 0)"),
    "equivalent": ("D", 0, "equivalent (anytime-valid interval within the margin)"),
}


def _factor_rows(summary: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple[float, str]]]:
    """The compared variants with a y position each, factor by factor top to bottom with a gap and a header
    between factors; returns the rows and (y, factor) of each header."""
    compared = summary[(summary["variant"] != BASELINE)].reset_index(drop=True)
    positions, headers, y = [], [], 0.0
    for factor, group in compared.groupby("factor", sort=False):
        headers.append((y, factor.removeprefix("model.") or "other"))
        y += 1.0
        for _ in range(len(group)):
            positions.append(y)
            y += 1.0
        y += 0.4
    ordered = pd.concat([g for _, g in compared.groupby("factor", sort=False)], ignore_index=True) if len(compared) else compared
    return ordered.assign(y=positions), headers


def forest_chart(summary: pd.DataFrame, study: str, metric: str, margin: float | None) -> plt.Figure:
    """Δ vs baseline with its Holm-adjusted 95 % CI (the verdict's multiplicity) per variant (grouped by factor), each comparison's ±MDE as a grey band, the
    equivalence margin as dashed lines when given, and the verdict as the mark's shape and colour."""
    scale = metric_scale(metric)[0]
    unit = "pt" if scale == 100.0 else ""
    rows, headers = _factor_rows(summary)
    anytime = "ci_method" in summary and bool((summary["ci_method"] == ANYTIME_CI).any())
    styles, interval = (ANYTIME_STYLE, "anytime-valid interval") if anytime else (VERDICT_STYLE, "Holm-adjusted 95 % CI")
    palette = sns.color_palette("colorblind")
    height = max(3.0, 1.9 + 0.36 * (len(rows) + len(headers)))  # room for the title and axis label with no row
    figure, axes = plt.subplots(figsize=(9.0, height))
    shown: set[str] = set()
    if rows.empty:
        axes.annotate("nothing compared yet: no variant beside the baseline", (0.5, 0.5), xycoords="axes fraction",
                      ha="center", va="center", fontsize=10, color="#777777")
    for row in rows.itertuples():
        if pd.notna(row.mde):
            axes.add_patch(matplotlib.patches.Rectangle((-row.mde * scale, row.y - 0.32), 2 * row.mde * scale, 0.64, color="#dddddd",
                                                        zorder=1, label=None if "mde" in shown else f"±MDE ({POWERED})"))
            shown.add("mde")
        if pd.isna(row.diff):
            axes.annotate("not tested", (0, row.y), ha="center", va="center", fontsize=8, color="#777777")
            continue
        key = "equivalent" if row.verdict == "equivalent" else row.verdict
        marker, colour, text = styles.get(key, ("o", None, "no clear difference / inconclusive"))
        colour = palette[colour] if colour is not None else (0.35, 0.35, 0.35)
        low, high = row.diff_ci_low * scale, row.diff_ci_high * scale
        axes.errorbar(row.diff * scale, row.y, xerr=[[row.diff * scale - low], [high - row.diff * scale]] if pd.notna(low) else None,
                      fmt=marker, color=colour, markersize=8, capsize=3, markeredgecolor="black", zorder=3,
                      label=None if text in shown else text)
        shown.add(text)
        axes.annotate(row.verdict, (1.01, row.y), xycoords=("axes fraction", "data"), va="center", fontsize=8, color=colour)
    axes.axvline(0, color="black", linewidth=1, zorder=2)
    core = ~rows["diff_off_axis"].astype(bool)[rows["diff"].notna()]
    if len(core) and not core.all():  # far outliers: keep the axis on the others, name the outliers at the edge
        kept = rows.loc[core[core].index]
        low = min(0.0, float((kept["diff_ci_low"].astype(float) * scale).min()), -(margin or 0))
        high = max(0.0, float((kept["diff_ci_high"].astype(float) * scale).max()), margin or 0)
        pad = 0.15 * (high - low)
        axes.set_xlim(low - pad, high + pad)
        for row in rows.loc[core[~core].index].itertuples():
            edge = low - pad if row.diff * scale < low else high + pad
            axes.annotate(f"{'◀' if edge < 0 else '▶'} {row.diff * scale:+.2f} (off axis)", (edge, row.y), va="center",
                          ha="left" if edge < 0 else "right", fontsize=8, color="#b00000", zorder=4)
    if margin is not None:
        for x in (-margin, margin):
            axes.axvline(x, color=palette[0], linestyle="--", linewidth=1.2, zorder=2, label=None if x < 0 else f"equivalence margin ±{margin:g} {unit}")
    axes.set_yticks(list(rows["y"]) + [y for y, _ in headers],
                    [str(v) for v in rows["value"]] + [f"{name}:" for _, name in headers])
    for tick, bold in zip(axes.get_yticklabels(), [False] * len(rows) + [True] * len(headers)):
        tick.set_fontweight("bold" if bold else "normal")
    axes.invert_yaxis()
    axes.tick_params(axis="y", length=0)
    axes.set_xlabel(f"Δ {metric} vs baseline (variant − baseline){' in percentage points' if unit else ''}, with its {interval}")
    axes.set_title(f"Study '{study}': difference to the baseline per variant\n(grey band = ±MDE: differences inside it "
                   f"are below what the study can detect)", fontsize=11)
    axes.grid(True, axis="x", alpha=0.3)
    if shown:  # a study with nothing compared has nothing to explain
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.6 / (height - 1.6)), ncol=2, fontsize=8, frameon=False)
    return _finish(figure)


def interaction_chart(means: pd.DataFrame, study: str, metric: str) -> plt.Figure:
    """One panel per pair of factors: the mean response at the first factor's two values, a line per value of the
    second; parallel lines mean no interaction, crossing or diverging lines an interaction."""
    pairs = list(dict.fromkeys(zip(means["x_factor"], means["line_factor"])))
    columns = min(3, len(pairs))
    rows = -(-len(pairs) // columns)
    figure, grid = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.0 * rows + 0.6), squeeze=False)
    palette = sns.color_palette("colorblind")
    for axes, (a, b) in zip(grid.flat, pairs):
        panel = means[(means["x_factor"] == a) & (means["line_factor"] == b)].sort_values("x_code")
        for colour, (value, line) in zip(palette, panel.groupby("line", sort=False)):
            axes.plot(line["x_code"], line["mean"], marker="o", color=colour, label=f"{_short(b)}={value}")
        axes.set_xticks([-1, 1], list(dict.fromkeys(panel["x"])))
        axes.set_xlabel(_short(a))
        aliased = panel["aliases"].iloc[0]
        axes.set_title(f"{_short(a)} × {_short(b)}" + (f"\n(aliased with {aliased})" if aliased else ""), fontsize=9)
        axes.legend(fontsize=7, frameon=False)
        axes.grid(True, alpha=0.3)
    for axes in list(grid.flat)[len(pairs):]:
        axes.set_visible(False)
    for axes in grid[:, 0]:
        axes.set_ylabel(f"mean {metric_scale(metric)[1]}")
    figure.suptitle(f"Study '{study}': two-factor interactions (means over seeds and the other factors)", fontsize=11)
    return _finish(figure)


def half_normal_chart(scores: pd.DataFrame, study: str, metric: str) -> plt.Figure:
    """Daniel's half-normal plot: |effect| against its half-normal quantile; effects significant after Holm are
    coloured and every point is named; effects far off the line through the small ones are real."""
    figure, axes = plt.subplots(figsize=(8.0, 5.5))
    significant = scores["p_holm"] < ALPHA
    colours = np.where(significant, "#d55e00", "#555555")
    axes.scatter(scores["quantile"], scores["size"], c=list(colours), zorder=3)
    for index, row in enumerate(scores.itertuples()):  # aliases of up to two factors; labels alternate to stay apart
        aliases = [word for word in row.aliases.split(" = ") if word and word.count("×") <= 1]
        axes.annotate(row.term + (f" (= {' = '.join(aliases)})" if aliases else ""), (row.quantile, row.size),
                      xytext=(6, 3) if index % 2 else (-6, 3), ha="left" if index % 2 else "right", textcoords="offset points", fontsize=8)
    if scores["noise"].notna().all():
        axes.plot([0, *scores["quantile"]], [0, *scores["noise"]], color="#999999", linestyle="--", zorder=1,
                  label="where effects that are only noise lie (quantile × the fit's standard error)")
        axes.legend(fontsize=8, frameon=False, loc="upper left")
    axes.set_xlim(0, float(scores["quantile"].max()) * 1.45)
    axes.set_xlabel("half-normal quantile")
    axes.set_ylabel(f"|effect| on {metric_scale(metric)[1]}")
    axes.set_title(f"Study '{study}': half-normal plot of the effects\n(orange: Holm {SIGNIFICANT}; effects far above the noise line are real)", fontsize=11)
    axes.grid(True, alpha=0.3)
    return _finish(figure)


def tuning_chart(rows: pd.DataFrame, seeds: pd.DataFrame, summary: pd.DataFrame, study: str, metric: str) -> plt.Figure:
    """Each variant's tuning curve (+tune): the tuning metric's mean over the tuning seeds (line) against the grid's
    points, each seed's value (dots) and the chosen point (a ring); `report/tuning.py` computes all three. A grid of one
    numeric key is drawn at its values, on a log axis where they span a factor of 10 or more (a learning rate); any
    other grid at its points in grid order, labelled by their values."""
    scale, label = metric_scale(metric)
    # a diverged tuning seed scores ±inf (never chosen): it has no place on the axis, so it and its point's mean are left out
    rows, seeds = rows.replace([np.inf, -np.inf], np.nan), seeds.replace([np.inf, -np.inf], np.nan)
    keys = [c for c in rows.columns if c not in ("variant", "n", "chosen") and not c.startswith(f"{metric}_")]
    colours = variant_colours(summary)
    numeric = len(keys) == 1 and pd.api.types.is_numeric_dtype(rows[keys[0]])

    def texts(frame: pd.DataFrame) -> list[str]:
        return [", ".join(f"{key}={value}" for key, value in zip(keys, point)) for point in frame[keys].itertuples(index=False)]

    labels = list(dict.fromkeys(texts(rows)))

    def where(frame: pd.DataFrame) -> np.ndarray:
        """x of each row: its grid value, or its point's place in grid order."""
        if numeric:
            return frame[keys[0]].astype(float).to_numpy()
        return np.asarray([labels.index(text) for text in texts(frame)], dtype=float)

    figure, axes = plt.subplots(figsize=(8.0, 5.0))
    arms = list(dict.fromkeys(rows["variant"]))
    for index, arm in enumerate(arms):
        line, dots = rows[rows["variant"] == arm], seeds[seeds["variant"] == arm]
        colour = colours.get(arm, BASELINE_COLOUR)
        x = where(line)
        axes.plot(x, line[f"{metric}_mean"] * scale, color=colour, linestyle="--" if arm == BASELINE else "-", marker="o",
                  markersize=4, linewidth=1.6, label=_short(arm), zorder=3)
        nudge = 1.0 + 0.03 * (index - (len(arms) - 1) / 2) if numeric else 0.0  # the arms' dots a little apart
        spread = where(dots) * nudge if numeric else where(dots) + 0.06 * (index - (len(arms) - 1) / 2)
        axes.scatter(spread, dots[metric].astype(float) * scale, s=16, color=colour, edgecolor="black", linewidth=0.5, alpha=0.8,
                     zorder=4, label="one tuning seed" if index == 0 else None)
        chosen = line[line["chosen"] == 1]
        axes.scatter(where(chosen), chosen[f"{metric}_mean"] * scale, s=160, facecolor="none", edgecolor="black", linewidth=1.6,
                     zorder=5, label="chosen point" if index == 0 else None)
    logarithmic = numeric and float(rows[keys[0]].min()) > 0 and float(rows[keys[0]].max()) >= 10 * float(rows[keys[0]].min())
    if logarithmic:
        axes.set_xscale("log")
    if numeric:
        values = sorted(rows[keys[0]].astype(float).unique())
        axes.set_xticks(values, [f"{v:g}" for v in values])
        axes.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        axes.set_xlabel(f"{keys[0]}{' (log scale)' if logarithmic else ''}")
    else:
        axes.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
        axes.set_xlabel("grid point")
    axes.margins(x=0.08, y=0.15)
    axes.set_ylabel(f"{label}: mean over the tuning seeds")
    axes.set_title(f"Study '{study}': tuning curves, {label} per grid point\n(line = mean, dots = each tuning seed, "
                   "ring = the point chosen; grey dashed = baseline)", fontsize=11)
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return _finish(figure)


def variance_chart(found: pd.DataFrame, study: str, metric_name: str, ci_method: str) -> plt.Figure:
    """A variance study's std per source (bar) with its interval (whiskers), `all` in grey (what the table holds)."""
    scale, label = metric_scale(metric_name)
    shown = found[found["std"].notna()]
    figure, axes = plt.subplots(figsize=(max(1.1 * len(shown) + 2.5, 6.0), 3.6))  # at least as wide as its title
    colours = [BASELINE_COLOUR if source == "all" else sns.color_palette("colorblind")[0] for source in shown["source"]]
    heights = shown["std"].to_numpy() * scale
    errors = np.vstack([heights - shown["ci_low"].to_numpy() * scale, shown["ci_high"].to_numpy() * scale - heights])
    axes.bar(shown["source"], heights, color=colours, yerr=errors, capsize=4, ecolor="black")
    axes.set_ylabel(f"std of {label}")
    axes.set_title(f"{study}: spread by source\n(whiskers: {ci_method})", fontsize=9)
    return _finish(figure)
