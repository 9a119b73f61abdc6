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
from ablate.report import variance as variance_report
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
    "forest": "Difference to the baseline per variant with its Holm-adjusted 95 % CI, which excludes 0 exactly where the "
              "verdict is better or worse; the grey band is ±MDE, what the study can detect; "
              "the marker's shape and colour give the verdict.",
    "accuracy": "Mean per variant (bar), ±1 std (whiskers), 95 % CI of the mean (black range), each seed (dot); grouped by factor.",
    "curves": "Learning curves per factor: mean over seeds (line) and ±1 std (band); the baseline grey and dashed.",
    "cost": "Mean (±1 std) against trainable parameters: what each change costs and buys; hover a point for its numbers.",
    "interactions": "Two-factor interactions: mean response at one factor's two values, a line per value of the other.",
    "half_normal": "Half-normal plot of the effects: effects far above the noise line are real.",
}
# Columns of the summary that the page shows in a second table, so that each fits a 1280 px window with no number
# wrapped: the secondary tests, the other metrics and costs, and the words.
DETAIL_COLUMNS = ("p Welch", "p paired (n)", "seeds needed", "RF", "train s", "failed / missing", "notes")


def _detail(column: str) -> bool:
    return column in DETAIL_COLUMNS or column.startswith("95% CI") or column.endswith("_loss")


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


def _summary_context(summary: pd.DataFrame, table: pd.DataFrame) -> dict[str, object]:
    """What the page's summary section shows: each variant's comparison cells with its verdict's mark, the table of
    its other numbers apart (one wide table would wrap its cells), and the legend."""
    main = table[[c for c in table.columns if not _detail(c)]]
    detail = table[["variant", *(c for c in table.columns if _detail(c))]]
    rows = [{"variant": variant, "cells": list(zip(main.columns, cells)), "verdict_mark": verdict_style(verdict)[0],
             "verdict_class": verdict_style(verdict)[1]}
            for variant, verdict, cells in zip(summary["variant"], summary["verdict"], main.itertuples(index=False))]
    return {"table": {"columns": list(main.columns), "rows": rows}, "verdict_legend": dict(VERDICTS),
            "detail": {"columns": list(detail.columns),
                       "rows": [list(zip(detail.columns, cells)) for cells in detail.itertuples(index=False)]}}


def _figures(figures: Mapping[str, str]) -> list[dict[str, object]]:
    return [{"name": name, "svg": Markup(svg), "caption": CAPTIONS[name]} for name, svg in figures.items()]


def study_page(study: str, metric: str, summary: pd.DataFrame, table: pd.DataFrame, runs: pd.DataFrame,
               sensitivity: str, figures: Mapping[str, str], notes: str, effects: Optional[EffectsSection] = None,
               extras: Sequence[PageSection] = ()) -> str:
    """The page of one study: question, shared settings, summary table with verdicts, a two-level design's effects
    (`summary.EffectsSection`: its title, table and note), figures (inline SVG from `plots.write`), every seed,
    failed and in-progress runs, and each variant's command and identity hash; then the `extras` (PageSection)."""
    hashes = reproduce.identity_hashes(runs)
    problems = [(row.variant, row.problems) for row in summary.itertuples() if row.problems]
    commands = [(variant, hashes.get(variant, "–"), line) for variant, line in reproduce.commands(runs).items()]
    order = {v: i for i, v in enumerate(summary["variant"])}
    return _TEMPLATES.get_template("study.html.j2").render(
        study=study, metric=metric, label=declared_metric(metric).label, sensitivity=sensitivity,
        factors=_factors(summary, runs), settings=reproduce.common_settings(runs), notes=notes,
        effects=effects and {"title": effects.title, "columns": list(effects.table.columns),
                             "rows": list(effects.table.itertuples(index=False)), "note": effects.note},
        figures=_figures(figures), seeds=_seed_rows(runs, metric, list(summary["variant"])), problems=problems,
        extras=[extra.render() for extra in extras],
        commands=sorted(commands, key=lambda c: order.get(c[0], len(order))),
        version=provenance.versions().get("ablate") or "", written=datetime.date.today().isoformat(),
        **_summary_context(summary, table))


def variance_page(study: str, metric: str, table: pd.DataFrame, runs: pd.DataFrame, note: str, chart: str,
                  extras: Sequence[PageSection] = ()) -> str:
    """The page of a variance study (+variance=sources): the sources and the streams each draws or holds, the settings
    every run shares, each source's std with its interval and share (`table`, `note` on the parts against the whole,
    the `chart`), every seed by source, failed and in-progress runs, and the one command that trains the study
    again with each source's identity hash; then the `extras`."""
    named, held, hashes = variance_report.variants(runs), variance_report.streams(runs), reproduce.identity_hashes(runs)
    source_of = {variant: source for source, variant in named.items()}
    seeds = _seed_rows(runs.assign(variant=runs["variant"].map(source_of)), metric, list(named))
    return _TEMPLATES.get_template("variance.html.j2").render(
        study=study, metric=metric, label=declared_metric(metric).label, settings=reproduce.common_settings(runs),
        extras=[extra.render() for extra in extras], command=reproduce.study_command(runs),
        seeds={**seeds, "columns": ["source", *seeds["columns"][1:]]},
        problems=[(source, text) for source, text in zip(table["source"], table["failed / missing"]) if text],
        version=provenance.versions().get("ablate") or "", written=datetime.date.today().isoformat(),
        **_variance_context(study, metric, table, note, chart, {s: {"source": s, "variant": v, "streams": held[s], "hash": hashes[v]}
                                                                for s, v in named.items()}))


def _variance_context(study: str, metric: str, table: pd.DataFrame, note: str, chart: str,
                      sources: Mapping[str, Mapping[str, str]]) -> dict[str, object]:
    """What the variance page's table and chart read (its block `summary`, which a notebook shows too)."""
    caption = f"Std of {declared_metric(metric).label} per source (bar) with its {variance_report.CI_METHOD}; all: every stream varied."
    return {"intro": variance_report.INTRO, "note": note, "sources": list(sources.values()),
            "table": {"columns": list(table.columns), "rows": list(table.itertuples(index=False))},
            "figure": {"svg": Markup(chart), "caption": caption}}


def study_fragment(study: str, metric: str, summary: pd.DataFrame, table: pd.DataFrame, sensitivity: str,
                   figures: Mapping[str, str], notes: str) -> str:
    """The page's summary and figures sections alone, under a heading: what a notebook shows for a study (no style
    sheet, which would restyle the whole notebook; the verdicts keep their marks and words)."""
    context = {"notes": notes, "figures": _figures(figures), **_summary_context(summary, table)}
    return _fragment("study.html.j2", ("summary", "figures"), context, study, metric, sensitivity)


def variance_fragment(study: str, metric: str, table: pd.DataFrame, note: str, chart: str) -> str:
    """A variance study's table and chart as its page draws them, under a heading: what a notebook shows for it."""
    context = _variance_context(study, metric, table, note, chart, {})
    return _fragment("variance.html.j2", ("summary",), context, study, metric, variance_report.INTRO)


def _fragment(template_name: str, blocks: Sequence[str], context: Mapping[str, object], study: str, metric: str, lead: str) -> str:
    """Blocks of a page's template rendered alone under a heading naming the study (no style sheet)."""
    template = _TEMPLATES.get_template(template_name)
    rendered = template.new_context(dict(context))
    sections = "".join(chunk for block in blocks for chunk in template.blocks[block](rendered))
    heading = Markup("<h3>Study <code>{}</code>: {}</h3><p>{}</p>").format(study, declared_metric(metric).label, lead)
    return f'<div class="ablate-study">{heading}{sections}</div>'


def write_index(out_root: Path, studies: Sequence[StudyLink]) -> Path:
    """reports/index.html: a line per reported study, linking its page."""
    return files.write_atomically(out_root / "index.html", _TEMPLATES.get_template("index.html.j2").render(studies=studies))
