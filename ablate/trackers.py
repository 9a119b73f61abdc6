"""Experiment trackers: every finished run's per-epoch curves and final metrics, also logged to TensorBoard, MLflow
or W&B (`logger=NAME`), one tracker run per seed, grouped by study and variant so the tracker can pool the seeds.

Each tracker is an optional package, imported only here and only when chosen; runs/ stays the record of truth.
"""

from __future__ import annotations

import importlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from ablate import DISTRIBUTION
from ablate.config import ConfigError, LoggerConfig

log = logging.getLogger("ablate")

# The modules each tracker needs (MLflow's SQLite store needs sqlalchemy and alembic), and the pip extra with them.
NEEDS = {"tensorboard": ("tensorboard",), "mlflow": ("mlflow", "sqlalchemy", "alembic"), "wandb": ("wandb",)}
# What identifies a run in the tracker: tags in MLflow, tags and config in W&B, hparams in TensorBoard.
TAGS = ("study", "variant", "factor", "value", "seed", "identity_hash", "status")
# Values of metrics.json logged with the training's own final metrics.
RUN_FIGURES = ("params", "trainable_params", "wall_seconds")


@dataclass
class FinishedRun:
    """One seed's run as a tracker sees it: who it is, its settings, its per-epoch rows and its final metrics."""

    study: str
    variant: str
    seed: int
    ok: bool
    tags: dict[str, str]
    params: dict[str, Any]
    history: list[dict[str, float]]
    final: dict[str, float]

    @property
    def name(self) -> str:
        return f"{self.variant}/seed={self.seed}"

    @property
    def last_epoch(self) -> int:
        return int(self.history[-1]["epoch"]) if self.history else 0

    def curves(self) -> Iterator[tuple[int, dict[str, float]]]:
        """(epoch, {metric: value}) per history row; the epoch is the step."""
        for row in self.history:
            yield int(row["epoch"]), {key: float(value) for key, value in row.items() if key != "epoch"}


def check(logger: LoggerConfig) -> None:
    """Refuse `logger=NAME` before any training when its package is missing: one line saying what to install."""
    for module in NEEDS.get(logger.name, ()):
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise ConfigError(
                f"logger={logger.name} needs the {module} package, which cannot be imported ({error}); "
                f"install it with: pip install '{DISTRIBUTION}[{logger.name}]'"
            ) from None


def log_run(logger: LoggerConfig, params: dict[str, Any], record: dict[str, Any], history: list[dict[str, float]],
            final: dict[str, float]) -> None:
    """Log one finished run (its metrics.json `record`, per-epoch `history`, the training's `final` metrics and the
    flat config `params`) to the chosen tracker. A tracker error is a warning: the run's files are already written."""
    if logger.name == "none":
        return
    run = FinishedRun(
        study=record["study"], variant=record["variant"], seed=int(record["seed"]), ok=record["status"] == "ok",
        tags={key: str(record.get(key, "")) for key in TAGS},
        params={key: value for key, value in params.items() if not key.startswith("logger.")},
        history=history, final={**final, **{key: record[key] for key in RUN_FIGURES if key in record}},
    )
    try:
        where = WRITERS[logger.name](logger, run)
    except Exception as error:  # noqa: BLE001 - any tracker failure; the results on disk are complete
        log.warning(f"{run.study}/{run.name}: not logged to {logger.name} ({type(error).__name__}: {error}); "
                    f"its results are in runs/ all the same")
        return
    log.info(f"{run.study}/{run.name}: logged to {logger.name} ({where})")


def _mlflow(logger: LoggerConfig, run: FinishedRun) -> str:
    """Experiment = study, run name variant/seed=N, tags, params, every curve by epoch and the final metrics."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=logger.tracking_uri)
    experiment = client.get_experiment_by_name(run.study)
    if experiment is None:
        try:
            client.create_experiment(run.study)
        except MlflowException:  # another process (a parallel launcher's job) created it first
            pass
        experiment = client.get_experiment_by_name(run.study)
    run_id = client.create_run(experiment.experiment_id, run_name=run.name, tags=run.tags).info.run_id
    now = int(time.time() * 1000)
    metrics = [Metric(key, value, now, epoch) for epoch, row in run.curves() for key, value in row.items()]
    metrics += [Metric(f"final/{key}", float(value), now, run.last_epoch) for key, value in run.final.items()]
    params = [Param(key, str(value)) for key, value in run.params.items()]
    status = "FAILED"
    try:
        for start in range(0, max(len(metrics), len(params)), 100):  # MLflow takes at most 100 params per batch
            client.log_batch(run_id, metrics=metrics[start : start + 100], params=params[start : start + 100])
        status = "FINISHED" if run.ok else "FAILED"
    finally:
        client.set_terminated(run_id, status)
    return f"{client.tracking_uri}, experiment {run.study!r}"


def _tensorboard(logger: LoggerConfig, run: FinishedRun) -> str:
    """One event-file folder per run, <save_dir>/<study>/<variant>/seed=N: curves by epoch, then the identity and
    settings as hparams with the final metrics (TensorBoard's HParams tab pools them)."""
    from torch.utils.tensorboard import SummaryWriter

    folder = Path(logger.save_dir) / run.study / run.variant / f"seed={run.seed}"
    hparams = {key: value if isinstance(value, (bool, int, float, str)) else str(value)
               for key, value in {**run.tags, **run.params}.items()}
    with SummaryWriter(str(folder)) as writer:
        for epoch, row in run.curves():
            for key, value in row.items():
                writer.add_scalar(key, value, epoch)
        final = {f"final/{key}": float(value) for key, value in run.final.items()}
        writer.add_hparams(hparams, final, run_name=".", global_step=run.last_epoch)
    return str(folder)


def _wandb(logger: LoggerConfig, run: FinishedRun) -> str:
    """Project = study, group = variant (W&B pools a group's seeds), run name variant/seed=N, tags key=value."""
    import wandb

    Path(logger.save_dir).mkdir(parents=True, exist_ok=True)
    settings = wandb.Settings(silent=True, console="off", x_disable_stats=True, save_code=False)
    with wandb.init(project=run.study, group=run.variant, name=run.name, dir=logger.save_dir, mode=logger.mode,
                    tags=[f"{key}={value}" for key, value in run.tags.items()], config={**run.tags, **run.params},
                    reinit="create_new", settings=settings) as tracked:
        for epoch, row in run.curves():
            tracked.log(row, step=epoch)
        tracked.summary.update({f"final/{key}": value for key, value in run.final.items()})
        where = tracked.settings.sync_dir if logger.mode == "offline" else tracked.url
        tracked.finish(exit_code=0 if run.ok else 1)
    return str(where)


WRITERS: dict[str, Callable[[LoggerConfig, FinishedRun], str]] = {
    "tensorboard": _tensorboard, "mlflow": _mlflow, "wandb": _wandb,
}
