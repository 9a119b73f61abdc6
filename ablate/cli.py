"""The `ablate` command: `run` (Hydra), `report`, `inspect`, `viz`, `lesion`. Thin: every decision lives in the modules it calls."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import replace
from typing import Any, Callable, Sequence

from ablate import DISTRIBUTION, __version__

log = logging.getLogger("ablate")

USAGE = """usage: ablate COMMAND [ARGS]    (ablate --version: the installed version)

commands:
  run [OVERRIDES]     train a study: ablate run +sweep=depth train.epochs=2 seeds=[0,1,2]
                      (Hydra overrides; `ablate run --help` lists every key)
  report [PATHS]      tables and charts of every study under ./runs, or of the given study folders
  inspect [OVERRIDES] layer table of the model a config builds: shapes, parameters, receptive field, FLOPs
                      (same overrides as run; +sweep=NAME shows every variant; --format md|csv|json)
                      --config-dir DIR (run and inspect): your own config groups, e.g. DIR/model/mynet.yaml
  lesion PATH [--split test|val] [--orders N]
                      knock units out of the trained networks of a study (or a variant, or a run), no retraining:
                      single units, cumulative curves, whole layers -> reports/<study>/lesion.csv and its page
  viz RUN_DIR [--image N]
                      PNGs in a trained run's folder: first-layer filters, activation maps, saliency

ablate run -m model.depth=2,3 train.lr=0.01,0.1 study=NAME
                      one factor at a time over the listed keys, around the config's own values
ablate run --dry-run  lists the planned runs (finished, failed, to train) and trains nothing;
ablate run +sweep=all seeds=auto  adds seeds in rounds only where a comparison with the baseline is still open
                      (adaptive.budget, .batch, .margin, .alpha; see docs/guide/adaptive-seeds.md)
ablate run +sweep=batchnorm +tune=lr data.validation_size=1000  trains each variant at its own best point of a
                      grid (tune.grid, .seeds, .metric; tuning runs in study <study>.tune, chosen on validation)
ablate run --retry-failed  trains failed and diverged runs again (they are kept as results otherwise);
ablate run --cfg job  prints the composed config without training; --debug shows tracebacks.
"""


# Hydra flags that print and train nothing (--help and -h are ablate's own: ablate/run_help.py).
HYDRA_INFO_FLAGS = {"--hydra-help", "--info", "-i", "--cfg", "-c", "--resolve", "--package", "-p"}


HYDRA_VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--config-name", "-cn", "--config-path", "-cp", "--config-dir", "-cd"}


def _overrides(arguments: Sequence[str]) -> list[str]:
    """The key=value overrides of a command line, without Hydra's flags and their values."""
    kept, skip = [], False
    for argument in arguments:
        if not skip and not argument.startswith("-"):
            kept.append(argument)
        skip = argument in HYDRA_VALUE_FLAGS
    return kept


def _config_dir(arguments: Sequence[str]) -> str | None:
    """The folder of Hydra's --config-dir (-cd) flag, if given: the user's own config groups, e.g. myconf/model/."""
    for flag, value in zip(arguments, [*arguments[1:], None]):
        if flag in ("--config-dir", "-cd"):
            return value
        if flag.startswith(("--config-dir=", "-cd=")):
            return flag.partition("=")[2]
    return None


def _fail(message: str) -> int:
    print(f"ablate: error: {message}", file=sys.stderr)
    return 2


def _config_failure(error: Exception) -> int:
    """A config mistake as one line and exit status 2; the whole traceback with HYDRA_FULL_ERROR=1."""
    from ablate.study import preflight

    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        raise error
    return _fail(preflight.one_line(error))


def machine_failure(failure: BaseException) -> str:
    """The one line of a write the machine refused during training: the folder, the cause, what happens next."""
    return (f"{failure}; that run is not stored and trains again when the same command runs once this is fixed "
            "(the study's finished runs are kept)")


def _hydra_main(run_job: Callable[[Any, Any], object]) -> Callable[[], object]:
    """The Hydra application: one call per variant, with the variant's config and its planned spec."""
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig

    from ablate.config import typed
    from ablate.study import plan

    plan.setup_hydra()

    @hydra.main(config_path="pkg://" + plan.CONFIG_MODULE, config_name=plan.CONFIG_NAME, version_base="1.3")
    def train(cfg: DictConfig) -> object:
        # A launcher may start the job in another folder (a Ray worker starts where `ray start` ran): go where
        # `ablate run` was typed, so relative paths (runs_dir, data.root) mean the same in every job.
        os.chdir(HydraConfig.get().runtime.cwd)
        return run_job(typed(cfg), plan.read_spec(HydraConfig.get().job.env_set.get(plan.SPEC_VARIABLE)))

    return train


def _jobs(planned: Any, hydra_arguments: list[str]) -> list[list[str]]:
    """The sweeper's jobs, one per planned variant: the command line's single-valued overrides, the variant's own,
    and its spec (which the job verifies instead of planning again)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from ablate.study import plan

    plain = [o.input_line for o in OverridesParser.create().parse_overrides(_overrides(hydra_arguments)) if not o.is_sweep_override()]
    return [[*plain, *v.variant.arguments, plan.spec_override(v)] for v in planned.variants if v.role == "study"]


def _hydra_arguments(arguments: list[str], overrides: list[str], retry_failed: bool) -> list[str]:
    """The command line Hydra gets: --multirun where the overrides list a factor's values (key=a,b), and the
    --retry-failed flag as the config key every job reads."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    sweeps = any(o.is_sweep_override() for o in OverridesParser.create().parse_overrides(overrides))
    flags = [a for a in arguments if a not in overrides]  # Hydra's parser takes flags before the overrides only
    multirun = ["--multirun"] if sweeps and not {"-m", "--multirun"} & set(flags) else []
    return [*multirun, *flags, *overrides, *(["retry_failed=true"] if retry_failed else [])]


def run(arguments: Sequence[str]) -> int:
    """Plan the study and check it against what is stored, then hand the command line to Hydra, which calls
    `run_variant` per variant.

    Exit status: 0 when every planned run is finished and ok, 1 when any failed, diverged, is damaged, missing or
    in progress elsewhere, 2 for a config error (nothing trained) or a write the machine refused (that run not
    stored), 130 after Ctrl-C (finished runs and checkpoints kept); after SIGTERM or SIGUSR1 the
    process writes checkpoints and ends by that signal (143 or 138 in a shell; see ablate/training/stopping.py).
    """
    if {"--help", "-h"} & set(arguments):
        from ablate import run_help  # reads the schema's source: no Hydra, no torch

        print(run_help.text())
        return 0
    flags = {"--dry-run", "--retry-failed"}
    dry_run, retry_failed = "--dry-run" in arguments, "--retry-failed" in arguments
    arguments = [a for a in arguments if a not in flags]
    if any(a in HYDRA_INFO_FLAGS for a in arguments):
        from ablate.training import runner  # training imports torch (1.7 s); planning and --dry-run do not

        sys.argv = ["ablate run", *arguments]
        for handler in logging.root.handlers[:]:  # Hydra logs --info to stdout itself; main's stderr handler would repeat it
            logging.root.removeHandler(handler)
        _hydra_main(runner.run_job)()  # Hydra prints its help, its info or the composed config and trains nothing
        return 0
    try:
        planned, unwritable = checked_plan(_overrides(arguments), dry_run, retry_failed, _config_dir(arguments))
    except Exception as error:  # noqa: BLE001 - every config mistake becomes one line, no traceback
        return _config_failure(error)
    return train(planned, arguments, dry_run, retry_failed, unwritable)


def checked_plan(overrides: Sequence[str], dry_run: bool = False, retry_failed: bool = False,
                 config_dir: str | None = None) -> tuple[Any, str]:
    """The plan of `ablate run OVERRIDES`, checked against the files and the stored runs (preflight; a tuned
    study's tuning runs) before anything trains, and what a dry run notes it could not write (empty when nothing);
    raises whatever config error it finds."""
    from ablate.study import adaptive, plan, preflight, tune

    planned = plan.build([*overrides, *(["retry_failed=true"] if retry_failed else [])], config_dir)
    checked = tune.tuning_plan(tune.arms(planned)) if tune.enabled(planned) else planned
    unwritable = preflight.check(checked, writing=not dry_run)
    adaptive.is_adaptive(planned)  # refuses seeds=auto where nothing is compared
    return planned, unwritable or ""


def train(planned: Any, arguments: Sequence[str], dry_run: bool = False, retry_failed: bool = False, unwritable: str = "") -> int:
    """Train a checked plan as `ablate run ARGUMENTS` does (or print it, with `dry_run`); the exit status of `run`."""
    from ablate.study import adaptive, status, tune, variance

    if tune.enabled(planned):
        return _run_tuned(planned, tune.arms(planned), arguments, dry_run, retry_failed, unwritable)
    if adaptive.is_adaptive(planned):
        return _run_adaptive(planned, arguments, dry_run, retry_failed)
    if dry_run:
        print(status.describe(planned) + (f"\nnote: {unwritable}; ablate run would refuse it" if unwritable else ""))
        return 0
    baseline = status.baseline_line(planned)
    if baseline:  # the config's own value of each factor, which the command line may not show
        print(baseline.strip())
    variants = len([v for v in planned.variants if v.role == "study"])
    title = variance.title(planned.study.config) if variance.enabled(planned.study.config) else f"{variants} variant(s) (baseline + {variants - 1})"
    stopped = _launched(planned, planned.hydra, arguments, retry_failed, title)
    return _ended(planned) if stopped is None else stopped


def _launched(phase: Any, hydra: Any, arguments: Sequence[str], retry_failed: bool, title: str) -> int | None:
    """Launch a phase's study variants (each with the seeds it trains now: a plain study's, one seeds=auto round's,
    a +tune phase's) through the command line's launcher (`hydra`: its composed `hydra` node). Hydra's basic launcher
    runs its jobs in this process, which planned them: here each variant trains as planned (`_train_here`), composed
    once. Any other launcher gets a Hydra job for each variant with runs left to train, one Hydra run per call; a
    variant whose every run is done is only named. None once the jobs have ended, else the exit status: 130 after
    Ctrl-C (saying what is kept), 2 after a write the machine refused."""
    from ablate.store.files import MachineFailure
    from ablate.study import launchers, status
    from ablate.training import runner

    hydra_arguments = _hydra_arguments(list(arguments), _overrides(arguments), retry_failed)
    multirun = phase.multirun or bool({"--multirun", "-m"} & set(hydra_arguments))
    try:
        if launchers.in_this_process(hydra):
            _train_here(phase, hydra, _jobs(phase, hydra_arguments) if multirun else [], title)
            return None
        waiting = [v for v in phase.variants if v.role == "study" and runner.has_runs_to_train(v)]
        for variant in phase.variants:
            if variant.role == "study" and variant not in waiting:
                runner.log_skipped(variant, len(variant.runs))
        if waiting:
            _launch_jobs(replace(phase, variants=tuple(waiting)), hydra_arguments, multirun, title)
    except KeyboardInterrupt:
        print(f"\nInterrupted. {status.kept(phase)} under {phase.study.config.runs_dir}/{phase.study.study}/; run the same "
              "command again to train only the missing ones (a run with a checkpoint goes on from it).", file=sys.stderr)
        return 130
    except MachineFailure as failure:
        return _fail(machine_failure(failure))
    return None


def _train_here(phase: Any, hydra: Any, jobs: list[list[str]], title: str) -> None:
    """Train a phase's study variants in this process, one after the other, as Hydra's basic launcher would run their
    jobs (its logging, and under a sweep its lines: the phase's title, then each job's overrides before it trains),
    without composing each job's config again: the plan already holds it, checked."""
    from hydra.core.utils import configure_log, filter_overrides
    from hydra_plugins.ablate_sweeper.ablate_sweeper import announce

    from ablate.training import runner

    configure_log(hydra.job_logging, hydra.verbose)
    variants = [v for v in phase.variants if v.role == "study"]
    if jobs:
        announce(title)
        log.info(f"Launching {len(jobs)} jobs locally")
    for index, variant in enumerate(variants):
        if jobs:
            log.info(f"\t#{index} : {' '.join(filter_overrides(jobs[index]))}")
        runner.run_variant(variant)


def _launch_jobs(phase: Any, hydra_arguments: list[str], multirun: bool, title: str) -> None:
    """Hand a phase's variants to Hydra as jobs of the command line's launcher (a single run without a sweep)."""
    from hydra_plugins.ablate_sweeper.ablate_sweeper import launching

    from ablate.study import plan
    from ablate.training import runner

    if multirun and not {"--multirun", "-m"} & set(hydra_arguments):  # a +tune phase of a one-off variant: several jobs all the same
        hydra_arguments = ["--multirun", *hydra_arguments]
    sys.argv = ["ablate run", *hydra_arguments, *([] if multirun else [plan.spec_override(phase.study)])]
    with launching(_jobs(phase, hydra_arguments), title):
        _hydra_main(runner.run_job)()


def outcome(planned: Any) -> dict[str, list]:
    """Where each run of a plan stands after training (a seeds=auto plan: the seeds it trained), by status."""
    from ablate.study import adaptive, status

    return status.study_status(adaptive.trained(planned) if adaptive.is_adaptive(planned) else planned)


def _ended(planned: Any) -> int:
    """Print the study's account after training; 0 when every planned run is finished and ok, else 1."""
    from ablate.study import status

    stood = outcome(planned)
    print(f"\nStudy {planned.study.study}: {status.describe_status(stood)}")
    return 0 if set(stood) <= {"ok"} else 1


def _run_adaptive(planned: Any, arguments: Sequence[str], dry_run: bool, retry_failed: bool) -> int:
    """seeds=auto: launch round after round the seeds the stored runs leave open, as jobs of the command line's
    launcher, deciding here after each round, until every comparison is decided or has spent its budget;
    --dry-run prints the state, the next round and where its jobs would run."""
    from ablate.store import results
    from ablate.study import adaptive, launchers, status

    metric = planned.study.config.adaptive.metric
    current = adaptive.state(planned)
    print(adaptive.describe(current, metric))
    if dry_run:
        print(f"Each round's jobs go through {launchers.where(planned.hydra)}; the next round is decided here, from the stored runs.")
        return 0
    while current.next_seeds:
        round_ = adaptive.next_round(planned, current)
        stopped = _launched(round_, planned.hydra, arguments, retry_failed, f"a round of seeds=auto, {len(round_.runs)} run(s) in "
                                                             f"{len(round_.variants)} variant(s)")
        if stopped is not None:
            return stopped
        if not any(results.is_finished(run.folder) for run in round_.runs):
            print(f"\nseeds=auto stops: no run of this round finished ({status.describe_status(status.study_status(round_))}); "
                  "run the same command again once what holds them ends (another process training them, or jobs that "
                  "trained nothing: their log says why).")
            return 1
        current = adaptive.state(planned)
        print(adaptive.describe(current, metric))
    return _ended(planned)


def _run_tuned(planned: Any, arms: Any, arguments: Sequence[str], dry_run: bool, retry_failed: bool, unwritable: str) -> int:
    """+tune: launch every arm's tuning runs, choose each arm's best point from them here, then launch the study's
    seeds there, both phases as jobs of the command line's launcher; --dry-run prints the tuning and final runs of
    every variant and where their jobs would run."""
    from ablate.study import launchers, preflight, status, tune

    print(tune.describe(planned, arms))
    if dry_run:
        print(f"The tuning runs' jobs, then the final runs' jobs, go through {launchers.where(planned.hydra)}.")
        print(f"note: {unwritable}; ablate run would refuse it" if unwritable else "", end="")
        return 0
    tuning = tune.tuning_plan(arms)
    stopped = _launched(tuning, planned.hydra, arguments, retry_failed, f"tuning, {len(tuning.variants)} variant(s) of study {tuning.study.study}")
    if stopped is not None:
        return stopped
    finals = tune.finals(planned, arms)
    if finals is None:
        outcome = status.study_status(tuning)
        print(f"\nTuning of {planned.study.study} is not complete, so no final run trains: {status.describe_status(outcome)}")
        return 1
    print(tune.describe(planned, arms))
    try:
        preflight.check(finals)
    except Exception as error:  # noqa: BLE001 - the chosen points' runs must pool with the study's stored ones
        return _config_failure(error)
    stopped = _launched(finals, planned.hydra, arguments, retry_failed, f"final runs, {len(finals.variants)} variant(s) at their best")
    if stopped is not None:
        return stopped
    outcome = status.study_status(finals)
    print(f"\nStudy {planned.study.study} at each variant's best: {status.describe_status(outcome)}")
    return 0 if set(outcome) <= {"ok"} else 1


def report(arguments: Sequence[str]) -> int:
    """Summaries, tables and charts of finished studies; with --format csv or json the per-run table on stdout."""
    import contextlib

    from ablate.lesion.page import sections as lesion_sections
    from ablate.report.stats import CI_METHODS
    from ablate.report.summary import FORMATS, PRINTED, ReportError, print_runs, write_reports
    from ablate.store.files import MachineFailure

    parser = argparse.ArgumentParser(prog="ablate report", description="Tables and charts of ablation studies.")
    parser.add_argument("paths", nargs="*", default=["runs"], help="a runs folder (every study in it) or study folders; default: runs")
    parser.add_argument("--out", default="reports", help="where reports/<study>/ go (default: reports)")
    parser.add_argument("--metric", default="test_acc", help="metric of metrics.json to compare (default: test_acc; e.g. val_acc with data.validation_size, test_loss, train_seconds)")
    parser.add_argument("--format", dest="formats", action="append", choices=(*FORMATS, "json"),
                        help="table formats to write (repeatable; default: md, csv and tex); csv or json also prints the "
                             "per-run table (runs.csv) to stdout, the tables for people going to stderr")
    parser.add_argument("--equivalence-margin", type=float, metavar="M",
                        help="test equivalence within ±M (in the metric's display unit: percentage points for accuracies)")
    parser.add_argument("--ci", choices=CI_METHODS, default="t", help="confidence intervals: t (Student/Welch, default) or bootstrap (BCa over seeds)")
    options = parser.parse_args(arguments)
    printed = [f for f in PRINTED if f in (options.formats or [])]
    if len(printed) > 1:
        return _fail("--format csv and --format json both print the per-run table to stdout; choose one")
    formats = [f for f in options.formats or FORMATS if f in FORMATS]
    try:
        with contextlib.redirect_stdout(sys.stderr if printed else sys.stdout):
            reported = write_reports(options.paths, options.out, options.metric, formats, options.equivalence_margin, options.ci,
                                     lesion_sections)
    except (FileNotFoundError, ReportError) as error:
        return _fail(str(error))
    except (MachineFailure, OSError) as error:  # a read-only --out, a full disk: each report written so far is whole
        where = f"{error.filename}: {error.strerror}" if isinstance(error, OSError) else str(error)
        return _fail(f"{where}; a report not written there is left as it was")
    if printed:
        print_runs(reported, printed[0])
    return 0


def inspect(arguments: Sequence[str]) -> int:
    """Print the layer table of the model (or of every variant of a sweep) that the overrides compose to."""
    from ablate.inspect.layers import FORMATS, inspect_overrides

    parser = argparse.ArgumentParser(prog="ablate inspect", description="Layer table: shapes, parameters, receptive field, FLOPs.")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides as for `ablate run`, e.g. model.depth=5 data=synthetic +sweep=kernel")
    parser.add_argument("--format", choices=FORMATS, default="md", help="md (default): tables; csv: one row per layer; json")
    parser.add_argument("--config-dir", "-cd", help="a folder of your own config groups, as for `ablate run`, e.g. myconf (myconf/model/mynet.yaml)")
    parser.add_argument("--multirun", "-m", action="store_true", help="as for `ablate run` (key=a,b lists a factor with or without it), so a pasted command works")
    options = parser.parse_args(arguments)
    try:
        text = inspect_overrides(options.overrides, options.format, options.config_dir)
    except Exception as error:  # noqa: BLE001 - every config mistake becomes one line, no traceback
        return _config_failure(error)
    print(text)
    return 0


def viz(arguments: Sequence[str]) -> int:
    """Write the pictures of one trained run (filters, activation maps, saliency) into its folder; print their paths."""
    from ablate.data.catalog import DataError
    from ablate.inspect.viz import write_pictures

    parser = argparse.ArgumentParser(
        prog="ablate viz", description="First-layer filters, activation maps and saliency of a trained run, as PNG.")
    parser.add_argument("run_dir", help="one run's folder, e.g. runs/depth/baseline/seed=0")
    parser.add_argument("--image", type=int, default=0, help="index of the test image for the activation and saliency maps (default 0)")
    options = parser.parse_args(arguments)
    try:
        written = write_pictures(options.run_dir, options.image)
    except (FileNotFoundError, ValueError, DataError) as error:
        return _fail(str(error))
    print("\n".join(str(path) for path in written))
    return 0


def lesion(arguments: Sequence[str]) -> int:
    """Lesion the trained networks of a study, a variant or a run; write lesion.csv and the study's page."""
    from pathlib import Path

    from ablate.lesion.compute import ORDERS, Settings
    from ablate.lesion.study import NotAStudy
    from ablate.lesion.study import lesion as lesion_study

    parser = argparse.ArgumentParser(prog="ablate lesion", description="Lesions of trained networks: single units, cumulative curves, whole layers.")
    parser.add_argument("path", help="a study folder (runs/batchnorm), one variant's folder or one run's folder")
    parser.add_argument("--split", choices=("test", "val"), default="test", help="the split evaluated (default test; val needs data.validation_size)")
    parser.add_argument("--orders", type=int, default=ORDERS, help=f"seeded random orders per cumulative curve (default {ORDERS})")
    parser.add_argument("--out", default="reports", help="where reports/<study>/ go (default: reports)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where to evaluate (default auto: a GPU if visible)")
    options = parser.parse_args(arguments)
    if options.orders < 1:
        return _fail(f"--orders must be a whole number of at least 1, got {options.orders}")
    try:
        return lesion_study(Path(options.path), Path(options.out), Settings(options.split, options.orders), options.device)
    except NotAStudy as error:
        return _fail(str(error))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script and of `python -m ablate`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in argv:  # any command: show tracebacks instead of one-line errors
        argv.remove("--debug")
        os.environ["HYDRA_FULL_ERROR"] = "1"
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)  # its font cache lines are no line of ablate's
    commands = {"run": run, "report": report, "inspect": inspect, "viz": viz, "lesion": lesion}
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    if argv[0] in ("-V", "--version"):
        print(f"ablate {__version__} ({DISTRIBUTION} on PyPI)")
        return 0
    if argv[0] not in commands:
        return _fail(f"unknown command {argv[0]!r}; choose one of: {', '.join(commands)}")
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
