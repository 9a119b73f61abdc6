"""`ablate report`: per study, a summary with statistics against the baseline, tables, and pictures.

Reads only what the results store wrote. Failed, diverged and missing runs are counted and listed, never
dropped silently; runs whose settings differ in anything but the swept factor and the seed are refused.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd

from ablate import checkpoint, plots, results
from ablate.config import FACTORS, HEADS, POOLS, TRANSFERS
from ablate.stats import adjust_holm, compare, describe
from ablate.variants import BASELINE

FORMATS = ("md", "csv", "tex")
VALUE_ORDER = {"model.pool": POOLS, "model.head": HEADS, "model.batchnorm": ("false", "true"), "model.transfer": TRANSFERS}
# Settings a run may request as `auto`, each with the metrics.json field that holds what it resolved to: runs are
# compared on the resolved value (train.strategy=auto and =eager pool on the CPU; eager and vectorized never do).
RESOLVED_SETTINGS = {"device": "device", "precision": "precision", "train.strategy": "strategy"}


class ReportError(ValueError):
    """A study that cannot be reported honestly as it stands; the message says why and what to do."""


def _order_key(variant: str, factor: str, value: str) -> tuple:
    """Baseline first, then factors in FACTORS order, then values numerically or in the schema's order."""
    if variant == BASELINE:
        return (0, 0, 0.0, "")
    short = factor.removeprefix("model.")
    factor_rank = FACTORS.index(short) if short in FACTORS else len(FACTORS)
    choices = VALUE_ORDER.get(factor, ())
    try:
        rank = float(choices.index(value)) if choices else float(value)
    except ValueError:
        rank = math.inf
    return (1, factor_rank, rank, variant)


def check_poolable(runs: pd.DataFrame, study: str) -> None:
    """Refuse a study whose runs differ in any setting other than their variant's own factor (and the seed)."""
    ignored = {f"cfg.{key}" for key in (*results.NOT_SETTINGS, *RESOLVED_SETTINGS)}
    settings = [c for c in runs.columns if c.startswith("cfg.") and c not in ignored] + list(RESOLVED_SETTINGS.values())
    baseline = runs[runs["variant"] == BASELINE]
    reference = (baseline if len(baseline) else runs).iloc[0]
    for _, run in runs.iterrows():
        for column in settings:
            if column == f"cfg.{run['factor']}":
                continue
            mine, theirs = run.get(column), reference.get(column)
            if mine != theirs and not (pd.isna(mine) and pd.isna(theirs)):
                name = column.removeprefix("cfg.")
                raise ReportError(
                    f"study {study!r}: runs differ in {name} besides the swept factor "
                    f"({reference['variant']}/seed={reference['seed']}: {theirs}; {run['variant']}/seed={run['seed']}: {mine}), "
                    f"so they cannot be pooled. Train the new setting as its own study (study=NAME) or delete the stale runs."
                )


def _problems(group: pd.DataFrame, planned: set[int], in_progress: set[int]) -> str:
    """Failed, diverged, in-progress (a checkpoint, no metrics.json yet) and missing seeds of one variant, in words."""
    notes = [f"seed {s}: {status}" for s, status in zip(group["seed"], group["status"]) if status != "ok"]
    going = sorted(in_progress - set(group["seed"]))
    if going:
        notes.append(f"in progress: seed{'s' if len(going) > 1 else ''} {', '.join(map(str, going))}")
    missing = sorted(planned - set(group["seed"]) - in_progress)
    if missing:
        notes.append(f"missing seed{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))}")
    return "; ".join(notes)


def _secondary(runs: pd.DataFrame, metric: str) -> dict[str, Optional[float]]:
    """Mean and std of the losses shown beside the main metric."""
    columns = {}
    for name in ("test_loss", "train_loss"):
        if name != metric and name in runs:
            described = describe(runs[name].astype(float).tolist())
            columns[f"{name}_mean"], columns[f"{name}_std"] = described.mean, described.std
    return columns


def _first(group: pd.DataFrame, column: str) -> Optional[int]:
    """A per-variant integer recorded by every run (parameter counts, receptive field); None where not recorded
    (no run, a run from before the column existed, or resnet18's receptive field)."""
    value = group[column].iloc[0] if column in group and len(group) else None
    return None if value is None or pd.isna(value) else int(value)


def summarize(runs: pd.DataFrame, variants: Sequence[str], metric: str = "test_acc",
              in_progress: Optional[dict[str, set[int]]] = None) -> pd.DataFrame:
    """One row per variant, baseline first: n, mean, std, CI, difference to the baseline with Welch and paired tests;
    `in_progress` (variant -> seeds still training) are named as such among the problems, not as missing."""
    if metric not in runs.columns or not pd.api.types.is_numeric_dtype(runs[metric]):
        numeric = sorted(c for c in runs.columns if pd.api.types.is_numeric_dtype(runs[c]) and not c.startswith("cfg."))
        raise ReportError(f"--metric {metric!r} is not recorded in metrics.json; choose one of: {', '.join(numeric)}")
    planned = {int(s) for seeds in runs["planned_seeds"] for s in seeds} if "planned_seeds" in runs else set()
    ok = runs[runs["status"] == "ok"]
    per_seed = {v: dict(zip(g["seed"], g[metric].astype(float))) for v, g in ok.groupby("variant")}
    baseline = per_seed.get(BASELINE, {})
    rows, comparisons = [], []
    for variant in variants:
        group = runs[runs["variant"] == variant]
        comparison = describe(list(per_seed.get(variant, {}).values())) if variant == BASELINE else compare(per_seed.get(variant, {}), baseline)
        comparisons.append(comparison)
        mine = ok[ok["variant"] == variant]
        rows.append({
            "variant": variant,
            "factor": group["factor"].iloc[0] if len(group) else "",
            "value": group["value"].iloc[0] if len(group) else "",
            **{k: v for k, v in asdict(comparison).items() if k != "notes"},
            **_secondary(mine, metric),
            "params": _first(group, "params"),
            "trainable_params": _first(group, "trainable_params") or _first(group, "params"),
            "receptive_field": _first(group, "receptive_field"),
            "train_seconds": mine["train_seconds"].mean() if len(mine) else None,
            "problems": _problems(group, planned, (in_progress or {}).get(variant, set())),
            "notes": "; ".join(comparison.notes),
        })
    adjust_holm(comparisons[1:] if variants and variants[0] == BASELINE else comparisons, higher_is_better=not metric.endswith("loss"))
    for row, comparison in zip(rows, comparisons):
        row["p_holm"], row["verdict"] = comparison.p_holm, ("baseline" if row["variant"] == BASELINE else comparison.verdict)
    return pd.DataFrame(rows)


def _number(value: Optional[float], scale: float = 1.0, digits: int = 2, signed: bool = False) -> str:
    if value is None or pd.isna(value):
        return "–"
    return f"{value * scale:{'+' if signed else ''}.{digits}f}"


def _p(value: Optional[float]) -> str:
    if value is None or pd.isna(value):
        return "–"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def display_table(summary: pd.DataFrame, metric: str, compact: bool = False) -> pd.DataFrame:
    """The summary as a person reads it: percentages, mean ± std, intervals in brackets, '–' where undefined."""
    scale, label = plots.metric_scale(metric)
    def interval(low: Optional[float], high: Optional[float], signed: bool = False) -> str:
        return "–" if low is None or pd.isna(low) else f"[{_number(low, scale, signed=signed)}, {_number(high, scale, signed=signed)}]"
    def mean_std(mean: Optional[float], std: Optional[float], s: float = scale, digits: int = 2) -> str:
        return "–" if mean is None or pd.isna(mean) else _number(mean, s, digits) + ("" if std is None or pd.isna(std) else f" ± {_number(std, s, digits)}")
    table = pd.DataFrame({
        "variant": summary["variant"],
        "n": summary["n"],
        f"{label} mean ± std": [mean_std(m, s) for m, s in zip(summary["mean"], summary["std"])],
        "95% CI": [interval(lo, hi) for lo, hi in zip(summary["ci_low"], summary["ci_high"])],
        "Δ vs baseline [95% CI]": ["–" if pd.isna(d) else f"{_number(d, scale, signed=True)} {interval(lo, hi, signed=True)}"
                                   for d, lo, hi in zip(summary["diff"], summary["diff_ci_low"], summary["diff_ci_high"])],
        "p Welch": [_p(p) for p in summary["p_welch"]],
        "p Holm": [_p(p) for p in summary["p_holm"]],
        "p paired (n)": [f"{_p(p)} ({n})" if not pd.isna(p) else "–" for p, n in zip(summary["p_paired"], summary["n_paired"])],
        "verdict": summary["verdict"],
    })
    counts = {"params": [f"{int(p):,}" if not pd.isna(p) else "–" for p in summary["params"]]}
    if not summary["trainable_params"].equals(summary["params"]):  # transfer learning: not everything trains
        counts["trainable"] = [f"{int(p):,}" if not pd.isna(p) else "–" for p in summary["trainable_params"]]
    if compact:
        return table.drop(columns=["95% CI", "p Welch", "p paired (n)"]).assign(**counts)
    for m in ("test_loss", "train_loss"):
        if f"{m}_mean" in summary:
            table[m] = [mean_std(a, b, 1.0, 4) for a, b in zip(summary[f"{m}_mean"], summary[f"{m}_std"])]
    table = table.assign(**counts)
    table["RF"] = [str(int(r)) if not pd.isna(r) else "–" for r in summary["receptive_field"]]
    table["train s"] = [_number(t, 1.0, 1) for t in summary["train_seconds"]]
    table["failed / missing"] = summary["problems"]
    table["notes"] = summary["notes"]
    return table


def _latex(table: pd.DataFrame) -> str:
    """A booktabs tabular of the display table."""
    text = table.to_latex(index=False, escape=True, column_format="l" + "r" * (len(table.columns) - 1))
    return text.replace("±", r"$\pm$").replace("Δ", r"$\Delta$").replace("–", "--")


def write_study_report(study_dir: Path, out_root: Path, metric: str = "test_acc", formats: Sequence[str] = FORMATS) -> pd.DataFrame:
    """Tables (md, csv, tex as asked) and accuracy.png, curves.png, cost.png for one study under out_root/<study>/."""
    study = study_dir.name
    runs = results.load_runs(study_dir)
    if runs.empty:
        raise ReportError(f"study {study!r} has no whole metrics.json; re-run its command to train the missing runs")
    check_poolable(runs, study)
    order = sorted(results.variant_names(study_dir), key=lambda v: _order_key(v, *_factor_of(runs, v)))
    summary = summarize(runs, order, metric, checkpoint.in_progress(study_dir))
    out = out_root / study
    out.mkdir(parents=True, exist_ok=True)
    table = display_table(summary, metric)
    if "csv" in formats:
        summary.to_csv(out / "summary.csv", index=False)
    if "md" in formats:
        notes = (f"n = finished seeds. Δ = variant − baseline. p Welch: Welch's t-test against the baseline; p Holm: "
                 f"Holm-adjusted across this study's variants; verdict at α = 0.05 after adjustment. "
                 f"p paired: paired t-test over the seeds both share (same data order).")
        (out / "summary.md").write_text(f"# Study `{study}`: {metric}\n\n{table.to_markdown(index=False)}\n\n{notes}\n")
    if "tex" in formats:
        (out / "summary.tex").write_text(_latex(table.drop(columns=["notes", "failed / missing"])))
    plots.bar_chart(summary, runs, study, metric, out / "accuracy.png")
    histories = results.load_histories(runs[runs["status"] == "ok"])
    if len(histories):
        plots.curves_chart(histories, order, study, out / "curves.png")
    plots.cost_chart(summary, study, metric, out / "cost.png")
    return summary


def _factor_of(runs: pd.DataFrame, variant: str) -> tuple[str, str]:
    """(factor, value) a variant's runs recorded; empty for a variant folder with no finished run."""
    rows = runs[runs["variant"] == variant]
    return (rows["factor"].iloc[0], str(rows["value"].iloc[0])) if len(rows) else ("", "")


def write_index(out_root: Path, studies: Sequence[str], metric: str) -> Path:
    """reports/index.md: every study with its table and pictures."""
    sections = ["# ablate reports\n"]
    for study in studies:
        folder = out_root / study
        if not (folder / "summary.md").is_file():
            continue
        body = (folder / "summary.md").read_text().split("\n", 2)[2]
        pictures = "\n".join(f"![{name}]({study}/{name})" for name in ("accuracy.png", "curves.png", "cost.png") if (folder / name).is_file())
        sections.append(f"## [{study}]({study}/summary.md): {metric}\n\n{body}\n{pictures}\n")
    path = out_root / "index.md"
    path.write_text("\n".join(sections))
    return path


def write_reports(paths: Sequence[str], out_root: str = "reports", metric: str = "test_acc", formats: Sequence[str] = FORMATS) -> list[str]:
    """Report every study under `paths`, print each table; raise ReportError at the end if any study was refused."""
    studies = [s for p in paths for s in _studies(Path(p))]
    root, done, refused = Path(out_root), [], []
    for study_dir in studies:
        try:
            summary = write_study_report(study_dir, root, metric, formats)
        except ReportError as error:
            refused.append(str(error))
            print(f"\nStudy {study_dir.name}: not reported: {error}")
            continue
        done.append(study_dir.name)
        print(f"\nStudy {study_dir.name} ({study_dir}): {metric}\n{display_table(summary, metric, compact=True).to_markdown(index=False, tablefmt='simple')}")
        problems = summary[summary["problems"] != ""]
        for row in problems.itertuples():
            print(f"  ! {row.variant}: {row.problems}")
        print(f"  -> {root / study_dir.name}/: summary.{{{','.join(formats)}}}, accuracy.png, curves.png, cost.png")
    if done and "md" in formats:
        print(f"\nAll studies: {write_index(root, done, metric)}")
    if refused:
        raise ReportError(" | ".join(refused))
    return done


def _studies(path: Path) -> list[Path]:
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a folder; give a runs folder (default: runs) or a study folder such as runs/depth")
    found = results.study_dirs(path)
    if not found:
        raise ReportError(f"{path} holds no finished runs; train some first, e.g. ablate run +sweep=depth")
    return found
