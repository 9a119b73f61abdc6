"""`ablate report`: per study, a summary with statistics against the baseline, tables, and pictures.

Reads only what the results store wrote. Failed, diverged, damaged and missing runs are counted and listed, never
dropped silently; runs whose settings differ in anything but the swept factor and the seed are refused. A study's
report is built beside the old one and swapped in whole, so a killed report leaves the old one.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, ClassVar, Mapping, Optional, Sequence

import pandas as pd

from ablate.report import adaptive as adaptive_report
from ablate.report import effects, html, latex, plots, tuning
from ablate.report import variance as variance_report
from ablate.report.metrics import held_out_split
from ablate.report.metrics import metric as declared_metric
from ablate.report.runs import ReportError, StudyRuns, find_studies, in_report_order, name_factors, named_study, stored_runs, tidy
from ablate.report.stats import ALPHA, CI_METHODS, PAIRED, adjust_holm, compare, describe, study_sensitivity
from ablate.store import checkpoints, files, results
from ablate.study.variants import BASELINE, keys_of

FORMATS = ("md", "csv", "tex")
RUNS_FILE = "runs.csv"  # the tidy per-run table, written by every report
PRINTED = ("csv", "json")  # what `ablate report --format` prints the tidy per-run table to stdout as
# (study, its report folder as it stands, the folder the new report is written in) -> sections another command adds,
# which carries its own files over into the new folder
Extras = Callable[[str, Path, Path], Sequence[html.PageSection]]


def no_extras(study: str, old: Path, new: Path) -> Sequence[html.PageSection]:
    """No sections beyond the report's own."""
    return ()


# The least spread (in the metric's raw unit, by display scale) under which no value counts as a far outlier:
# half a percentage point for accuracies.
OUTLIER_SPREAD = {100.0: 0.005, 1.0: 1e-3}
SEVERAL_KEYS = "changes several keys at once: not a one-factor comparison"
# What a summary row of a variance study holds of its stats.Comparison: one group described, nothing compared.
DESCRIBED = ("n", "mean", "std", "ci_low", "ci_high", "ci_method", "ci_confidence")
NOTES = (f"n = finished seeds. Δ = variant − baseline. test: the test the verdict reads: paired (a paired t-test on "
         f"the per-seed differences, where the variant ran exactly the baseline's seeds, which draw the same random "
         f"numbers; its interval, MDE, TOST and seeds needed are the paired design's) or Welch (Welch's t-test, where "
         f"the seeds differ). p Holm: that test's p, Holm-adjusted across this study's variants; verdict at "
         f"α = {ALPHA:g} after adjustment. The intervals of Δ and g are Holm-adjusted: each at the confidence that "
         f"matches its Holm p (1 − α × p / p Holm; 95 % for a single comparison), so Δ's excludes 0 exactly when the "
         f"verdict is better or worse. p Welch: Welch's t-test against the baseline, shown beside it; "
         f"p paired: paired t-test over the seeds both share. "
         f"MDE: the smallest difference this comparison detects with {plots.POWERED} (a smaller true effect usually "
         f"reads 'no clear difference'). g: Hedges' g, the difference in pooled standard deviations. "
         f"TOST p: two one-sided tests (paired or Welch, as the verdict's) that |Δ| < the equivalence margin "
         f"(Holm-adjusted in brackets). "
         f"seeds needed: per variant, for {plots.POWERED} of the test that would decide an open comparison at its Holm "
         f"level (TOST if the observed Δ lies within the margin, else the t-test for the observed Δ); shown only where "
         f"that is more than the seeds already run.")


def _problems(group: pd.DataFrame, planned: set[int], in_progress: set[int], damaged: Mapping[int, str]) -> str:
    """Failed, diverged (with the rule that decided it), damaged (a file that cannot be read, with what is wrong),
    in-progress (a checkpoint, no metrics.json yet) and missing seeds of one variant, in words."""
    rules = group["diverged_by"] if "diverged_by" in group else [None] * len(group)
    notes = [f"seed {s}: {status}" + (f" ({by})" if isinstance(by, str) else "")
             for s, status, by in zip(group["seed"], group["status"], rules) if status != "ok"]
    notes += [f"seed {s}: {what}" for s, what in sorted(damaged.items())]
    going = sorted(in_progress - set(group["seed"]) - set(damaged))
    if going:
        notes.append(f"in progress: seed{'s' if len(going) > 1 else ''} {', '.join(map(str, going))}")
    missing = sorted(planned - set(group["seed"]) - in_progress - set(damaged))
    if missing:
        notes.append(f"missing seed{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))}")
    return "; ".join(notes)


def numeric_runs(runs: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, dict[Path, str]]:
    """The runs whose `metric` is a number (or that did not end ok), and the others by folder, with what is wrong:
    a hand-edited or damaged metrics.json names its run instead of refusing the whole study."""
    if metric not in runs:
        return runs, {}
    number = runs[metric].map(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool))
    bad = (runs["status"] == "ok") & ~number
    reasons = {Path(folder): f"{results.METRICS_FILE}: {metric} is {value!r}, not a number"
               for folder, value in zip(runs.loc[bad, "run_dir"], runs.loc[bad, metric])}
    kept = runs[~bad]
    return kept.assign(**{metric: pd.to_numeric(kept[metric], errors="coerce")}), reasons


def by_variant(damaged: Mapping[Path, str]) -> dict[str, dict[int, str]]:
    """What is wrong in run folders (by folder) as variant -> seed -> what is wrong."""
    found: dict[str, dict[int, str]] = {}
    for folder, reason in damaged.items():
        found.setdefault(results.variant_of(folder.parent), {})[int(folder.name.removeprefix("seed="))] = reason
    return found


def _secondary(runs: pd.DataFrame, metric: str) -> dict[str, Optional[float]]:
    """Mean and std of the losses shown beside the main metric (the validation loss beside val_*, else the test loss)."""
    columns = {}
    for name in (f"{held_out_split(metric)}_loss", "train_loss"):
        if name != metric and name in runs:
            described = describe(runs[name].astype(float).tolist())
            columns[f"{name}_mean"], columns[f"{name}_std"] = described.mean, described.std
    return columns


def _first(group: pd.DataFrame, column: str) -> Optional[int]:
    """A per-variant integer recorded by every run (parameter counts, receptive field); None where not recorded
    (no run, a run from before the column existed, or resnet18's receptive field)."""
    value = group[column].iloc[0] if column in group and len(group) else None
    return None if value is None or pd.isna(value) else int(value)


def summarize(runs: pd.DataFrame, variants: Sequence[str], metric: str = "test_acc", margin: Optional[float] = None,
              ci: str = "t", in_progress: Optional[dict[str, set[int]]] = None,
              damaged: Optional[dict[str, dict[int, str]]] = None) -> pd.DataFrame:
    """One row per variant, baseline first: n, mean, std, CI, difference to the baseline with Welch and paired tests,
    MDE, Hedges' g, and with an equivalence margin (in the metric's unit) TOST (a variance study's rows: its source,
    n, mean, std and CI only, since it has no baseline); `ci` is "t" or "bootstrap";
    `in_progress` (variant -> seeds still training) and `damaged` (variant -> seed -> what is wrong with its files) are
    named as such among the problems, not as missing."""
    try:
        higher_is_better = declared_metric(metric).higher_is_better
    except ValueError as error:
        raise ReportError(str(error)) from None
    if metric not in runs.columns or not pd.api.types.is_numeric_dtype(runs[metric]):
        raise ReportError(f"--metric {metric!r} is not recorded in these runs' metrics.json (it needs data.validation_size "
                          "for val_*); choose test_acc, test_loss, train_acc, train_loss, train_seconds or wall_seconds")
    planned = _planned(runs)
    adaptive = adaptive_report.is_adaptive(runs)  # seeds=auto: each variant planned only its own rounds
    varied = variance_report.is_variance(runs)  # +variance=sources: no baseline, each source's runs described alone
    ok = runs[runs["status"] == "ok"]
    per_seed = {v: dict(zip(g["seed"], g[metric].astype(float))) for v, g in ok.groupby("variant")}
    baseline = per_seed.get(BASELINE, {})
    source_of = {variant: source for source, variant in variance_report.variants(runs).items()} if varied else {}
    comparisons = [describe(list(per_seed.get(v, {}).values()), ci) if v == BASELINE or varied else compare(per_seed.get(v, {}), baseline, margin, ci)
                   for v in variants]
    adjust_holm(comparisons[1:] if variants and variants[0] == BASELINE else comparisons, higher_is_better=higher_is_better)
    rows = []
    for variant, comparison in zip(variants, comparisons):
        group = runs[runs["variant"] == variant]
        mine = ok[ok["variant"] == variant]
        variant_factor = group["factor"].iloc[0] if len(group) else ""
        rows.append({
            "variant": variant,
            **({"source": source_of.get(variant, "")} if varied else {}),
            "factor": variant_factor,
            "value": group["value"].iloc[0] if len(group) else "",
            **{k: v for k, v in asdict(comparison).items() if k not in ("notes", "samples") and (k in DESCRIBED or not varied)},
            **_secondary(mine, metric),
            "params": _first(group, "params"),
            "trainable_params": _first(group, "trainable_params") or _first(group, "params"),
            "receptive_field": _first(group, "receptive_field"),
            "train_seconds": mine["train_seconds"].mean() if len(mine) else None,
            "problems": _problems(group, _planned(group) if adaptive else planned, (in_progress or {}).get(variant, set()),
                                  (damaged or {}).get(variant, {})),
            "notes": "; ".join(comparison.notes + ([SEVERAL_KEYS] if "+" in variant_factor and not varied else [])),
        } | ({"verdict": "baseline"} if variant == BASELINE else {}))
    summary = adaptive_report.apply(pd.DataFrame(rows), runs) if adaptive else pd.DataFrame(rows)
    spread = OUTLIER_SPREAD.get(declared_metric(metric).scale, OUTLIER_SPREAD[1.0])
    summary = summary.assign(mean_off_axis=far_outliers(summary["mean"], summary["n"] > 0, spread))
    return summary if varied else summary.assign(diff_off_axis=far_outliers(summary["diff"], summary["variant"] != BASELINE, spread))


def far_outliers(values: pd.Series, among: pd.Series, spread: float) -> pd.Series:
    """True for the values (of the rows `among`) farther than 8 median absolute deviations (at least `spread`) from
    their median: a diverged variant the pictures name at the axis's edge instead of squashing every other difference."""
    shown = pd.to_numeric(values, errors="coerce")[among].dropna()
    if shown.empty:
        return pd.Series(False, index=values.index)
    centre = float(shown.median())
    deviation = max(float((shown - centre).abs().median()), spread)
    return ((shown - centre).abs() > 8 * deviation).reindex(values.index, fill_value=False)


def curves(histories: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """Per variant and epoch, over seeds: n, mean and std (n - 1) of the held-out accuracy (`acc_*`, `split` = test or
    val) and the train loss (`loss_*`): what the curves chart draws."""
    grouped = histories.groupby(["variant", "epoch"], sort=False)
    return grouped.agg(n=("seed", "size"), acc_mean=(f"{split}_acc", "mean"), acc_std=(f"{split}_acc", "std"),
                       loss_mean=("train_loss", "mean"), loss_std=("train_loss", "std")).reset_index()


def _planned(runs: pd.DataFrame) -> set[int]:
    """The seeds these runs' commands planned."""
    return {int(s) for seeds in runs["planned_seeds"] for s in seeds} if "planned_seeds" in runs else set()


def _number(value: Optional[float], scale: float = 1.0, digits: int = 2, signed: bool = False) -> str:
    if value is None or pd.isna(value):
        return "–"
    return f"{value * scale:{'+' if signed else ''}.{digits}f}"


def _p(value: Optional[float]) -> str:
    if value is None or pd.isna(value):
        return "–"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _unit(metric: str) -> str:
    """The display unit of differences: percentage points for accuracies, none otherwise."""
    return " pt" if plots.metric_scale(metric)[0] == 100.0 else ""


def _seeds(value: Optional[float]) -> str:
    if value is None or pd.isna(value):
        return "–"
    return f"{int(value):,}" if value <= 10_000 else "> 10,000"


def _statistics(summary: pd.DataFrame, metric: str) -> dict[str, list[str]]:
    """The columns that say what the study could have seen: MDE, Hedges' g with its CI, TOST p, seeds needed."""
    scale, unit = plots.metric_scale(metric)[0], _unit(metric)
    columns = {
        "MDE": ["–" if pd.isna(m) else f"±{_number(m, scale)}{unit}" for m in summary["mde"]],
        "g [Holm-adjusted 95% CI]": ["–" if pd.isna(g) else _number(g, signed=True) + ("" if pd.isna(lo) else f" [{_number(lo, signed=True)}, {_number(hi, signed=True)}]")
                       for g, lo, hi in zip(summary["hedges_g"], summary["hedges_g_ci_low"], summary["hedges_g_ci_high"])],
    }
    if summary["margin"].notna().any():
        columns["TOST p (Holm)"] = ["–" if pd.isna(p) else f"{_p(p)} ({_p(h)})" for p, h in zip(summary["p_tost"], summary["p_tost_holm"])]
    columns["seeds needed"] = [_seeds(n) for n in summary["seeds_needed"]]
    return columns


def _verdicts(summary: pd.DataFrame, metric: str) -> list[str]:
    """Verdicts as read: an equivalence names its margin in the display unit."""
    scale, unit = plots.metric_scale(metric)[0], _unit(metric)
    return [f"equivalent (±{_number(m, scale)}{unit})" if v == "equivalent" else v for v, m in zip(summary["verdict"], summary["margin"])]


def sensitivity(summary: pd.DataFrame, runs: pd.DataFrame, metric: str, margin: Optional[float] = None) -> str:
    """One line under a table: the difference a typical comparison of this study can detect, and the seeds a margin
    (or the median observed difference) needs; at ALPHA and POWER (report/stats.py)."""
    scale, unit = plots.metric_scale(metric)[0], _unit(metric)
    ok = runs[runs["status"] == "ok"]
    groups = {v: g[metric].astype(float).tolist() for v, g in ok.groupby("variant")}
    baseline = groups.pop(BASELINE, [])
    if not groups or len(baseline) < 2:
        return "Nothing compared yet: the study needs the baseline and a variant, each with at least 2 finished seeds."
    counts = summary.loc[summary["n"] >= 2, "n"]
    if counts.empty:
        return "Fewer than 2 seeds per variant: no test can detect any difference; train at least 3 seeds."
    n = int(counts.mode().max())
    observed = pd.to_numeric(summary["diff"], errors="coerce").abs().dropna()  # None where nothing was compared
    effect = margin if margin is not None else (float(observed.median()) if len(observed) else None)
    compared = summary[(summary["variant"] != BASELINE) & summary["p_test"].notna()]
    paired = not compared.empty and bool((compared["test"] == PAIRED).all())
    mde, needed = study_sensitivity(baseline, list(groups.values()), n, effect, compared["diff_std"].tolist() if paired else ())
    design = "paired, median std of the per-seed differences" if paired else "median std"
    line = f"With {n} seeds per variant this study can detect ±{_number(mde, scale)}{unit} (α = {ALPHA:g}, {plots.POWERED}, {design})"
    if effect is None:
        return line + "." + _correlation(compared)
    if effect == 0:  # the median variant equals the baseline exactly: no number of seeds detects a difference of 0
        return f"{line}; the median observed |Δ| is 0, which no number of seeds detects." + _correlation(compared)
    what = f"±{_number(effect, scale)}{unit}" if margin is not None else f"the median observed |Δ|, ±{_number(effect, scale)}{unit},"
    return f"{line}; {what} needs {_seeds(needed)} seeds per variant." + _correlation(compared)


def _correlation(compared: pd.DataFrame) -> str:
    """A sentence on how closely seed s of a variant follows seed s of the baseline (Pearson's r of the paired
    comparisons): what the paired test gains over Welch's."""
    r = pd.to_numeric(compared.loc[compared["test"] == PAIRED, "correlation"], errors="coerce").dropna()
    if r.empty:
        return ""
    signed = lambda value: f"{value:+.2f}".replace("-", "−")  # noqa: E731  a minus sign, as in the notes' prose
    spread = f" (from {signed(r.min())} to {signed(r.max())} over {len(r)} paired comparisons)" if len(r) > 1 else ""
    return (f" Seed s of a variant and seed s of the baseline correlate at r = {signed(r.median())}{spread}: with equal "
            "spreads a paired difference varies √(1 − r) times as much as an unpaired one.")


def _delta_ci_name(summary: pd.DataFrame, ci_name: str) -> str:
    """What the interval beside Δ is: the fixed-n one at Holm's multiplicity, or seeds=auto's anytime-valid interval."""
    return "anytime-valid CI" if (summary["ci_method"] == adaptive_report.CI_METHOD).any() else f"Holm-adjusted {ci_name}"


def display_table(summary: pd.DataFrame, metric: str, compact: bool = False) -> pd.DataFrame:
    """The summary as a person reads it: percentages, mean ± std, intervals in brackets, '–' where undefined."""
    scale, label = plots.metric_scale(metric)
    def interval(low: Optional[float], high: Optional[float], signed: bool = False) -> str:
        return "–" if low is None or pd.isna(low) else f"[{_number(low, scale, signed=signed)}, {_number(high, scale, signed=signed)}]"
    def mean_std(mean: Optional[float], std: Optional[float], s: float = scale, digits: int = 2) -> str:
        return "–" if mean is None or pd.isna(mean) else _number(mean, s, digits) + ("" if std is None or pd.isna(std) else f" ± {_number(std, s, digits)}")
    ci_name = "95% CI (BCa bootstrap)" if (summary["ci_method"] == "bootstrap").any() else "95% CI"
    table = pd.DataFrame({
        "variant": summary["variant"],
        "n": summary["n"],
        f"{label} mean ± std": [mean_std(m, s) for m, s in zip(summary["mean"], summary["std"])],
        ci_name: [interval(lo, hi) for lo, hi in zip(summary["ci_low"], summary["ci_high"])],
        f"Δ vs baseline [{_delta_ci_name(summary, ci_name)}]": ["–" if pd.isna(d) else f"{_number(d, scale, signed=True)} {interval(lo, hi, signed=True)}"
                                   for d, lo, hi in zip(summary["diff"], summary["diff_ci_low"], summary["diff_ci_high"])],
        "p Welch": [_p(p) for p in summary["p_welch"]],
        "p Holm": [_p(p) for p in summary["p_holm"]],
        "test": ["–" if pd.isna(p) else (f"{t} ({n})" if t == PAIRED else t) for t, p, n in zip(summary["test"], summary["p_test"], summary["n_paired"])],
        "p paired (n)": [f"{_p(p)} ({n})" if not pd.isna(p) else "–" for p, n in zip(summary["p_paired"], summary["n_paired"])],
        **_statistics(summary, metric),
        "verdict": _verdicts(summary, metric),
    })
    if (summary["ci_method"] == adaptive_report.CI_METHOD).any():
        table = table.drop(columns=list(adaptive_report.FIXED_N_HEADERS), errors="ignore")
    counts = {"params": [f"{int(p):,}" if not pd.isna(p) else "–" for p in summary["params"]]}
    if not summary["trainable_params"].equals(summary["params"]):  # transfer learning: not everything trains
        counts["trainable"] = [f"{int(p):,}" if not pd.isna(p) else "–" for p in summary["trainable_params"]]
    if compact:
        return table.drop(columns=[ci_name, "p Welch", "p paired (n)", "seeds needed"], errors="ignore").assign(**counts)
    for m in (f"{held_out_split(metric)}_loss", "train_loss"):
        if f"{m}_mean" in summary:
            table[m] = [mean_std(a, b, 1.0, 4) for a, b in zip(summary[f"{m}_mean"], summary[f"{m}_std"])]
    table = table.assign(**counts)
    table["RF"] = [str(int(r)) if not pd.isna(r) else "–" for r in summary["receptive_field"]]
    table["train s"] = [_number(t, 1.0, 1) for t in summary["train_seconds"]]
    table["failed / missing"] = summary["problems"]
    table["notes"] = summary["notes"]
    return table


def _latex_comments(study: str, metric: str, line: str, full: bool, tuned: bool) -> list[str]:
    """The % lines above a LaTeX table: what it is, what it needs, what its interval and verdict mean; in a tuned study
    (`tuned`), that it is each variant at the baseline's settings and the table under it each at its own best."""
    other = "summary.tex holds the paper table" if full else "summary-full.tex holds every column"
    return [f"ablate report of study {study}: {metric}{', every column' if full else ''}; {other}.",
            *(["This table: each variant at the baseline's settings; the one under it: each variant at its own best (+tune)."]
              if tuned else []),
            r"Needs \usepackage{booktabs}." + (" Set it landscape (pdflscape) at \\footnotesize: it is a page wide." if full else
                                               " It fits a one-column article's text width."),
            f"Δ = variant − baseline, with the interval its header names; verdict at α = {ALPHA:g} (summary.md's notes say more).",
            line]


def design_effects(runs: pd.DataFrame, metric: str) -> Optional[tuple[effects.TwoLevelRuns, effects.EffectsFit]]:
    """A two-level study's design (`effects.two_level_runs`) and its OLS fit on `metric`; None for any other study."""
    design = effects.two_level_runs(runs, metric, plots.metric_scale(metric)[0])
    return None if design is None else (design, effects.fit_effects(design))


def effects_section(runs: pd.DataFrame, study: str, metric: str, out: Path,
                    formats: Sequence[str]) -> tuple[Optional[effects.EffectsSection], dict[str, str]]:
    """For a study whose runs form a two-level design: its effects (returned; effects.csv if asked), interactions.png
    and half_normal.png in `out` (returned as inline SVG for the page). (None, {}) for any other study."""
    label = plots.metric_scale(metric)[1]
    fitted = design_effects(runs, metric)
    if fitted is None:
        return None, {}
    design, fit = fitted
    if "csv" in formats:
        files.write_atomically(out / "effects.csv", fit.effects.to_csv(index=False))
    figures = {"interactions": plots.write(plots.interaction_chart(effects.interaction_means(design), study, metric), out / "interactions.png"),
               "half_normal": plots.write(plots.half_normal_chart(effects.half_normal_scores(fit.effects), study, metric), out / "half_normal.png")}
    unit = _unit(metric)
    table = pd.DataFrame({
        "effect": fit.effects["term"], "change": fit.effects["change"],
        f"effect{f' ({unit.strip()})' if unit else ''} [Holm-adjusted 95% CI]": [f"{_number(e, signed=True)} [{_number(lo, signed=True)}, {_number(hi, signed=True)}]" if not pd.isna(lo) else _number(e, signed=True)
                                   for e, lo, hi in zip(fit.effects["effect"], fit.effects["ci_low"], fit.effects["ci_high"])],
        "p": [_p(v) for v in fit.effects["p"]], "p Holm": [_p(v) for v in fit.effects["p_holm"]],
        "aliased with": [a or "–" for a in fit.effects["aliases"]],
    })
    residual = (f"{fit.residual_df} residual degrees of freedom" if fit.residual_df else
                "no residual degrees of freedom, so no intervals or tests: train more seeds")
    note = ("Effect: the change in the mean from the first value to the second, averaged over the other factors (twice "
            "the OLS coefficient of ±1 coding); A × B: half the difference between A's effect at B's second value and at "
            "its first. p Holm: Holm-adjusted over these effects; each interval at the confidence that matches its p Holm, "
            f"so it excludes 0 exactly where p Holm < {ALPHA:g}. Aliased effects cannot be told apart by the design: "
            "the estimate is their sum (− : their difference). Pictures: interactions.png, half_normal.png.")
    return effects.EffectsSection(f"Effects on {label}: {fit.design}, OLS on {len(design.coded)} finished runs, {residual}", table, note), figures


def check_options(metric: str, margin: Optional[float], ci: str = "t") -> None:
    """Refuse a metric ablate does not declare, an equivalence margin that is not a positive number, or an unknown
    kind of interval."""
    try:
        declared_metric(metric)
    except ValueError as error:
        raise ReportError(str(error)) from None
    if margin is not None and not (isinstance(margin, (int, float)) and math.isfinite(margin) and margin > 0):
        raise ReportError(f"--equivalence-margin must be a positive number in {plots.metric_scale(metric)[1]} units, got {margin}")
    if ci not in CI_METHODS:
        raise ReportError(f"--ci {ci!r} is not allowed; choose one of: {', '.join(CI_METHODS)}")


def read_study(study_dir: Path, metric: str) -> tuple[pd.DataFrame, pd.DataFrame, dict[Path, str]]:
    """A study's finished runs whose `metric` is a number, the curves of those that ended ok, and what is wrong in
    the other folders, by folder: a damaged record, a metric that is not a number, a history.csv or model.pt that
    cannot be read. ReportError where no run is left."""
    runs, not_numbers = numeric_runs(stored_runs(study_dir), metric)
    damaged = results.damaged_runs(study_dir) | not_numbers
    if runs.empty:
        named = "".join(f"; {folder}/{reason}" for folder, reason in list(damaged.items())[:3])
        raise ReportError(f"study {study_dir.name!r} has no whole metrics.json{named}; re-run its command to train the "
                          "missing runs" + (" (it sets damaged ones aside first)" if damaged else ""))
    unreadable: dict[Path, str] = {}
    histories = results.load_histories(runs[runs["status"] == "ok"], unreadable)
    unreadable |= {Path(folder): why for folder in runs["run_dir"] if (why := results.weights_damage(Path(folder)))}
    notes = {folder: f"damaged ({reason})" for folder, reason in damaged.items()}
    notes |= {folder: f"{reason}; {'its curve is left out' if results.HISTORY_FILE in reason else 'ablate viz cannot read it'}"
              for folder, reason in unreadable.items()}
    return runs, histories, notes


def study_summary(study_dir: Path, metric: str = "test_acc", margin: Optional[float] = None,
                  ci: str = "t") -> tuple[StudyRuns, pd.DataFrame, pd.DataFrame, str]:
    """One study as its report reads it (`read_study`, named and checked to pool), the curves of its ok runs, its
    summary (`summarize`) and the line under its table (`sensitivity`, or a seeds=auto study's note); `margin` is in
    the metric's display unit (percentage points for accuracies)."""
    check_options(metric, margin, ci)
    runs, histories, notes = read_study(study_dir, metric)
    stored = named_study(study_dir, runs)
    runs, scale = stored.runs, plots.metric_scale(metric)[0]
    grid = tuning.grid_keys(runs)  # a tuned study: its final runs at a chosen point have a table of their own
    order = [v for v in stored.order if not grid & set(keys_of(v))] or stored.order
    summary = summarize(runs, order, metric, None if margin is None else margin / scale, ci, checkpoints.in_progress(study_dir),
                        by_variant(notes))
    if adaptive_report.is_adaptive(runs):
        line = adaptive_report.note(runs)
    elif variance_report.is_variance(runs):
        line = variance_report.INTRO
    else:
        line = sensitivity(summary, runs, metric, None if margin is None else margin / scale)
    return stored, histories, summary, line


def write_study_report(study_dir: Path, out_root: Path, metric: str = "test_acc", formats: Sequence[str] = FORMATS, margin: Optional[float] = None,
                       ci: str = "t", extras: Extras = no_extras
                       ) -> tuple[StudyRuns, pd.DataFrame, str, Optional[effects.EffectsSection], Optional[str]]:
    """Tables (md, csv, tex as asked), runs.csv (the tidy per-run table), forest.png, accuracy.png, curves.png,
    cost.png, a two-level design's effects (`effects_section`), a tuned study's second table, tuning.csv and tuning.png
    (`tuned_section`) and the one-file page index.html for one study under out_root/<study>/; returns the study as
    read, its summary, its sensitivity line, the effects section (None for a one-factor study) and the tuned table
    (None for an untuned study); a variance study's own files instead (`_write_variance_files`), its table returned
    in the tuned table's place. `margin` is in the metric's display unit; `extras` adds sections of other commands to
    the page (`ablate lesion`'s)."""
    stored, histories, summary, line = study_summary(study_dir, metric, margin, ci)
    scaled = None if margin is None else margin / plots.metric_scale(metric)[0]
    tuned = tuned_section(study_dir, stored.runs, summary, metric, scaled, ci)
    varied = variance_report.is_variance(stored.runs)
    with files.staging_folder(out_root / stored.name) as out:  # built beside the old report, then swapped in whole
        pages = extras(stored.name, out_root / stored.name, out)
        if varied:
            section, more = None, _write_variance_files(out, stored, summary, metric, formats, pages)
        else:
            section = _write_study_files(out, stored, histories, summary, line, metric, formats, margin, pages,
                                         bool(tuning.grid_keys(stored.runs)), tuned)
            more = tuned.markdown(metric) if tuned else None
        files.replace_folder(out, out_root / stored.name)
    return stored, summary, line, section, more


def variance_tables(runs: pd.DataFrame, summary: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """A variance study's variance.csv, its table for people (with each source's mean and problems from `summary`)
    and the sentence on the parts against the whole."""
    found = variance_report.table(runs, metric)
    check = variance_report.additivity(found)
    return found, variance_report.display(found, summary, variance_report.variants(runs), metric), check.sentence if check else variance_report.NO_CHECK


def _write_variance_files(out: Path, stored: StudyRuns, summary: pd.DataFrame, metric: str, formats: Sequence[str],
                          extras: Sequence[html.PageSection]) -> str:
    """Every file of a variance study's report (+variance=sources) into `out`: variance.csv, runs.csv, the tables asked
    for (each source's n, mean, std with its interval, share; summary.csv's rows compare nothing), variance.png and
    the page; returns the table with its notes as summary.md holds it, for the console."""
    study, runs = stored.name, stored.runs
    found, shown, note = variance_tables(runs, summary, metric)
    files.write_atomically(out / "variance.csv", found.to_csv(index=False))
    files.write_atomically(out / RUNS_FILE, tidy(stored).to_csv(index=False))
    aligned = ["left" if column in ("source", "failed / missing") else "right" for column in shown.columns]
    text = f"{shown.to_markdown(index=False, disable_numparse=True, colalign=aligned)}\n\n{variance_report.INTRO}\n\n{note}\n"
    if "md" in formats:
        files.write_atomically(out / "summary.md", f"# Study `{study}`: {metric}, variance by source\n\n{text}")
    if "csv" in formats:
        files.write_atomically(out / "summary.csv", summary.to_csv(index=False))
    if "tex" in formats:
        comments = [f"ablate report of variance study {study}: {metric}, each source's std with its {variance_report.CI_METHOD}.",
                    r"Needs \usepackage{booktabs}.", note]
        files.write_atomically(out / "summary.tex", latex.tabular(shown.drop(columns=["failed / missing"]), comments))
        files.write_atomically(out / "summary-full.tex", latex.tabular(shown, comments))
    chart = plots.write(plots.variance_chart(found, study, metric, variance_report.CI_METHOD), out / "variance.png")
    files.write_atomically(out / "index.html", html.variance_page(study, metric, shown, runs, note, chart, extras))
    return text


def _write_study_files(out: Path, stored: StudyRuns, histories: pd.DataFrame, summary: pd.DataFrame, line: str,
                       metric: str, formats: Sequence[str], margin: Optional[float],
                       extras: Sequence[html.PageSection] = (), tuned_study: bool = False,
                       tuned: Optional[TunedSection] = None) -> Optional[effects.EffectsSection]:
    """Every file of one study's report, into the folder `out`, with the `extras` on its page; returns the effects
    section of a two-level design (never read from a tuned study (`tuned_study`), whose variants change several
    keys by design)."""
    study, runs = stored.name, stored.runs
    table = display_table(summary, metric)
    section, effect_figures = (None, {}) if tuned_study else effects_section(runs, study, metric, out, formats)
    files.write_atomically(out / RUNS_FILE, tidy(stored).to_csv(index=False))
    if "csv" in formats:
        files.write_atomically(out / "summary.csv", summary.to_csv(index=False))
        if tuned:
            files.write_atomically(out / "tuning.csv", tuned.tuning.rows.to_csv(index=False))
    if "md" in formats:
        files.write_atomically(out / "summary.md", f"# Study `{study}`: {metric}\n\n{table.to_markdown(index=False)}\n\n{line}\n\n{NOTES}\n"
                               + (f"\n{section.markdown()}" if section else "") + (f"\n{tuned.markdown(metric)}" if tuned else ""))
    if "tex" in formats:  # a tuned study's table at each variant's own best under the main one, in both files
        label = plots.metric_scale(metric)[1]
        paper = [latex.tabular(latex.paper_table(table, label), _latex_comments(study, metric, line, False, bool(tuned)))]
        full = [latex.full_tables(table.drop(columns=["notes", "failed / missing"]), _latex_comments(study, metric, line, True, bool(tuned)))]
        if tuned:
            compact = tuned.table.drop(columns=list(TunedSection.NOT_IN_PAPER), errors="ignore")  # so it fits a column too
            paper.append(latex.tabular(latex.paper_table(compact, label), tuned.latex_comments(metric, full=False)))
            full.append(latex.full_tables(tuned.table, tuned.latex_comments(metric, full=True)))
        files.write_atomically(out / "summary.tex", latex.stacked(paper))
        files.write_atomically(out / "summary-full.tex", latex.stacked(full))
    figures = {"forest": plots.write(plots.forest_chart(summary, study, metric, margin), out / "forest.png"),
               "accuracy": plots.write(plots.bar_chart(summary, runs, study, metric), out / "accuracy.png")}
    if len(histories):
        figures["curves"] = plots.write(plots.curves_chart(curves(histories, held_out_split(metric)), summary, study, held_out_split(metric)),
                                        out / "curves.png")
    figures["cost"] = plots.write(plots.cost_chart(summary, study, metric), out / "cost.png")
    pages = [*extras, tuned.page_section(study, metric, out)] if tuned else extras
    files.write_atomically(out / "index.html", html.study_page(study, metric, summary, table, runs, line, figures | effect_figures, NOTES, section,
                                                               pages))
    return section


def notebook_html(study_dir: Path, metric: str = "test_acc") -> str:
    """A study's summary table and forest plot as the page draws them (`html.study_fragment`; a variance study's table
    and chart, `html.variance_fragment`): what a notebook shows."""
    stored, _, summary, line = study_summary(study_dir, metric)
    if variance_report.is_variance(stored.runs):
        found, shown, note = variance_tables(stored.runs, summary, metric)
        chart = plots.write(plots.variance_chart(found, stored.name, metric, variance_report.CI_METHOD))
        return html.variance_fragment(stored.name, metric, shown, note, chart)
    forest = plots.write(plots.forest_chart(summary, stored.name, metric, None))
    return html.study_fragment(stored.name, metric, summary, display_table(summary, metric), line, {"forest": forest}, NOTES)


@dataclass(frozen=True)
class TunedSection:
    """A tuned study's (+tune) second table: what tuning chose (`tuning.Tuning`), each variant's summary at its own
    best, that table as shown (chosen values, verdict changed) and the grid-edge notes."""

    NOT_IN_PAPER: ClassVar[tuple[str, ...]] = ("p Holm", "params", "trainable")
    """Left out of summary.tex's copy, so it fits a column: the interval and verdict say what p Holm does, the table
    above holds the parameters, summary-full.tex both."""

    tuning: tuning.Tuning
    at_best: pd.DataFrame
    table: pd.DataFrame
    notes: list[str]

    def markdown(self, metric: str) -> str:
        """The table and its notes as summary.md and the console show them."""
        return "\n".join([f"## Each variant at its own best ({metric})", "", self.table.to_markdown(index=False), "",
                          *self.notes]).rstrip() + "\n"

    def intro(self, metric: str, above: str) -> str:
        """What this table is, beside the one `above` (the summary, or the table above)."""
        return (f"{above} is each variant at the baseline's settings; here each variant trained at the grid point its own "
                f"tuning runs chose, and {metric} is measured on the study's seeds.")

    def page_section(self, study: str, metric: str, out: Path) -> html.PageSection:
        """The page's section: the tuning curves (also tuning.png under `out`), the table, the grid-edge notes."""
        chart = plots.tuning_chart(self.tuning.rows, self.tuning.seeds, self.at_best, study, self.tuning.metric)
        caption = (f"Tuning curves: each variant's mean {self.tuning.metric} over its tuning seeds (line) at every grid point, "
                   "each tuning seed (dot), the point chosen (ring); the study's seeds then trained there.")
        return html.PageSection("tuning", "Each variant at its own best (+tune)", self.intro(metric, "The summary above"),
                                [(plots.write(chart, out / "tuning.png"), caption)],
                                [("Each variant at its own best; verdict changed: where it differs from the summary's.", self.table)],
                                " ".join(self.notes) or "Every choice lies inside its grid.")

    def latex_comments(self, metric: str, full: bool) -> list[str]:
        """The % lines above this table in summary-full.tex (`full`) or summary.tex: what it is, its grid-edge notes."""
        left_out = "" if full else " p Holm and the parameters: in summary-full.tex."
        return [f"Each variant at its own best (+tune), {metric}. {self.intro(metric, 'The table above')}",
                f"chosen: the grid point each variant's tuning runs chose; Δ against the baseline at its own best.{left_out}",
                "verdict changed: the verdict at the baseline's settings -> this table's, where they differ.", *self.notes]


def tuned_section(study_dir: Path, runs: pd.DataFrame, summary: pd.DataFrame, metric: str, margin: Optional[float],
                  ci: str) -> Optional[TunedSection]:
    """A tuned study's (+tune) second table: each variant at its own best point (its final runs), with the chosen
    values and every verdict that differs from the same variant's at the baseline's settings; and what tuning chose
    (tuning.csv's rows, the curves' seeds). None for a study that was not tuned."""
    tuned = tuning.load(study_dir)
    if tuned is None:
        return None
    arm_of = {final: arm for arm, final in tuned.final_of.items()}
    finals = name_factors(runs[runs["variant"].isin(arm_of)].assign(variant=lambda r: r["variant"].map(arm_of)))
    if finals.empty:
        return None
    arms = in_report_order(set(finals["variant"]), finals)
    at_best = summarize(finals, arms, metric, margin, ci)
    table = display_table(at_best, metric, compact=True)
    table.insert(1, "chosen", [tuned.chosen[arm] for arm in at_best["variant"]])
    table["verdict changed"] = tuning.verdict_changes(at_best, summary)
    notes = [f"`{arm}`: its best point ({tuned.chosen[arm]}) is at the edge of the grid; widen the grid" for arm in tuned.edges]
    return TunedSection(tuned, at_best, table, notes)


def write_index(out_root: Path, studies: Sequence[str], metric: str) -> Path:
    """reports/index.md: every study with its table and pictures."""
    sections = ["# ablate reports\n"]
    for study in studies:
        folder = out_root / study
        if not (folder / "summary.md").is_file():
            continue
        body = (folder / "summary.md").read_text().split("\n", 2)[2]
        pictures = "\n".join(f"![{name}]({study}/{name})" for name in ("variance.png", "forest.png", "accuracy.png", "curves.png", "cost.png", "interactions.png", "half_normal.png", "tuning.png") if (folder / name).is_file())
        sections.append(f"## [{study}]({study}/summary.md): {metric}\n\n{body}\n{pictures}\n")
    return files.write_atomically(out_root / "index.md", "\n".join(sections))


def write_reports(paths: Sequence[str], out_root: str = "reports", metric: str = "test_acc", formats: Sequence[str] = FORMATS,
                  margin: Optional[float] = None, ci: str = "t", extras: Extras = no_extras) -> list[StudyRuns]:
    """Report every study under `paths`, print each table, return the studies reported; raise ReportError at the end if
    any study was refused. `margin`: the equivalence margin in the metric's display unit (percentage points for accuracies)."""
    check_options(metric, margin, ci)
    studies = [s for p in paths for s in find_studies(p)]
    root, reported, refused, links = Path(out_root), [], [], []
    for study_dir in studies:
        try:
            stored, summary, line, section, more = write_study_report(study_dir, root, metric, formats, margin, ci, extras)
        except ReportError as error:
            refused.append(str(error))
            print(f"\nStudy {study_dir.name}: not reported: {error}")
            continue
        reported.append(stored)
        links.append(html.StudyLink(study_dir.name, len(summary), int(summary["n"].sum()), metric, line))
        varied = variance_report.is_variance(stored.runs)
        if varied:  # no baseline: each source's spread is the table
            print(f"\nStudy {study_dir.name} ({study_dir}): {metric}, variance by source\n{more}")
        else:
            _print_comparisons(study_dir, summary, line, metric, section, more)
        print(f"  -> {root / study_dir.name}/: {', '.join(written_files(formats, section, bool(more) and not varied, varied))}")
    done = [stored.name for stored in reported]
    if done:
        pages = [write_index(root, done, metric)] if "md" in formats else []
        print(f"\nAll studies: {', '.join(map(str, pages + [html.write_index(root, links)]))}")
        for name in done:
            print(f"The page of study {name}, one file to open or send: {root / name / 'index.html'}")
    orphans, runs_folders = orphaned_reports(root, studies), ", ".join(sorted({str(s.parent) for s in studies}))
    if orphans:
        print(f"\nReports of studies no longer in {runs_folders} (kept; delete those you no longer want): {', '.join(map(str, orphans))}")
    if refused:
        raise ReportError(" | ".join(refused))
    return reported


def _print_comparisons(study_dir: Path, summary: pd.DataFrame, line: str, metric: str,
                       section: Optional[effects.EffectsSection], tuned: Optional[str]) -> None:
    """The console's report of a study with a baseline: its table, the line under it, each variant's problems, a
    two-level design's effects and a tuned study's second table."""
    print(f"\nStudy {study_dir.name} ({study_dir}): {metric}\n{display_table(summary, metric, compact=True).to_markdown(index=False, tablefmt='simple')}\n  {line}")
    for row in summary[summary["problems"] != ""].itertuples():
        print(f"  ! {row.variant}: {row.problems}")
    if not section:  # in a two-level design every point changes several keys by design
        for row in summary[summary["factor"].str.contains("+", regex=False)].itertuples():
            print(f"  ! {row.variant}: {SEVERAL_KEYS}")
    if section:
        print(f"\n{section.title}\n{section.markdown_table()}\n")
    if tuned:
        print(f"\n{tuned}")


def written_files(formats: Sequence[str], section: Optional[effects.EffectsSection], tuned: bool, varied: bool) -> list[str]:
    """The files a study's report writes, as the console lists them: a variance study's own, or the comparison's
    pictures with a two-level design's and a tuned study's."""
    if varied:
        return [*table_files(formats), RUNS_FILE, "variance.csv", "variance.png", "index.html"]
    return [*table_files(formats), RUNS_FILE, "forest.png", "accuracy.png", "curves.png", "cost.png",
            *(["effects.csv", "interactions.png", "half_normal.png"] if section else []),
            *((["tuning.csv"] if "csv" in formats else []) + ["tuning.png"] if tuned else []), "index.html"]


def table_files(formats: Sequence[str]) -> list[str]:
    """The table files a report writes for these formats, in FORMATS' order (tex: the paper table and the full one)."""
    names = {"md": ["summary.md"], "csv": ["summary.csv"], "tex": ["summary.tex", "summary-full.tex"]}
    return [name for form in FORMATS if form in formats for name in names[form]]


def orphaned_reports(out_root: Path, studies: Sequence[Path]) -> list[Path]:
    """Report folders under out_root whose study is in none of the runs folders the reported studies are in (its runs
    were deleted or moved): never deleted, since the report may be all that is left of that study, only named."""
    roots = {study.parent for study in studies}
    reports = sorted(f for f in out_root.iterdir() if not f.name.startswith(".") and (f / "index.html").is_file()) if out_root.is_dir() else []
    return [f for f in reports if not any((r / f.name).is_dir() for r in roots)]


def print_runs(studies: Sequence[StudyRuns], form: str) -> None:
    """The tidy per-run table of the studies (`runs.tidy`, as runs.csv holds it) on stdout as CSV, or as a JSON array
    of one object per run, so it pipes into other tools."""
    table = pd.concat([tidy(stored) for stored in studies], ignore_index=True)
    if form == "csv":
        print(table.to_csv(index=False), end="")
        return
    records = table.astype(object).where(table.notna(), None).to_dict(orient="records")  # missing values as null
    print(json.dumps(records, ensure_ascii=False, default=lambda value: value.item()))  # numpy scalars as numbers
