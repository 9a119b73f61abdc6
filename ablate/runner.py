"""Runs one variant of a study: finds its unfinished seeds, trains them, stores each result as it ends.

This is the glue between the engine (which knows nothing of files) and the results store (which knows
nothing of training); Hydra calls it once per variant through ablate/cli.py.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from omegaconf import OmegaConf

from ablate import provenance, results
from ablate.config import AblateConfig, validate
from ablate.data import load_dataset
from ablate.engine import SeedResult, numerics, resolve_device, resolve_precision, train_seeds
from ablate.model import build_model, parameter_count, plan_layers, receptive_field
from ablate.variants import parse_variant

log = logging.getLogger("ablate")


@dataclass
class VariantSummary:
    """What one call trained: counts per outcome."""

    study: str
    variant: str
    trained: int
    skipped: int
    failed: int


def run_variant(cfg: AblateConfig, variant: str) -> VariantSummary:
    """Train the seeds of `variant` that have no finished run under cfg.runs_dir, and store every outcome."""
    validate(cfg)
    folders = {seed: results.run_dir(cfg.runs_dir, cfg.study, variant, seed) for seed in cfg.seeds}
    pending = [seed for seed, folder in folders.items() if not results.is_finished(folder)]
    skipped = len(cfg.seeds) - len(pending)
    if skipped:
        log.info(f"{cfg.study}/{variant}: {skipped} finished run(s) skipped, {len(pending)} to train")
    if not pending:
        return VariantSummary(cfg.study, variant, 0, skipped, 0)

    data = load_dataset(cfg.data)
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    layers = plan_layers(cfg.model, data.input_shape, data.num_classes)
    factor, value = parse_variant(variant)
    common = {
        "study": cfg.study, "variant": variant, "factor": factor, "value": value,
        "params": parameter_count(build_model(cfg.model, data.input_shape, data.num_classes)),
        "receptive_field": receptive_field(layers),
        "device": str(device), "precision": precision, **numerics(device),
        "dataset": data.name, "train_samples": len(data.train_y), "test_samples": len(data.test_y),
        "epochs": cfg.train.epochs, "planned_seeds": list(cfg.seeds), "versions": provenance.versions(), "git_commit": provenance.git_commit(),
    }

    def store(result: SeedResult) -> None:
        seed_cfg = replace(cfg, seeds=[result.seed], variant=variant)
        metrics = {**common, **result.metrics, "seed": result.seed, "status": result.status, "error": result.error,
                   "strategy": result.strategy, "strategy_note": result.note,
                   "config_hash": provenance.settings_hash(cfg.model, cfg.data, cfg.train, precision, result.strategy),
                   "wall_seconds": round(result.wall_seconds, 3),
                   "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        results.write_run(folders[result.seed], OmegaConf.to_yaml(OmegaConf.structured(seed_cfg)), result.history, metrics)
        if result.status != "ok":
            log.warning(f"{cfg.study}/{variant} seed {result.seed}: {result.status}: {result.error.splitlines()[0]}")
        if result.note:
            log.warning(f"{cfg.study}/{variant} seed {result.seed}: {result.note}")

    outcomes = train_seeds(cfg.model, cfg.train, data, pending, device, precision, label=f"{cfg.study}/{variant}", on_result=store)
    failed = sum(r.status != "ok" for r in outcomes)
    return VariantSummary(cfg.study, variant, len(pending), skipped, failed)
