"""The report of a seeds=auto study: each comparison's anytime-valid interval and decision, as the run loop judged
them (ablate/study/adaptive.py, on the same stored runs), in place of the fixed-n tests, which optional stopping
would make wrong."""

from __future__ import annotations

import math
from typing import Optional

import pandas as pd

from ablate.config import AdaptiveConfig
from ablate.study.adaptive import PERCENT, judge_stored
from ablate.study.variants import BASELINE

# The fixed-n columns that do not hold once seeds were added where a comparison was still open, and their headers.
FIXED_N = ("p_welch", "p_holm", "n_paired", "p_paired", "p_test", "mde", "hedges_g", "hedges_g_ci_low", "hedges_g_ci_high",
           "margin", "p_tost", "p_tost_holm", "seeds_needed")
FIXED_N_HEADERS = ("p Welch", "p Holm", "test", "p paired (n)", "MDE", "g [95% CI]", "TOST p (Holm)", "seeds needed")
CI_METHOD = "anytime"


def is_adaptive(runs: pd.DataFrame) -> bool:
    """Whether a study's runs were trained by seeds=auto (their metrics.json says so)."""
    return "adaptive" in runs and bool(runs["adaptive"].fillna(False).astype(bool).any())


def settings_of(runs: pd.DataFrame) -> AdaptiveConfig:
    """The adaptive settings of the study's latest command (its last finished run's config.yaml): a study may be
    continued with another budget, and the last budget is the one that decides what stays inconclusive."""
    first = runs.sort_values("finished_at", ascending=False, kind="stable").iloc[0]
    return AdaptiveConfig(**{key: first[f"cfg.adaptive.{key}"] for key in ("budget", "batch", "margin", "alpha", "metric")})


def _finite(value: float) -> Optional[float]:
    return value if math.isfinite(value) else None


def apply(summary: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The summary with each comparison's paired mean difference, anytime-valid interval and decision (on the
    study's adaptive metric); the fixed-n test columns left empty."""
    settings = settings_of(runs)
    seeds = {v: sorted(g["seed"].astype(int)) for v, g in runs.groupby("variant")}
    ok = runs[runs["status"] == "ok"]
    values = {v: dict(zip(g["seed"].astype(int), g[settings.metric].astype(float))) for v, g in ok.groupby("variant")}
    comparisons = [v for v in summary["variant"] if v != BASELINE]
    out = summary.copy()
    for column in FIXED_N:
        out[column] = None
    for index, row in out.iterrows():
        if row["variant"] == BASELINE:
            continue
        name = row["variant"]
        judged, _ = judge_stored(seeds.get(name, []), values.get(name, {}), seeds.get(BASELINE, []), values.get(BASELINE, {}),
                                 settings, len(comparisons))
        differences = [values[name][s] - values[BASELINE][s] for s in judged.seeds]
        out.loc[index, "diff"] = sum(differences) / len(differences) if differences else None
        out.loc[index, "diff_ci_low"], out.loc[index, "diff_ci_high"] = _finite(judged.low), _finite(judged.high)
        out.loc[index, "n_paired"] = len(judged.seeds)
        out.loc[index, "margin"] = settings.margin / PERCENT
        out.loc[index, "ci_method"] = CI_METHOD
        out.loc[index, "verdict"] = judged.decision
    return out


def note(runs: pd.DataFrame) -> str:
    """The line under an adaptive study's table: its settings, and what the interval and decisions mean."""
    s = settings_of(runs)
    return (f"seeds=auto (budget {s.budget}, rounds of {s.batch}, margin ±{s.margin:g} pt, α = {s.alpha:g} over the "
            f"study): Δ and its interval are paired (variant − baseline per seed) on {s.metric}, over the seeds judged; "
            f"the intervals are anytime-valid and hold together with probability {1 - s.alpha:g}; better/worse: the "
            f"interval excludes 0; equivalent: it lies within ±{s.margin:g} pt; open or inconclusive: neither. "
            f"Fixed-n tests (Welch, TOST, seeds needed) are not shown: seeds were added where a comparison was open.")
