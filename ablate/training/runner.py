"""Runs one planned variant: finds its unfinished seeds, trains them, stores each result as it ends.

This is the glue between the engine (which knows nothing of files) and the results store (which knows nothing of
training); Hydra calls `run_variant` once per variant through ablate/cli.py, with the variant's plan
(ablate/study/plan.py), which says how it trains and what its identity is. The runner only skips, locks, trains and
stores.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional

from omegaconf import OmegaConf
from torch import Tensor

from ablate import trackers
from ablate.config import AUTO_SEEDS, FIXED_SPLIT, AblateConfig, ConfigError, flatten_config, format_value, plain, to_node
from ablate.data.datasets import Dataset, load_dataset
from ablate.networks import weights
from ablate.store import checkpoints, provenance, results
from ablate.study import preflight
from ablate.study.plan import VariantPlan, job_plan, needs_source, plan_variant, source_config
from ablate.study.variants import BASELINE, Variant
from ablate.training import checkpoint, streams
from ablate.training.engine import train_seeds
from ablate.training.loop import SeedResult

log = logging.getLogger("ablate")


@dataclass
class VariantSummary:
    """What one call trained: counts per outcome."""

    study: str
    variant: str
    trained: int
    skipped: int
    failed: int


def is_done(folder: Path, retry_failed: bool = False) -> bool:
    """A run needs no training: it is finished, and ended ok unless failed runs are to be retried."""
    record = results.read_metrics(folder)
    return record is not None and (record["status"] == "ok" or not retry_failed)


def has_runs_to_train(variant: VariantPlan) -> bool:
    """Whether any of the variant's runs is not done (`is_done`): only such a variant is worth a launcher's job."""
    return not all(is_done(run.folder, variant.config.retry_failed) for run in variant.runs)


def log_skipped(variant: VariantPlan, skipped: int, busy: int = 0, to_train: int = 0) -> None:
    """Say how many of a variant's runs are not trained now: finished ones, and those another process is training."""
    others = f", {busy} being trained by another process" if busy else ""
    log.info(f"{variant.study}/{variant.variant.name}: {skipped} finished run(s) skipped{others}, {to_train} to train")


def run_variant(variant: VariantPlan) -> VariantSummary:
    """Train the seeds of a planned variant that are not done and have no other trainer, and store every outcome."""
    cfg, name = variant.config, variant.variant.name
    runs = {run.seed: run for run in variant.runs}
    pending = [seed for seed, run in runs.items() if not is_done(run.folder, cfg.retry_failed)]
    try:
        preflight.refuse_conflicts(variant)  # again where the job runs, with what `auto` resolved to there
    except ConfigError as error:
        log.error(f"{cfg.study}/{name}: not trained: {error}")
        return VariantSummary(cfg.study, name, 0, len(cfg.seeds) - len(pending), len(pending))
    locks = {seed: results.RunLock(runs[seed].folder) for seed in pending}
    mine = [seed for seed in pending if locks[seed].acquire() and not is_done(runs[seed].folder, cfg.retry_failed)]
    busy = [seed for seed in pending if seed not in mine]
    skipped = len(runs) - len(pending)
    if skipped or busy:
        log_skipped(variant, skipped, len(busy), len(mine))
    try:
        if not mine:
            return VariantSummary(cfg.study, name, 0, skipped, 0)
        _set_aside_damaged(variant, mine)
        outcomes = _train_and_store(variant, mine, locks)
    finally:
        for lock in locks.values():
            lock.release()
    return VariantSummary(cfg.study, name, len(mine), skipped, sum(r.status != "ok" for r in outcomes))


def _set_aside_damaged(variant: VariantPlan, seeds: list[int]) -> None:
    """Move the files of each of these seeds' runs whose metrics.json is damaged aside (never deleted), saying so."""
    for run in variant.runs:
        if run.seed in seeds and (reason := results.damage(run.folder)):
            aside = results.set_aside(run.folder)
            log.warning(f"{variant.study}/{variant.variant.name} seed {run.seed}: damaged: {run.folder}/{reason}; its files "
                        f"are moved to {aside}/ and it trains again")


def run_job(config: AblateConfig, spec: Mapping[str, Any]) -> Optional[VariantSummary]:
    """One Hydra job: verify its planned variant here (`auto` resolved on this machine), then train it. A plan this
    machine cannot keep trains nothing and is logged, naming the key; the study's other jobs go on."""
    try:
        variant = job_plan(config, spec)
    except ConfigError as error:
        log.error(f"{config.study}/{spec['variant']}: not trained: {error}")
        return None
    return run_variant(variant)


def pretrain(variant: VariantPlan, seeds: list[int]) -> Path:
    """Train the source runs of `seeds` unless they are finished (waiting for any other process training them);
    returns the source's variant folder, which holds one run per seed."""
    source = plan_variant(replace(source_config(variant.config), seeds=seeds), Variant(BASELINE), role="source")
    folders = [run.folder for run in source.runs]
    while not all(results.is_finished(folder) for folder in folders):
        run_variant(source)
        for folder in folders:  # a seed another process was training: wait until it lets go
            lock = results.RunLock(folder)
            lock.acquire(wait=True)
            lock.release()
    return folders[0].parent


def _weights_for(variant: VariantPlan, seeds: list[int]) -> Callable[[int], Optional[dict[str, Tensor]]]:
    """Where each seed's pretrained backbone comes from (nothing for model.transfer=scratch)."""
    cfg = variant.config
    if cfg.model.transfer == "scratch":
        return lambda seed: None
    spec = str(pretrain(variant, seeds)) if needs_source(cfg) else cfg.model.weights
    return lambda seed: weights.load_weights(spec, seed, cfg.model.arch)


def _train_and_store(variant: VariantPlan, seeds: list[int], locks: Mapping[int, results.RunLock]) -> list[SeedResult]:
    cfg, name, resolved = variant.config, variant.variant.name, variant.resolved
    folders = {run.seed: run.folder for run in variant.runs}
    started = datetime.now(timezone.utc).isoformat(timespec="microseconds")
    data = load_dataset(cfg.data)
    described = variant.network
    common = {
        "study": cfg.study, "variant": name, "factor": variant.variant.factor, "value": variant.variant.value,
        "variant_overrides": {key: format_value(value) for key, value in variant.variant.overrides},
        "identity": dict(variant.identity), "identity_hash": variant.identity_hash,
        "params": described.params, "trainable_params": described.trainable_params, "receptive_field": described.receptive_field,
        "device": resolved.device, "precision": resolved.precision, **resolved.numerics,
        "dataset": data.name, "epochs": cfg.train.epochs, "planned_seeds": [run.seed for run in variant.runs],
        "adaptive": cfg.seeds == AUTO_SEEDS, "versions": provenance.versions(),
        "hardware": provenance.hardware(resolved.torch_device), "git_commit": provenance.git_commit(),
        "gpu_assigned": os.environ.get("CUDA_VISIBLE_DEVICES"), "started_at": started,  # the GPU a launcher gave the job
        "process": provenance.process(),
    }

    def store(data: Dataset, result: SeedResult) -> None:
        seed_cfg = replace(cfg, seeds=[result.seed])
        note = result.note or resolved.strategy_note
        metrics = {**common, "train_samples": len(data.train_y), "test_samples": len(data.test_y),
                   "validation_samples": len(data.val_y), "normalisation": data.normalisation,
                   "seed_streams": streams.recorded(cfg.seed_streams, result.seed, cfg.data.subset_seed),
                   **result.metrics, "seed": result.seed, "status": result.status, "error": result.error,
                   "strategy": result.strategy, "strategy_note": note, "wall_seconds": round(result.wall_seconds, 3),
                   "resumed": result.resumed,
                   "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        results.write_run(folders[result.seed], OmegaConf.to_yaml(to_node(seed_cfg)), result.history, metrics, result.state_dict)
        checkpoints.remove(folders[result.seed])  # after metrics.json: the run is finished, its checkpoint is spent
        locks[result.seed].release()
        trackers.log_run(cfg.logger, flatten_config(plain(seed_cfg)), metrics, result.history, result.metrics)
        if result.status != "ok":
            log.warning(f"{cfg.study}/{name} seed {result.seed}: {result.status}: {result.error.splitlines()[0]}")
        if note:
            log.warning(f"{cfg.study}/{name} seed {result.seed}: {note}")

    weights_for = _weights_for(variant, seeds)
    train = replace(cfg.train, strategy=resolved.strategy)
    saver = checkpoint.RunCheckpoints(folders, variant.identity_hash, f"{cfg.study}/{name}", cfg.train.epochs, cfg.train.checkpoint_every,
                                    held=seeds)
    outcomes: list[SeedResult] = []
    with saver.stopping():  # a stop signal: checkpoints written, then the process ends by it (ablate/training/stopping.py)
        for group, group_data in _split_groups(cfg, seeds, data):
            outcomes += train_seeds(cfg.model, train, group_data, group, resolved.torch_device, resolved.precision,
                                    label=f"{cfg.study}/{name}", on_result=functools.partial(store, group_data),
                                    weights_for=weights_for, hooks=saver.hooks, described=described, streams=cfg.seed_streams)
    return outcomes


def _split_groups(cfg: AblateConfig, seeds: list[int], data: Dataset) -> Iterator[tuple[list[int], Dataset]]:
    """The seeds that train on one dataset, with it: all of them on `data` (the fixed split), or under
    seed_streams.split=per_seed each seed alone on its own training subset and hold-out, loaded when its turn comes."""
    if cfg.seed_streams.split == FIXED_SPLIT:
        yield seeds, data
        return
    for seed in seeds:
        yield [seed], load_dataset(cfg.data, streams.split_seed(cfg.seed_streams, seed, cfg.data.subset_seed))
