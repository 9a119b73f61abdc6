"""The pictures of a study report: per-variant bars, learning curves, and accuracy against model size.

Every figure uses seaborn's colour-blind-safe palette, sets the baseline apart in grey, and says in its
title or caption what the marks mean. Matplotlib's Agg backend: nothing opens a window.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from ablate.metrics import metric  # noqa: E402
from ablate.variants import BASELINE  # noqa: E402

VERDICT_MARKS = {"better": "▲ better", "worse": "▼ worse", "no clear difference": "n.s."}


def metric_scale(name: str) -> tuple[float, str]:
    """The factor a metric is shown multiplied by (100 for accuracies) and its label."""
    declared = metric(name)
    return declared.scale, declared.label


def variant_colours(variants: list[str]) -> dict[str, tuple]:
    """Grey for the baseline, the colour-blind palette for the rest, stable across a study's figures."""
    palette = iter(sns.color_palette("colorblind", n_colors=max(len(variants), 10)))
    colours = {}
    for variant in variants:
        colour = next(palette)
        colours[variant] = (0.55, 0.55, 0.55) if variant == BASELINE else colour
    return colours


def _save(figure: plt.Figure, path: Path) -> None:
    sns.despine(figure)
    figure.tight_layout()
    figure.savefig(path, dpi=130)
    plt.close(figure)


def bar_chart(summary: pd.DataFrame, runs: pd.DataFrame, study: str, metric: str, path: Path) -> None:
    """Mean per variant (bars), ±1 std (error bars), 95% CI of the mean (black ranges), each seed (dots)."""
    scale, label = metric_scale(metric)
    shown = summary[summary["n"] > 0].reset_index(drop=True)
    colours = variant_colours(list(summary["variant"]))
    figure, axes = plt.subplots(figsize=(max(6.0, 1.25 * len(shown) + 2.5), 5.0))
    x = np.arange(len(shown))
    means = shown["mean"].astype(float) * scale
    stds = shown["std"].astype(float).fillna(0) * scale
    axes.bar(x, means, yerr=stds, color=[colours[v] for v in shown["variant"]], capsize=6, edgecolor="black",
             linewidth=0.6, error_kw={"elinewidth": 1.2, "ecolor": "#333333"}, zorder=2)
    has_ci = shown["ci_low"].notna()
    axes.vlines(x[has_ci] + 0.22, shown["ci_low"][has_ci] * scale, shown["ci_high"][has_ci] * scale,
                color="black", linewidth=3, zorder=3, label="95% CI of the mean")
    for i, variant in enumerate(shown["variant"]):
        seeds = runs[(runs["variant"] == variant) & (runs["status"] == "ok")][metric].astype(float) * scale
        jitter = np.linspace(-0.12, 0.12, len(seeds)) if len(seeds) > 1 else np.zeros(len(seeds))
        axes.scatter(i + jitter, seeds, s=14, color="white", edgecolor="black", linewidth=0.7, zorder=4,
                     label="one seed" if i == 0 else None)
    if BASELINE in set(shown["variant"]):
        base = float(shown.loc[shown["variant"] == BASELINE, "mean"].iloc[0]) * scale
        axes.axhline(base, color="#555555", linestyle="--", linewidth=1, zorder=1, label="baseline mean")
    tops = np.maximum(means + stds, shown["ci_high"].astype(float).fillna(-np.inf) * scale)
    if scale == 100.0:
        tops = np.minimum(tops, 100.0)  # a CI or std may pass 100 %; the axis and labels stop there
    for i, row in shown.iterrows():
        text = f"{means[i]:.2f}" + (f"\n{VERDICT_MARKS[row['verdict']]}" if row["verdict"] in VERDICT_MARKS else "")
        axes.annotate(text, (i, tops[i]), ha="center", va="bottom", fontsize=9, xytext=(0, 4), textcoords="offset points")
    low = float(np.nanmin([(means - stds).min(), shown["ci_low"].astype(float).min() * scale]))
    high = float(np.nanmax(tops))
    margin = max(high - low, 0.5 if scale == 100.0 else 1e-3)
    top = min(high + 0.45 * margin, 110.0) if scale == 100.0 else high + 0.45 * margin
    axes.set_ylim(max(low - 0.35 * margin, 0.0) if scale == 100.0 else low - 0.35 * margin, top)
    axes.set_xticks(x, shown["variant"], rotation=25, ha="right")
    axes.set_ylabel(f"{label}: mean ± 1 std over seeds")
    axes.set_title(f"Study '{study}': {label} per variant\n(grey = baseline; ▲/▼ = Holm-adjusted Welch p < 0.05)", fontsize=11)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    _save(figure, path)


def curves_chart(histories: pd.DataFrame, order: list[str], study: str, path: Path) -> None:
    """Test accuracy and train loss per epoch: the mean over seeds as a line, ±1 std as a band."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
    present = [v for v in order if v in set(histories["variant"])]
    colours = variant_colours(order)
    data = histories.assign(test_acc_pct=histories["test_acc"] * 100)
    for axes, column, label in ((left, "test_acc_pct", "test accuracy (%)"), (right, "train_loss", "train loss")):
        sns.lineplot(data=data, x="epoch", y=column, hue="variant", hue_order=present, palette=colours,
                     errorbar="sd", marker="o", ax=axes, legend=axes is right)
        axes.set_ylabel(label)
        axes.set_xticks(sorted(data["epoch"].unique()))
    left.set_ylim(top=min(left.get_ylim()[1], 100.5))
    right.legend(title="variant", fontsize=8, title_fontsize=9, loc="upper right")
    figure.suptitle(f"Study '{study}': learning curves (line = mean over seeds, band = ±1 std)", fontsize=11)
    _save(figure, path)


def cost_chart(summary: pd.DataFrame, study: str, metric: str, path: Path) -> None:
    """Mean metric (±1 std) against the number of trainable parameters on a log axis: what each change costs and
    buys (every parameter trains, except under transfer learning's frozen parts)."""
    scale, label = metric_scale(metric)
    shown = summary[summary["n"] > 0]
    colours = variant_colours(list(summary["variant"]))
    figure, axes = plt.subplots(figsize=(7.5, 5.0))
    stacked: dict[float, int] = {}  # labels of variants with equal parameter counts go one under the other
    for row in shown.itertuples():
        below = stacked[row.trainable_params] = stacked.get(row.trainable_params, -1) + 1
        axes.errorbar(row.trainable_params, row.mean * scale, yerr=(row.std or 0) * scale, fmt="o", color=colours[row.variant],
                      markersize=8, capsize=4, markeredgecolor="black", zorder=3)
        axes.annotate(row.variant, (row.trainable_params, row.mean * scale), xytext=(7, 5 - 11 * below), textcoords="offset points", fontsize=8)
    axes.set_xscale("log")
    axes.set_xlim(shown["trainable_params"].min() / 1.4, shown["trainable_params"].max() * 1.6)
    thousands = matplotlib.ticker.FuncFormatter(lambda value, _: f"{value / 1e3:,.0f}k" if value < 1e6 else f"{value / 1e6:,.1f}M")
    axes.xaxis.set_major_formatter(thousands)
    axes.xaxis.set_minor_formatter(thousands)
    axes.tick_params(axis="x", which="minor", labelsize=8)
    axes.set_xlabel("trainable parameters (log scale)")
    axes.set_ylabel(f"{label}: mean ± 1 std")
    axes.set_title(f"Study '{study}': {label} against trainable parameters (grey = baseline)", fontsize=11)
    axes.grid(True, which="both", alpha=0.3)
    _save(figure, path)
