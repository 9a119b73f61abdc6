"""The lesion chart, drawn by ablate/report/plots.py's conventions: its colours per variant (the baseline grey and
dashed), the title saying what the marks mean, `plots.write` for the PNG and the page's inline SVG. It draws what
`aggregate.curve_bands` computed and nothing else."""

from __future__ import annotations

from typing import Optional

import matplotlib.pyplot as plt
import pandas as pd

from ablate.report import plots
from ablate.study.variants import BASELINE, keys_of

KINDS = {"random": "random order", "importance": "most important first"}


def colours(variants: list[str]) -> dict[str, tuple]:
    """The report's colours of these variants (one family per factor, the baseline grey)."""
    named = pd.DataFrame({"variant": variants, "factor": ["" if v == BASELINE else "+".join(keys_of(v)) for v in variants]})
    return plots.variant_colours(named)


def curves_chart(bands: pd.DataFrame, study: str, chance: Optional[float]) -> plt.Figure:
    """Accuracy against the fraction of a layer's units zeroed: one column per layer, a row per order (random, then
    most important first), a line per variant (mean over seeds) with its 95 % interval as a band; chance dotted."""
    layers = list(dict.fromkeys(bands["layer"]))
    kinds = [k for k in KINDS if k in set(bands["kind"])]
    variants = sorted(dict.fromkeys(bands["variant"]), key=lambda v: (v != BASELINE, v))
    palette = colours(variants)
    figure, grid = plt.subplots(len(kinds), len(layers), figsize=(max(3.2 * len(layers), 6.0), 3.0 * len(kinds) + 0.8),
                                sharex=True, sharey=True, squeeze=False)
    for row, kind in enumerate(kinds):
        for column, layer in enumerate(layers):
            axes = grid[row, column]
            for variant in variants:
                line = bands[(bands["variant"] == variant) & (bands["layer"] == layer) & (bands["kind"] == kind)].sort_values("fraction")
                if line.empty:
                    continue
                x = line["fraction"] * 100
                axes.plot(x, line["mean"] * 100, color=palette[variant], linestyle="--" if variant == BASELINE else "-",
                          marker="o", markersize=3, label=variant.removeprefix("model."))
                axes.fill_between(x, line["ci_low"] * 100, line["ci_high"] * 100, color=palette[variant], alpha=0.2, linewidth=0)
            if chance is not None:
                axes.axhline(chance * 100, color="0.3", linestyle=":", linewidth=1)
            axes.grid(True, alpha=0.3)
            axes.set_title(f"{layer}: {KINDS[kind]}", fontsize=9, fontweight="bold")
            axes.set_xlabel("units zeroed (%)" if row == len(kinds) - 1 else "")
            axes.set_ylabel("test accuracy (%)" if column == 0 else "")
    grid[0, 0].set_ylim(0, 100.5)  # a t interval over few seeds may reach past 0 or 100; the axis shows what accuracy can be
    grid[0, 0].legend(fontsize=7, loc="lower left")
    figure.suptitle(f"Study '{study}': cumulative lesions per layer\n(line = mean over seeds, band = 95 % CI; "
                    f"grey dashed = baseline; dotted = chance; axis 0-100 %)", fontsize=11)
    return plots._finish(figure)
