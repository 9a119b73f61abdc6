"""The results store: the only code that writes or reads runs/.

Layout: runs/<study>/<variant>/seed=<s>/{config.yaml, history.csv, metrics.json}. A run is finished when,
and only when, its metrics.json exists; it is written last, atomically (temporary file, then rename).
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
import yaml

BASELINE = "baseline"
METRICS_FILE, HISTORY_FILE, CONFIG_FILE = "metrics.json", "history.csv", "config.yaml"


def run_dir(runs_dir: str | Path, study: str, variant: str, seed: int) -> Path:
    """Folder of one run; the names come from the study, the variant's override and the seed, never a timestamp."""
    return Path(runs_dir) / study / variant / f"seed={seed}"


def is_finished(path: Path) -> bool:
    """A run is finished when its metrics.json exists (it is only ever written whole)."""
    return (path / METRICS_FILE).is_file()


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_run(path: Path, config_yaml: str, history: list[dict[str, Any]], metrics: dict[str, Any]) -> None:
    """Write one run's files; metrics.json goes last, so a crash before it leaves the run unfinished."""
    _write_atomically(path / CONFIG_FILE, config_yaml)
    table = io.StringIO()
    if history:
        writer = csv.DictWriter(table, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    _write_atomically(path / HISTORY_FILE, table.getvalue())
    _write_atomically(path / METRICS_FILE, json.dumps(metrics, indent=2, sort_keys=True) + "\n")


def study_dirs(root: str | Path) -> list[Path]:
    """Studies under a runs folder, or the folder itself when it is one study (it holds variant folders with runs)."""
    root = Path(root)
    if any(root.glob(f"*/seed=*/{METRICS_FILE}")):
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and any(p.glob(f"*/seed=*/{METRICS_FILE}")))


def _flatten(tree: dict[str, Any], prefix: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _runs(study_dir: Path) -> Iterable[dict[str, Any]]:
    for metrics_file in sorted(study_dir.glob(f"*/seed=*/{METRICS_FILE}")):
        record = json.loads(metrics_file.read_text())
        config = yaml.safe_load((metrics_file.parent / CONFIG_FILE).read_text()) or {}
        record.update(_flatten(config, "cfg."))
        record["run_dir"] = str(metrics_file.parent)
        yield record


def load_runs(study_dir: str | Path) -> pd.DataFrame:
    """One row per finished run of a study (failed and diverged ones included, with their status).

    Columns: everything in metrics.json, the run's config flattened as `cfg.model.depth` etc., and run_dir.
    """
    return pd.DataFrame(list(_runs(Path(study_dir))))


def variant_names(study_dir: str | Path) -> list[str]:
    """Every variant folder of a study, finished runs or not."""
    return sorted(p.name for p in Path(study_dir).iterdir() if p.is_dir() and not p.name.startswith("."))


def load_histories(runs: pd.DataFrame) -> pd.DataFrame:
    """Per-epoch curves of the given runs (rows of `load_runs`), tagged with variant and seed."""
    frames = []
    for run in runs.itertuples():
        history = Path(run.run_dir) / HISTORY_FILE
        if history.is_file() and history.stat().st_size:
            frames.append(pd.read_csv(history).assign(variant=run.variant, seed=run.seed))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
