"""`ablate lesion PATH`: lesion every finished run of a study (or of one variant, or one run), write
reports/<study>/lesion.csv and lesion_units.csv, and the study's page with its lesion section.

Runs that cannot be lesioned (failed, diverged, unfinished, without model.pt, missing a seed the other variants
have, a network that names nothing to lesion) are named, one line each, and the rest are done.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm import tqdm

from ablate.lesion import compute, page
from ablate.networks.network import NotLesionable
from ablate.report.summary import ReportError, write_study_report
from ablate.store import results

LESION_CSV, UNITS_CSV = page.LESION_CSV, page.UNITS_CSV


class NotAStudy(ValueError):
    """A path that is no study, variant or run folder."""


@dataclass
class Target:
    """A study and the run folders of it to lesion."""

    study: Path
    runs: list[Path]
    skipped: list[str] = field(default_factory=list)


def _seed_folders(variant: Path) -> list[Path]:
    return sorted((p for p in variant.glob("seed=*") if p.is_dir()), key=lambda p: p.name)


def target(path: Path) -> Target:
    """The study `path` is, or the study of the variant or run it is; NotAStudy with what to give otherwise."""
    if (path / results.METRICS_FILE).is_file() or path.name.startswith("seed="):
        return Target(path.parent.parent, [path])
    if any(_seed_folders(path)):
        return Target(path.parent, _seed_folders(path))
    if path.is_dir() and results.study_dirs(path) == [path]:
        return Target(path, [run for variant in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")) for run in _seed_folders(variant)])
    raise NotAStudy(f"{path} is not a study, a variant or a run folder; give one such as runs/batchnorm, "
                    "runs/batchnorm/baseline or runs/batchnorm/baseline/seed=0")


def problems(study: Path, runs: list[Path]) -> tuple[list[Path], list[str]]:
    """The runs that can be lesioned, and a line for each that cannot (and each seed a variant lacks)."""
    ready, lines = [], []
    for run in runs:
        record = results.read_metrics(run)
        name = f"{results.variant_of(run.parent)}/{run.name}"
        if record is None:
            lines.append(f"{name}: not finished (no whole {results.METRICS_FILE}): in progress, killed or never run")
        elif record.get("status") != "ok":
            lines.append(f"{name}: {record.get('status')} ({record.get('error') or 'no weights'})")
        elif not (run / results.MODEL_FILE).is_file():
            lines.append(f"{name}: no {results.MODEL_FILE}")
        else:
            ready.append(run)
    variants = {p for p in study.iterdir() if p.is_dir() and not p.name.startswith(".")}
    seeds = {p.name for v in variants for p in _seed_folders(v)}
    for variant in sorted(variants):
        lines += [f"{results.variant_of(variant)}/{seed}: missing (other variants have it)" for seed in sorted(seeds - {p.name for p in _seed_folders(variant)})
                  if any(run.parent == variant for run in runs)]
    return ready, lines


def _lesion_run(run: Path, settings: compute.Settings, device: torch.device) -> dict[str, Any]:
    """A run's pieces, computed where the cache lacks them, with a progress bar over the pieces."""
    lesion = compute.RunLesion(run, settings, device)
    pieces = lesion.pieces()
    with tqdm(total=len(pieces), desc=f"{run.parent.parent.name}/{results.variant_of(run.parent)}/{run.name}", unit="piece",
              file=sys.stderr) as bar:
        return lesion.compute(lambda name: (bar.set_postfix_str(name), bar.update()))


def tables(study: Path, settings: compute.Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """lesion.csv and lesion_units.csv of every run of the study whose lesions are cached whole under these settings."""
    lesion_rows, unit_rows = [], []
    for run in sorted(study.glob("*/seed=*")):
        record = results.read_metrics(run)
        if record is None or record.get("status") != "ok" or not (run / results.MODEL_FILE).is_file():
            continue
        pieces = compute.cached(run, settings)
        if pieces is None:
            continue
        tag = {"variant": results.variant_of(run.parent), "seed": int(record["seed"])}
        lesion_rows += [tag | row for row in compute.rows(pieces, settings)]
        unit_rows += [tag | row for row in compute.unit_rows(pieces)]
    columns = ["variant", "seed", "layer", "mode", "fraction", "order", "test_acc", "test_loss"]
    return pd.DataFrame(lesion_rows, columns=columns), pd.DataFrame(unit_rows)


def lesion(path: Path, out_root: Path, settings: compute.Settings, device_name: str = "auto") -> int:
    """Lesion what `path` names, write the study's tables and page; 0 when every run was lesioned, 1 when some
    could not be (each named), 2 (NotAStudy raised) for a path that is no study."""
    found = target(path)
    ready, lines = problems(found.study, found.runs)
    device = compute.device_for(device_name)
    done = 0
    for run in ready:
        try:
            _lesion_run(run, settings, device)
            done += 1
        except (NotLesionable, ValueError) as error:
            lines.append(f"{results.variant_of(run.parent)}/{run.name}: not lesioned: {error}")
    for line in lines:
        print(f"  ! {line}")
    frame, units = tables(found.study, settings)
    out = out_root / found.study.name
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / LESION_CSV, index=False)
    units.to_csv(out / UNITS_CSV, index=False)
    print(f"Lesioned {done} run(s) of study {found.study.name}; {len(frame)} rows in {out / LESION_CSV}, per class in {out / UNITS_CSV}")
    if not frame.empty:
        print(page.console(frame))
        try:
            write_study_report(found.study, out_root, extras=page.sections)
            print(f"The study's page with its lesions: {out / 'index.html'}")
        except ReportError as error:
            print(f"  ! the study's page was not written: {error}")
    return 1 if lines else 0
