"""Turns a study's runs into a summary table (terminal, CSV, Markdown) and a bar chart with error bars.

Reads only what the results store wrote. Failed, diverged and missing runs are counted, never dropped silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from ablate import results  # noqa: E402
from ablate.config import FACTORS, HEADS, POOLS  # noqa: E402
from ablate.variants import BASELINE  # noqa: E402

VALUE_ORDER = {"model.pool": POOLS, "model.head": HEADS, "model.batchnorm": ("false", "true")}


def _order_key(variant: str, factor: str, value: str) -> tuple:
    """Baseline first, then factors in FACTORS order, then values numerically or in the schema's order."""
    if variant == BASELINE:
        return (0, 0, 0.0, "")
    short = factor.removeprefix("model.")
    factor_rank = FACTORS.index(short) if short in FACTORS else len(FACTORS)
    choices = VALUE_ORDER.get(factor, ())
    try:
        rank = float(value) if not choices else float(choices.index(value))
    except ValueError:
        rank = float("inf")
    return (1, factor_rank, rank, variant)


def summarize(runs: pd.DataFrame, metric: str = "test_acc") -> pd.DataFrame:
    """One row per variant: n finished seeds, mean and std of `metric`, parameters, receptive field, failures."""
    rows = []
    for variant, group in runs.groupby("variant"):
        ok = group[group["status"] == "ok"]
        values = ok[metric] if metric in ok else pd.Series(dtype=float)
        rows.append({
            "variant": variant,
            "factor": group["factor"].iloc[0] or "",
            "value": group["value"].iloc[0] or "",
            "n": len(values),
            "mean": values.mean() if len(values) else None,
            "std": values.std(ddof=1) if len(values) >= 2 else None,
            "params": int(group["params"].iloc[0]),
            "receptive_field": int(group["receptive_field"].iloc[0]),
            "train_seconds": ok["train_seconds"].mean() if len(ok) else None,
            "not_ok": ", ".join(f"seed {s}: {st}" for s, st in zip(group["seed"], group["status"]) if st != "ok"),
        })
    table = pd.DataFrame(rows)
    table["_order"] = [_order_key(r.variant, r.factor, r.value) for r in table.itertuples()]
    return table.sort_values("_order").drop(columns="_order").reset_index(drop=True)


def _format_mean_std(mean: float | None, std: float | None, scale: float) -> str:
    if mean is None or pd.isna(mean):
        return "n/a"
    if std is None or pd.isna(std):
        return f"{mean * scale:.2f} (one seed)"
    return f"{mean * scale:.2f} ± {std * scale:.2f}"


def display_table(summary: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The summary as a person reads it: accuracy in percent, mean ± std, thousands separators."""
    scale = 100.0 if metric.endswith("acc") else 1.0
    label = f"{metric} (%)" if scale == 100.0 else metric
    return pd.DataFrame({
        "variant": summary["variant"],
        "n": summary["n"],
        f"{label} mean ± std": [_format_mean_std(m, s, scale) for m, s in zip(summary["mean"], summary["std"])],
        "params": [f"{p:,}" for p in summary["params"]],
        "RF": summary["receptive_field"],
        "train s": [f"{t:.1f}" if t is not None and not pd.isna(t) else "n/a" for t in summary["train_seconds"]],
        "failed": [x or "" for x in summary["not_ok"]],
    })


def bar_chart(summary: pd.DataFrame, study: str, metric: str, path: Path) -> None:
    """One bar per variant with std error bars; the baseline in its own colour."""
    scale = 100.0 if metric.endswith("acc") else 1.0
    shown = summary[summary["n"] > 0]
    palette = sns.color_palette("colorblind")
    colours = [palette[7] if v == BASELINE else palette[0] for v in shown["variant"]]
    figure, axes = plt.subplots(figsize=(max(5.0, 1.1 * len(shown) + 2), 4.5))
    means = shown["mean"].astype(float) * scale
    errors = shown["std"].astype(float).fillna(0) * scale
    axes.bar(range(len(shown)), means, yerr=errors, color=colours, capsize=4, edgecolor="black", linewidth=0.6)
    for x, (m, e) in enumerate(zip(means, errors)):
        axes.annotate(f"{m:.2f}", (x, m + e), ha="center", va="bottom", fontsize=9, xytext=(0, 3), textcoords="offset points")
    axes.set_xticks(range(len(shown)), shown["variant"], rotation=30, ha="right")
    low = (means - errors).min()
    high = (means + errors).max()
    margin = max(high - low, 0.5) * 0.6
    axes.set_ylim(max(low - margin, 0), high + margin)
    axes.set_ylabel(f"{metric}{' (%)' if scale == 100.0 else ''}, mean ± std over seeds")
    axes.set_title(f"Study '{study}': {metric} per variant (grey = baseline)")
    sns.despine(figure)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_study_report(study_dir: Path, out_root: Path, metric: str = "test_acc") -> pd.DataFrame:
    """summary.csv, summary.md and accuracy.png of one study under out_root/<study>/; returns the display table."""
    runs = results.load_runs(study_dir)
    summary = summarize(runs, metric)
    out = out_root / study_dir.name
    out.mkdir(parents=True, exist_ok=True)
    summary.to_csv(out / "summary.csv", index=False)
    table = display_table(summary, metric)
    (out / "summary.md").write_text(f"# Study `{study_dir.name}`\n\n{table.to_markdown(index=False)}\n")
    bar_chart(summary, study_dir.name, metric, out / "accuracy.png")
    return table


def write_reports(paths: Sequence[str], out_root: str = "reports", metric: str = "test_acc") -> list[Path]:
    """Report every study found under `paths`; prints each table and where its files went."""
    studies = [s for p in paths for s in _studies(Path(p))]
    written = []
    for study_dir in studies:
        table = write_study_report(study_dir, Path(out_root), metric)
        print(f"\nStudy {study_dir.name} ({study_dir})\n{table.to_markdown(index=False, tablefmt='simple')}")
        print(f"-> {Path(out_root) / study_dir.name}/summary.csv, summary.md, accuracy.png")
        written.append(Path(out_root) / study_dir.name)
    return written


def _studies(path: Path) -> list[Path]:
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a folder; give a runs folder (default: runs) or a study folder such as runs/depth")
    found = results.study_dirs(path)
    if not found:
        raise ValueError(f"{path} holds no finished runs; train some first: ablate run +sweep=depth")
    return found
