"""Runs one variant of a study: finds its unfinished seeds, trains them, stores each result as it ends.

This is the glue between the engine (which knows nothing of files) and the results store (which knows
nothing of training); Hydra calls `run_variant` once per variant through ablate/cli.py. A run's identity
is its folder plus a hash of every setting that decides its numbers, so changed settings are never
mistaken for finished runs.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

from omegaconf import OmegaConf
from torch import Tensor

from ablate import checkpoint, provenance, results, transfer, weights
from ablate.config import AblateConfig, DataConfig, ModelConfig, TrainConfig, validate
from ablate.data import load_dataset
from ablate.engine import SeedResult, numerics, resolve_device, resolve_precision, resolve_strategy, train_seeds
from ablate.model import build_model, model_parts, parameter_count, plan_layers, receptive_field
from ablate.variants import BASELINE, parse_variant

log = logging.getLogger("ablate")


@dataclass
class VariantSummary:
    """What one call trained: counts per outcome."""

    study: str
    variant: str
    trained: int
    skipped: int
    failed: int


# Keys that entered the schema after runs were first stored: hashed only when they differ from their default.
ADDED_LATER = ("model.arch", "model.transfer", "model.weights", "data.classes", "train.finetune_lr_decay")


def config_hash(cfg: AblateConfig) -> str:
    """Hash of every setting that decides a run's numbers: model, data, train, resolved precision and strategy, and
    the pretraining task when the run starts from it.

    The strategy enters resolved (auto is eager on the CPU), so auto and eager name the same runs there while
    eager and vectorized never do; results.NOT_SETTINGS stay out. Keys added later (train.strategy, the transfer
    keys) enter only when they are set, so runs trained before they existed keep their hash.
    """
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    strategy = resolve_strategy(cfg.train.strategy, device, precision)
    sections = {"model": asdict(cfg.model), "data": asdict(cfg.data), "train": asdict(cfg.train)}
    defaults = {"model": asdict(ModelConfig()), "data": asdict(DataConfig()), "train": asdict(TrainConfig())}
    for section, values in sections.items():
        for key in list(values):
            name = f"{section}.{key}"
            if name in results.NOT_SETTINGS or name == "train.strategy" or (name in ADDED_LATER and values[key] == defaults[section][key]):
                del values[key]
    source = [cfg.pretrain] if needs_source(cfg) else []
    return provenance.settings_hash(sections["model"], sections["data"], sections["train"], precision, strategy, *source)


def seed_folders(cfg: AblateConfig, variant: str) -> dict[int, Path]:
    """Each seed's run folder."""
    return {seed: results.run_dir(cfg.runs_dir, cfg.study, variant, seed) for seed in cfg.seeds}


def stale_runs(cfg: AblateConfig, variant: str) -> list[str]:
    """Finished runs of this variant trained with other settings, each described by what differs."""
    current = {k: v for k, v in _flat(cfg).items() if k not in results.NOT_SETTINGS}
    expected, stale = config_hash(cfg), []
    for folder in seed_folders(cfg, variant).values():
        record = results.read_metrics(folder)
        if record is None or record.get("config_hash") == expected:
            continue
        stored = results.read_config(folder)
        differences = [f"{key}: {stored.get(key)} -> {value}" for key, value in current.items() if stored.get(key) != value]
        stale.append(f"{folder} ({', '.join(differences) or 'precision or strategy differs'})")
    stale += [f"{folder / checkpoint.CHECKPOINT_FILE} (an unfinished run's checkpoint)"  # written under other settings
              for folder in seed_folders(cfg, variant).values() if checkpoint.stale(folder, expected)]
    return stale


def _flat(cfg: AblateConfig) -> dict:
    container = OmegaConf.to_container(OmegaConf.structured(cfg))
    return results.flatten_config(container, "")


def run_variant(cfg: AblateConfig, variant: str) -> VariantSummary:
    """Train the seeds of `variant` that have no finished run and no other trainer, and store every outcome."""
    validate(cfg)
    folders = seed_folders(cfg, variant)
    pending = [seed for seed, folder in folders.items() if not results.is_finished(folder)]
    locks = {seed: results.RunLock(folders[seed]) for seed in pending}
    mine = [seed for seed in pending if locks[seed].acquire() and not results.is_finished(folders[seed])]
    busy = [seed for seed in pending if seed not in mine]
    skipped = len(cfg.seeds) - len(pending)
    if skipped or busy:
        others = f", {len(busy)} being trained by another process" if busy else ""
        log.info(f"{cfg.study}/{variant}: {skipped} finished run(s) skipped{others}, {len(mine)} to train")
    try:
        if not mine:
            return VariantSummary(cfg.study, variant, 0, skipped, 0)
        outcomes = _train_and_store(cfg, variant, mine, folders, locks)
    finally:
        for lock in locks.values():
            lock.release()
    return VariantSummary(cfg.study, variant, len(mine), skipped, sum(r.status != "ok" for r in outcomes))


def needs_source(cfg: AblateConfig) -> bool:
    """Whether this variant starts from a backbone that ablate pretrains itself (model.weights=pretrain)."""
    return cfg.model.transfer != "scratch" and cfg.model.weights == "pretrain"


def source_config(cfg: AblateConfig) -> AblateConfig:
    """The pretraining run behind model.weights=pretrain: the same network from scratch on the pretrain.* task,
    stored as study `<study>.source`, variant baseline, one run per seed of the study."""
    return replace(
        cfg, study=f"{cfg.study}.source", variant=BASELINE,
        model=replace(cfg.model, transfer="scratch", weights=None),
        data=replace(cfg.data, classes=cfg.pretrain.classes, train_size=cfg.pretrain.train_size),
        train=replace(cfg.train, epochs=cfg.pretrain.epochs),
    )


def pretrain(cfg: AblateConfig, seeds: list[int]) -> Path:
    """Train the source runs of `seeds` unless they are finished (waiting for any other process training them);
    returns the source's variant folder, which holds one run per seed."""
    source = replace(source_config(cfg), seeds=seeds)
    folders = seed_folders(source, BASELINE)
    while not all(results.is_finished(folder) for folder in folders.values()):
        run_variant(source, BASELINE)
        for folder in folders.values():  # a seed another process was training: wait until it lets go
            lock = results.RunLock(folder)
            lock.acquire(wait=True)
            lock.release()
    return folders[seeds[0]].parent


def _weights_for(cfg: AblateConfig, seeds: list[int]) -> Callable[[int], Optional[dict[str, Tensor]]]:
    """Where each seed's pretrained backbone comes from (nothing for model.transfer=scratch)."""
    if cfg.model.transfer == "scratch":
        return lambda seed: None
    spec = str(pretrain(cfg, seeds)) if needs_source(cfg) else cfg.model.weights
    return lambda seed: weights.load_weights(spec, seed, cfg.model.arch)


def _train_and_store(cfg: AblateConfig, variant: str, seeds: list[int], folders: dict[int, Path],
                     locks: dict[int, results.RunLock]) -> list[SeedResult]:
    data = load_dataset(cfg.data)
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    factor, value = parse_variant(variant)
    model = build_model(cfg.model, data.input_shape, data.num_classes)
    transfer.set_trainable(model_parts(model, cfg.model, data.input_shape, data.num_classes), cfg.model.transfer)
    common = {
        "study": cfg.study, "variant": variant, "factor": factor, "value": value,
        "params": parameter_count(model), "trainable_params": parameter_count(model, trainable_only=True),
        "receptive_field": receptive_field(plan_layers(cfg.model, data.input_shape, data.num_classes)) if cfg.model.arch == "cnn" else None,
        "device": str(device), "precision": precision, **numerics(device), "config_hash": config_hash(cfg),
        "dataset": data.name, "train_samples": len(data.train_y), "test_samples": len(data.test_y),
        "epochs": cfg.train.epochs, "planned_seeds": list(cfg.seeds), "versions": provenance.versions(),
        "git_commit": provenance.git_commit(),
    }

    def store(result: SeedResult) -> None:
        seed_cfg = replace(cfg, seeds=[result.seed], variant=variant)
        metrics = {**common, **result.metrics, "seed": result.seed, "status": result.status, "error": result.error,
                   "strategy": result.strategy, "strategy_note": result.note, "wall_seconds": round(result.wall_seconds, 3),
                   "resumed": result.resumed,
                   "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        config_yaml = OmegaConf.to_yaml(OmegaConf.structured(seed_cfg))
        results.write_run(folders[result.seed], config_yaml, result.history, metrics, result.state_dict)
        checkpoint.remove(folders[result.seed])  # after metrics.json: the run is finished, its checkpoint is spent
        locks[result.seed].release()
        if result.status != "ok":
            log.warning(f"{cfg.study}/{variant} seed {result.seed}: {result.status}: {result.error.splitlines()[0]}")
        if result.note:
            log.warning(f"{cfg.study}/{variant} seed {result.seed}: {result.note}")

    weights_for = _weights_for(cfg, seeds)
    saver = checkpoint.RunCheckpoints(folders, config_hash(cfg), f"{cfg.study}/{variant}", cfg.train.epochs, cfg.train.checkpoint_every)
    with saver.stopping():  # a stop signal: checkpoints written, then the process ends by it (ablate/stopping.py)
        outcomes = train_seeds(cfg.model, cfg.train, data, seeds, device, precision, label=f"{cfg.study}/{variant}", on_result=store,
                               weights_for=weights_for, hooks=saver.hooks)
    return outcomes


def study_status(planned: list[tuple[str, AblateConfig]]) -> dict[str, list[str]]:
    """Each planned run by outcome (ok, failed, diverged, missing): `study/variant/seed=N` names per outcome."""
    outcome: dict[str, list[str]] = {}
    for variant, cfg in planned:
        for seed, folder in seed_folders(cfg, variant).items():
            record = results.read_metrics(folder)
            status = record["status"] if record else "missing"
            outcome.setdefault(status, []).append(f"{cfg.study}/{variant}/seed={seed}")
    return outcome


def describe_plan(planned: list[tuple[str, AblateConfig]]) -> str:
    """What a command would do: every planned run, finished or to train, without training anything."""
    lines, to_train, going = [], 0, 0
    for variant, cfg in planned:
        for seed, folder in seed_folders(cfg, variant).items():
            finished = results.is_finished(folder)
            found = None if finished else checkpoint.read(folder)
            to_train += not finished
            going += found is not None
            where = f" (in progress: {found[1].epoch}/{cfg.train.epochs} epochs done, resumes at {found[1].position(cfg.train.epochs)})" if found else ""
            lines.append(f"  {'finished ' if finished else 'to train '} {folder}{where}")
    return "\n".join([f"{len(lines)} run(s) planned, {len(lines) - to_train} finished, {to_train} to train ({going} in progress):", *lines])


def describe_status(outcome: dict[str, list[str]]) -> str:
    """A one-screen account of a study's runs: counts, then each run that did not end well."""
    counts = Counter({status: len(names) for status, names in outcome.items()})
    lines = [", ".join(f"{counts[s]} {s}" for s in ("ok", "failed", "diverged", "missing") if counts[s])]
    for status in ("failed", "diverged", "missing"):
        lines += [f"  {status}: {name}" for name in outcome.get(status, [])[:20]]
    return "\n".join(lines)
