"""ablate from Python: stored studies as pandas tables, the report's own statistics, and `ablate run` as a call.

    import ablate
    study = ablate.load("runs/demo")        # reads the study through the results store; imports no torch
    study.runs                              # one row per run: variant, seed, status, each factor key, metrics, hardware
    study.history                           # one row per run and epoch
    study.summary(metric="test_acc")        # the table `ablate report` prints, as numbers
    study.effects()                         # a two-level design's effects; study.decisions() for seeds=auto
    study.report(out="reports")             # what `ablate report` writes
    ablate.load_all("runs")                 # every study under a folder, by name
    ablate.run(["+sweep=pooling", "seeds=[0,1,2]"])   # trains as `ablate run` does, returns the Study

The public names are `load`, `load_all`, `run`, `Study` and `RunError`; the rest of ablate is private. Each
delegates: the tables come from `report/runs.py`, the statistics and pictures from `report/summary.py` (the code
`ablate report` runs), training from `cli.py` (the code `ablate run` runs). A path that holds no study raises
FileNotFoundError or `ReportError` (a ValueError) naming it; a config mistake raises `ConfigError` (a ValueError)
naming the key, before anything trains.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Iterator, Optional, Sequence

import pandas as pd

from ablate.config import ConfigError
from ablate.report import runs as stored_runs
from ablate.report.runs import ReportError, StudyRuns
from ablate.store import results
from ablate.study.variants import BASELINE

__all__ = ["RunError", "Study", "load", "load_all", "run"]


class RunError(RuntimeError):
    """`ablate.run` trained, but not every planned run finished ok (exit status 1 of `ablate run`); `study` holds what
    is stored (None when nothing is)."""

    def __init__(self, message: str, study: Optional[Study]) -> None:
        super().__init__(message)
        self.study = study


class Study:
    """One study's stored runs, read once by `ablate.load`: tidy tables to analyse, and the report's statistics.

    `name` and `path` are the study's folder; `runs` has one row per finished run (failed and diverged ones with
    their status): study, variant, seed, status, each factor key as its own typed column, identity_hash, the final
    metrics, train_seconds, parameters, device, precision, strategy, hardware.* and run_dir (runs.csv of a report).
    """

    def __init__(self, stored: StudyRuns) -> None:
        self._stored = stored
        self._history: Optional[pd.DataFrame] = None
        self.name: str = stored.name
        self.path: Path = stored.path
        self.runs: pd.DataFrame = stored_runs.tidy(stored)

    @property
    def history(self) -> pd.DataFrame:
        """One row per run and epoch (history.csv), with the run's study, variant, seed, status and factor columns."""
        if self._history is None:
            self._history = stored_runs.tidy_history(self._stored, self.runs)
        return self._history

    def summary(self, metric: str = "test_acc", equivalence_margin: Optional[float] = None, ci: str = "t") -> pd.DataFrame:
        """The table `ablate report --metric M --equivalence-margin E --ci C` prints, one row per variant, as numbers
        in the metric's own unit (summary.csv); `equivalence_margin` in its display unit (points for accuracies)."""
        from ablate.report import summary

        return summary.study_summary(self.path, metric, equivalence_margin, ci)[2]

    def effects(self, metric: str = "test_acc") -> pd.DataFrame:
        """A two-level design's main effects and interactions with CIs, p and Holm p (effects.csv)."""
        from ablate.report import summary

        fitted = summary.design_effects(summary.study_summary(self.path, metric)[0].runs, metric)
        if fitted is None:
            raise ReportError(f"study {self.name!r} is not a two-level design (+design=factorial or fractional, every "
                              "factor at two values); its comparisons with the baseline are in summary()")
        return fitted[1].effects

    def decisions(self) -> pd.DataFrame:
        """A seeds=auto study's comparisons: the seeds judged, the paired mean difference, its anytime-valid interval
        and the decision, as `ablate run` judged them."""
        from ablate.report import adaptive, summary

        if not adaptive.is_adaptive(self._stored.runs):
            raise ReportError(f"study {self.name!r} was not trained with seeds=auto; its comparisons are in summary()")
        table = summary.study_summary(self.path, adaptive.settings_of(self._stored.runs).metric)[2]
        chosen = table[table["variant"] != BASELINE]
        return chosen[["variant", "n_paired", "diff", "diff_ci_low", "diff_ci_high", "verdict"]].reset_index(drop=True)

    def report(self, out: str | os.PathLike = "reports", metric: str = "test_acc", equivalence_margin: Optional[float] = None,
               ci: str = "t", formats: Sequence[str] = ("md", "csv", "tex")) -> Path:
        """Write what `ablate report` writes for this study under `out`, print its table; the path of its page."""
        from ablate.lesion.page import sections as lesion_sections
        from ablate.report import summary

        summary.write_reports([str(self.path)], str(out), metric, formats, equivalence_margin, ci, lesion_sections)
        return Path(out) / self.name / "index.html"

    def _repr_html_(self) -> str:
        """In Jupyter: the summary table and forest plot, as the report's page draws them."""
        from ablate.report import summary

        return summary.notebook_html(self.path)

    def __repr__(self) -> str:
        return f"<Study {self.name!r} ({self.path}): {len(self.runs)} runs of {self.runs['variant'].nunique()} variants>"


def load(path: str | os.PathLike) -> Study:
    """The study stored in a folder such as runs/demo (its <variant>/seed=<s>/metrics.json files)."""
    path = Path(path)
    found = stored_runs.find_studies(path) if path.is_dir() else [path]
    if found != [path]:
        raise ReportError(f"{path} is a runs folder holding {len(found)} {'study' if len(found) == 1 else 'studies'} ({', '.join(p.name for p in found)}), not "
                          f"one study: load one, e.g. ablate.load({str(found[0])!r}), or all with ablate.load_all({str(path)!r})")
    return Study(stored_runs.load_study(path))


def load_all(path: str | os.PathLike = "runs") -> dict[str, Study]:
    """Every study under a runs folder (or the one study a study folder holds), by name."""
    return {folder.name: Study(stored_runs.load_study(folder)) for folder in stored_runs.find_studies(path)}


def run(overrides: Sequence[str], dry_run: bool = False, retry_failed: bool = False,
        config_dir: Optional[str | os.PathLike] = None) -> Optional[Study]:
    """Run a study as `ablate run OVERRIDES` does (the same plan, checks and training) and return it as stored;
    with `dry_run`, print the plan, train nothing and return None. Raises ConfigError naming the key (exit status 2),
    RunError when a planned run failed, diverged or is missing (exit status 1), KeyboardInterrupt after Ctrl-C."""
    from ablate import cli
    from ablate.study import preflight

    if isinstance(overrides, (str, bytes)):
        raise TypeError(f"ablate.run takes a list of overrides, e.g. ['+sweep=pooling', 'seeds=[0,1,2]'], not the string {overrides!r}")
    overrides = [str(o) for o in overrides]
    flags = [o for o in overrides if o.startswith("-")]
    if flags:
        raise ConfigError(f"{flags[0]}: ablate.run takes overrides (key=value), not flags; pass dry_run=True, "
                          "retry_failed=True or config_dir='DIR' instead")
    arguments = [*(["--config-dir", str(config_dir)] if config_dir else []), *overrides]
    with _as_a_command():
        try:
            planned, unwritable = cli.checked_plan(overrides, dry_run, retry_failed, None if config_dir is None else str(config_dir))
        except Exception as error:  # noqa: BLE001 - every config mistake becomes one line, as `ablate run` prints it
            raise ConfigError(preflight.one_line(error)) from error
        code = cli.train(planned, arguments, dry_run, retry_failed, unwritable)
    if code == 130:
        raise KeyboardInterrupt
    if dry_run:
        return None
    folder = Path(planned.study.config.runs_dir) / planned.study.study
    study = load(folder) if folder.is_dir() and results.study_dirs(folder) == [folder] else None
    if code:
        from ablate.study import status

        raise RunError(f"study {planned.study.study!r}: {status.describe_status(cli.outcome(planned))}", study)
    return study


@contextlib.contextmanager
def _as_a_command() -> Iterator[None]:
    """Around a run from Python: give back what Hydra's job changes in the process (argv, environment, working
    folder, the root logger's handlers and level, Hydra's global state), so the caller's session goes on as before."""
    from hydra.core.global_hydra import GlobalHydra

    root = logging.getLogger()
    before = (list(sys.argv), dict(os.environ), Path.cwd(), list(root.handlers), root.level)
    try:
        yield
    finally:
        GlobalHydra.instance().clear()
        sys.argv[:] = before[0]
        os.environ.clear()
        os.environ.update(before[1])
        os.chdir(before[2])
        root.handlers[:] = before[3]
        root.setLevel(before[4])
