"""The study's page: one self-contained HTML file (inline SVG figures, inline style, no script, no link out) that
can be sent as an e-mail attachment, and the index page linking every reported study. Jinja2 templates."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Optional, Sequence

import jinja2
import pandas as pd
from markupsafe import Markup

from ablate.config import format_value
from ablate.report import reproduce
from ablate.report.metrics import held_out_split
from ablate.report.metrics import metric as declared_metric
from ablate.store import files, provenance
from ablate.study.variants import BASELINE

if TYPE_CHECKING:
    from ablate.report.effects import EffectsSection

# Verdict -> (marker, css class): shape and word carry the verdict, colour only repeats it.
VERDICTS = {"better": ("▲", "better"), "worse": ("▼", "worse"), "equivalent": ("◆", "equivalent"),
            "no clear difference": ("●", "other"), "inconclusive": ("?", "other"), "not tested": ("✕", "other"),
            "baseline": ("◻", "other")}
CAPTIONS = {
    "forest": "Difference to the baseline per variant with its 95 % CI; the grey band is ±MDE, what the study can detect; "
              "the marker's shape and colour give the verdict.",
    "accuracy": "Mean per variant (bar), ±1 std (whiskers), 95 % CI of the mean (black range), each seed (dot); grouped by factor.",
    "curves": "Learning curves per factor: mean over seeds (line) and ±1 std (band); the baseline grey and dashed.",
    "cost": "Mean (±1 std) against trainable parameters: what each change costs and buys; hover a point for its numbers.",
    "interactions": "Two-factor interactions: mean response at one factor's two values, a line per value of the other.",
    "half_normal": "Half-normal plot of the effects: effects far above the noise line are real.",
}
_TEMPLATES = jinja2.Environment(loader=jinja2.PackageLoader("ablate.report", "templates"), autoescape=True,
                                trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)


@dataclass(frozen=True)
class StudyLink:
    """One line of the index page."""
    name: str
    variants: int
    runs: int
    metric: str
    sensitivity: str


@dataclass(frozen=True)
class PageSection:
    """A section another command adds to a study's page (`ablate lesion`'s): its anchor, heading, a sentence, figures
    (inline SVG from `plots.write`, caption), tables (caption, frame of display strings) and a note."""
    id: str
    title: str
    intro: str
    figures: Sequence[tuple[str, str]]
    tables: Sequence[tuple[str, pd.DataFrame]]
    note: str

    def render(self) -> dict[str, object]:
        """What the template reads."""
        return {"id": self.id, "title": self.title, "intro": self.intro, "note": self.note,
                "figures": [{"svg": Markup(svg), "caption": caption} for svg, caption in self.figures],
                "tables": [{"caption": caption, "columns": list(table.columns), "rows": list(table.itertuples(index=False))}
                           for caption, table in self.tables]}


def verdict_style(verdict: str) -> tuple[str, str]:
    """(marker, css class) of a verdict; inconclusive verdicts carry their seeds needed after the word."""
    return VERDICTS["inconclusive"] if verdict.startswith("inconclusive") else VERDICTS.get(verdict, VERDICTS["not tested"])


def _cell(value: object, scale: float = 1.0, digits: int = 4) -> str:
    if value is None or pd.isna(value):
        return "–"
    return f"{float(value) * scale:.{digits}f}" if isinstance(value, float) else str(value)


def _seed_rows(runs: pd.DataFrame, metric: str, order: Sequence[str]) -> dict[str, object]:
    """Every finished run's numbers, failed and diverged ones with their error, in the summary's variant order; beside
    a validation metric the validation loss, so a page that chooses shows no test number."""
    scale, label, held_out = declared_metric(metric).scale, declared_metric(metric).label, f"{held_out_split(metric)}_loss"
    columns = ["variant", "seed", "status", label, held_out, "train_loss", "train s", "error"]
    ranked = runs.assign(rank=runs["variant"].map({v: i for i, v in enumerate(order)})).sort_values(["rank", "seed"])
    rows = [[run.variant, run.seed, run.status, _cell(getattr(run, metric), scale, 2 if scale == 100.0 else 4),
             _cell(getattr(run, held_out, None)), _cell(getattr(run, "train_loss", None)),
             _cell(getattr(run, "train_seconds", None), digits=1), run.error if isinstance(run.error, str) else ""] for run in ranked.itertuples()]
    return {"columns": columns, "rows": rows}


def _factors(summary: pd.DataFrame, runs: pd.DataFrame) -> list[dict[str, object]]:
    """The question: each factor with the baseline's value and the values tried."""
    baseline = runs[runs["variant"] == BASELINE]
    found = []
    for factor, rows in summary[summary["factor"] != ""].groupby("factor", sort=False):
        column = f"cfg.{factor}"
        base = format_value(baseline[column].tolist()[0]) if column in baseline and len(baseline) else "–"
        found.append({"key": factor, "baseline": base, "tried": [str(v) for v in rows["value"]]})
    return found


def study_page(study: str, metric: str, summary: pd.DataFrame, table: pd.DataFrame, runs: pd.DataFrame,
               sensitivity: str, figures: Mapping[str, str], notes: str, effects: Optional[EffectsSection] = None,
               extras: Sequence[PageSection] = ()) -> str:
    """The page of one study: question, shared settings, summary table with verdicts, a two-level design's effects
    (`summary.EffectsSection`: its title, table and note), figures (inline SVG from `plots.write`), every seed,
    failed and in-progress runs, and each variant's command and identity hash; then the `extras` (PageSection)."""
    hashes = reproduce.identity_hashes(runs)
    rows = [{"variant": variant, "cells": list(zip(table.columns, cells)), "verdict_mark": verdict_style(verdict)[0],
             "verdict_class": verdict_style(verdict)[1]}
            for variant, verdict, cells in zip(summary["variant"], summary["verdict"], table.itertuples(index=False))]
    problems = [(row.variant, row.problems) for row in summary.itertuples() if row.problems]
    commands = [(variant, hashes.get(variant, "–"), line) for variant, line in reproduce.commands(runs).items()]
    order = {v: i for i, v in enumerate(summary["variant"])}
    return _TEMPLATES.get_template("study.html.j2").render(
        study=study, metric=metric, label=declared_metric(metric).label, sensitivity=sensitivity,
        factors=_factors(summary, runs), settings=reproduce.common_settings(runs),
        table={"columns": list(table.columns), "rows": rows}, notes=notes,
        effects=effects and {"title": effects.title, "columns": list(effects.table.columns),
                             "rows": list(effects.table.itertuples(index=False)), "note": effects.note},
        verdict_legend={name: style for name, style in VERDICTS.items()},
        figures=[{"name": name, "svg": Markup(svg), "caption": CAPTIONS[name]} for name, svg in figures.items()],
        seeds=_seed_rows(runs, metric, list(summary["variant"])), problems=problems, extras=[extra.render() for extra in extras],
        commands=sorted(commands, key=lambda c: order.get(c[0], len(order))),
        version=provenance.versions().get("ablate") or "", written=datetime.date.today().isoformat())


def write_index(out_root: Path, studies: Sequence[StudyLink]) -> Path:
    """reports/index.html: a line per reported study, linking its page."""
    return files.write_atomically(out_root / "index.html", _TEMPLATES.get_template("index.html.j2").render(studies=studies))
