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


def _runs(study_dir: Path) -> Iterable[dict[str, Any]]:
    for metrics_file in sorted(study_dir.glob(f"*/seed=*/{METRICS_FILE}")):
        record = json.loads(metrics_file.read_text())
        record["run_dir"] = str(metrics_file.parent)
        yield record


def load_runs(study_dir: str | Path) -> pd.DataFrame:
    """One row per finished run of a study (failed and diverged ones included, with their status)."""
    return pd.DataFrame(list(_runs(Path(study_dir))))


def load_history(run_path: str | Path) -> pd.DataFrame:
    """The per-epoch curves of one run."""
    return pd.read_csv(Path(run_path) / HISTORY_FILE)
