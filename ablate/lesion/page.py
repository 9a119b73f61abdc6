"""The lesion section of a study's page (and the console's table), from reports/<study>/lesion.csv and
lesion_units.csv: the cumulative curves with bands, the AUC table with paired tests, whole layers, top units."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd

from ablate.lesion import aggregate, plots
from ablate.report import plots as report_plots
from ablate.report.html import PageSection

LESION_CSV, UNITS_CSV = "lesion.csv", "lesion_units.csv"
NOTE = ("Lesion: a unit's output (a channel of a conv block after its activation, a hidden unit of the flatten head) "
        "set to 0 in the trained network, no retraining. Cumulative: a growing fraction of a layer's units zeroed, in "
        "seeded random orders (averaged within each run) or most important first (by the single-unit accuracy drop). "
        "AUC: area under accuracy over the fraction zeroed (0 to 1; higher = relies less on single units). "
        "Δ AUC: variant − baseline, paired by seed; p: paired t-test; p Holm: adjusted over every comparison here. "
        "Whole layer: the block replaced by the identity where its input has its output's shape, else all its units zeroed.")


def _pp(value: Optional[float], signed: bool = False) -> str:
    return "–" if value is None or pd.isna(value) else f"{value * 100:{'+' if signed else ''}.2f}"


def _p(value: Optional[float]) -> str:
    return "–" if value is None or pd.isna(value) else f"{value:.3g}"


def auc_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The AUC per variant, layer and order (×100) with its 95 % CI and the paired test against the baseline."""
    tests = aggregate.auc_tests(frame)
    return pd.DataFrame({
        "variant": tests["variant"], "layer": tests["layer"], "order": tests["kind"].map(plots.KINDS), "n": tests["n"],
        "AUC ×100 [95% CI]": [f"{_pp(a)} [{_pp(lo)}, {_pp(hi)}]" for a, lo, hi in zip(tests["auc"], tests["ci_low"], tests["ci_high"])],
        "Δ AUC": [_pp(d, signed=True) for d in tests["diff"]], "p": [_p(v) for v in tests["p"]], "p Holm": [_p(v) for v in tests["p_holm"]]})


def whole_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Whole layers removed: how, seeds, mean accuracy and its drop (percentage points)."""
    whole = aggregate.whole_layers(frame)
    return pd.DataFrame({"variant": whole["variant"], "layer": whole["layer"], "removed as": whole["how"], "n": whole["n"],
                         "test acc (%)": [_pp(v) for v in whole["test_acc"]], "drop (pp)": [_pp(v) for v in whole["drop"]]})


def units_table(frame: pd.DataFrame, units: pd.DataFrame) -> pd.DataFrame:
    """The top single units per variant and layer, each with the classes it costs most."""
    top = aggregate.top_units(frame, units)
    return pd.DataFrame({"variant": top["variant"], "layer": top["layer"], "seed": top["seed"], "unit": top["unit"],
                         "acc drop (pp)": [_pp(v) for v in top["drop"]], "loss rise": [f"{v:+.3f}" for v in top["rise"]],
                         "classes it costs most (pp)": [", ".join(f"{c}: {_pp(d)}" for c, d in hurt) for hurt in top["classes"]]})


def console(frame: pd.DataFrame) -> str:
    """The AUC table as the console shows it."""
    return auc_table(frame).to_markdown(index=False, tablefmt="simple")


def sections(study: str, old: Path, out: Path) -> Sequence[PageSection]:
    """The lesion section of the study's page from the report folder `old` as it stands, its CSVs carried over into
    the new report's folder `out` with lesion.png; none before `ablate lesion` ran."""
    if not (old / LESION_CSV).is_file() or not (old / UNITS_CSV).is_file():
        return ()
    if old.resolve() != out.resolve():
        for name in (LESION_CSV, UNITS_CSV):
            shutil.copyfile(old / name, out / name)
    frame = pd.read_csv(out / LESION_CSV, dtype={"order": str})
    if frame.empty:
        return ()
    units = pd.read_csv(out / UNITS_CSV) if (out / UNITS_CSV).stat().st_size > 1 else pd.DataFrame(columns=["class"])
    chart = report_plots.write(plots.curves_chart(aggregate.curve_bands(frame), study, aggregate.chance(units)), out / "lesion.png")
    runs = aggregate.intact(frame)
    intro = (f"{len(runs)} trained runs lesioned ({', '.join(f'{v}: {n}' for v, n in runs.groupby('variant', sort=False).size().items())} seeds); "
             f"{frame['layer'].nunique()} layers; grid of fractions {', '.join(f'{f:g}' for f in sorted(frame.loc[frame['mode'] == 'cumulative', 'fraction'].unique()))}.")
    return [PageSection("lesions", "Lesions of the trained networks", intro,
                        [(chart, "Accuracy as a growing fraction of each layer's units is zeroed: mean over seeds (line), 95 % CI "
                                 "(band); top row random order, bottom row most important first; chance dotted. lesion.png.")],
                        [("Area under each curve, against the baseline", auc_table(frame)),
                         ("Whole layers", whole_table(frame)),
                         ("Top single units per layer, with the classes they cost", units_table(frame, units))], NOTE)]
