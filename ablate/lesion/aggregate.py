"""A study's lesions across seeds and variants, as pure functions of lesion.csv and lesion_units.csv's frames.

Curves: per variant, layer, order (random: the mean of its random orders within a run; importance) and fraction, the
mean over seeds with its 95 % t interval. AUC: the area under a run's accuracy curve over the fraction zeroed (the
trapezoid rule), compared with the baseline's by a paired t-test over the seeds both have, Holm-adjusted over every
comparison of the study. Top units: the single units whose loss costs the most accuracy, with the classes they cost.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from ablate.report.stats import ALPHA, describe
from ablate.study.variants import BASELINE

KEYS = ["variant", "layer", "kind"]


def _kind(order: pd.Series) -> pd.Series:
    return order.where(order == "importance", "random")


def per_seed_curves(frame: pd.DataFrame) -> pd.DataFrame:
    """Each run's cumulative curves, its random orders averaged: variant, seed, layer, kind, fraction, test_acc, test_loss."""
    curves = frame[frame["mode"] == "cumulative"].assign(kind=lambda f: _kind(f["order"]))
    return curves.groupby(["variant", "seed", "layer", "kind", "fraction"], as_index=False, sort=False)[["test_acc", "test_loss"]].mean()


def curve_bands(frame: pd.DataFrame) -> pd.DataFrame:
    """Per variant, layer, kind and fraction: seeds n, mean accuracy and its 95 % interval over seeds."""
    rows = []
    for (variant, layer, kind, fraction), group in per_seed_curves(frame).groupby([*KEYS, "fraction"], sort=False):
        found = describe(group["test_acc"].tolist())
        rows.append({"variant": variant, "layer": layer, "kind": kind, "fraction": fraction, "n": found.n, "mean": found.mean,
                     "ci_low": found.ci_low if found.ci_low is not None else found.mean,
                     "ci_high": found.ci_high if found.ci_high is not None else found.mean})
    return pd.DataFrame(rows)


def aucs(frame: pd.DataFrame) -> pd.DataFrame:
    """Each run's area under its accuracy curve (accuracy × fraction zeroed, 0 to 1): variant, seed, layer, kind, auc."""
    curves = per_seed_curves(frame).sort_values("fraction")
    return (curves.groupby(["variant", "seed", "layer", "kind"], sort=False)
            .apply(lambda g: float(np.trapezoid(g["test_acc"], g["fraction"])), include_groups=False)
            .rename("auc").reset_index())


def auc_tests(frame: pd.DataFrame) -> pd.DataFrame:
    """Per variant, layer and kind: n, mean AUC with its 95 % interval, and against the baseline's runs of the same
    seeds the mean paired difference, its p (paired t-test) and p Holm over every comparison here."""
    runs = aucs(frame)
    baseline = runs[runs["variant"] == BASELINE].set_index(["layer", "kind", "seed"])["auc"]
    rows = []
    for (variant, layer, kind), group in runs.groupby(KEYS, sort=False):
        found = describe(group["auc"].tolist())
        row = {"variant": variant, "layer": layer, "kind": kind, "n": found.n, "auc": found.mean, "ci_low": found.ci_low,
               "ci_high": found.ci_high, "diff": None, "p": None}
        paired = [(auc, baseline[(layer, kind, seed)]) for seed, auc in zip(group["seed"], group["auc"]) if (layer, kind, seed) in baseline]
        if variant != BASELINE and len(paired) >= 2:
            ours, theirs = np.array(paired).T
            row["diff"] = float((ours - theirs).mean())
            pvalue = stats.ttest_rel(ours, theirs).pvalue
            row["p"] = None if np.isnan(pvalue) else float(pvalue)
        rows.append(row)
    layers = list(dict.fromkeys(frame["layer"]))
    table = pd.DataFrame(rows)
    table = table.sort_values(["variant", "layer", "kind"], key=lambda c: c.map(
        {"variant": lambda v: (v != BASELINE, v), "layer": layers.index, "kind": ["random", "importance"].index}[c.name])).reset_index(drop=True)
    tested = table["p"].notna()
    table["p_holm"] = None
    if tested.any():
        table.loc[tested, "p_holm"] = multipletests(table.loc[tested, "p"].astype(float), alpha=ALPHA, method="holm")[1]
    return table


def intact(frame: pd.DataFrame) -> pd.DataFrame:
    """Each run's intact accuracy and loss (fraction 0 of its curves): variant, seed, test_acc, test_loss."""
    zero = frame[(frame["mode"] == "cumulative") & (frame["fraction"] == 0)]
    return zero.groupby(["variant", "seed"], as_index=False, sort=False)[["test_acc", "test_loss"]].first()


def whole_layers(frame: pd.DataFrame) -> pd.DataFrame:
    """Per variant and layer: how the block was removed (identity or zero), seeds, mean accuracy and its drop."""
    whole = frame[frame["mode"] == "whole"].merge(intact(frame), on=["variant", "seed"], suffixes=("", "_intact"))
    whole = whole.assign(drop=whole["test_acc_intact"] - whole["test_acc"])
    return (whole.groupby(["variant", "layer", "order"], as_index=False, sort=False)
            .agg(n=("seed", "size"), test_acc=("test_acc", "mean"), drop=("drop", "mean")).rename(columns={"order": "how"}))


def top_units(frame: pd.DataFrame, units: pd.DataFrame, per_layer: int = 3, classes: int = 3) -> pd.DataFrame:
    """Per variant and layer the `per_layer` single units (of any seed) whose loss costs the most accuracy, each with
    its accuracy drop, loss rise and the `classes` classes it costs most (their accuracy drop)."""
    single = frame[frame["mode"] == "single"].merge(intact(frame), on=["variant", "seed"], suffixes=("", "_intact"))
    single = single.assign(unit=single["order"].str.removeprefix("unit:").astype(int), drop=single["test_acc_intact"] - single["test_acc"],
                           rise=single["test_loss"] - single["test_loss_intact"])
    per_class = units.assign(drop=units["intact_class_acc"] - units["class_acc"])
    rows = []
    for (variant, layer), group in single.groupby(["variant", "layer"], sort=False):
        for unit in group.sort_values(["drop", "rise"], ascending=False).head(per_layer).itertuples():
            hurt = per_class[(per_class["variant"] == variant) & (per_class["seed"] == unit.seed) & (per_class["layer"] == layer)
                             & (per_class["unit"] == unit.unit)].nlargest(classes, "drop")
            rows.append({"variant": variant, "layer": layer, "seed": unit.seed, "unit": unit.unit, "drop": unit.drop, "rise": unit.rise,
                         "classes": list(zip(hurt["class"], hurt["drop"]))})
    return pd.DataFrame(rows)


def chance(frame: pd.DataFrame) -> Optional[float]:
    """The accuracy of guessing one class (1 / classes), from lesion_units.csv's classes; None where unknown."""
    return None if frame.empty else 1.0 / frame["class"].nunique()
