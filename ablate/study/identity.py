"""A run's identity: the settings that decide its numbers, as a flat dict of dotted keys, and nothing else.

Two runs with equal identities are the same experiment; a study pools runs whose identities differ only in their
variants' own keys. The run-time check (ablate/study/preflight.py) and the report (ablate/report/summary.py) both compare
identities with `conflicts`, so what `ablate run` accepts, `ablate report` pools.

Left out because they decide no number: where files live (runs_dir, data.root), switches (data.download),
names (study, variant), which seeds a command trains and how it adds them (`adaptive.*`), how +tune chooses (`tune.*`), which variants +variance=sources plans (`variance.*`), how many seeds share a vectorized group, settings the
chosen dataset ignores, the pretraining task when nothing starts from it, a seed stream nothing draws from
(augment without augmentation, dropout without the CNN's dropout), and `auto` (its resolved value is in).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

from ablate.config import PER_SEED, AblateConfig, ConfigError, flatten_config, model_node
from ablate.store import results
from ablate.study.resolve import AUTO_SETTINGS, TF32_SWITCHES, Resolved
from ablate.study.variants import BASELINE, keys_of, misnamed

# Keys that name, place, schedule or report a run: never identity (device, precision and train.strategy enter
# resolved).
NOT_IDENTITY = frozenset({
    "seeds", "variant", "study", "runs_dir", "retry_failed", *AUTO_SETTINGS,
    "train.seeds_per_group", "data.root", "data.download",
    "train.checkpoint_every",  # how often a run in training is saved: a resumed run's numbers are the same
})
# Keys that name files: identity holds what the files hold (see `content`).
CONTENT_KEYS = ("data.files", "model.weights")
# Sections that only say where else a finished run is logged, how seeds=auto chooses seeds, which variants a
# variance study plans, or how +tune chooses
# each variant's settings (the chosen values are in the identity of the runs trained at them).
NOT_IDENTITY_SECTIONS = ("logger.", "adaptive.", "tune.", "variance.")
# The image keys each dataset reads from the config; the others take shape and classes from their files.
DATASET_IMAGE_KEYS = {"synthetic": ("image_size", "channels", "num_classes"), "folder": ("image_size", "channels")}
IMAGE_KEYS = ("image_size", "channels", "num_classes")


def undrawn_streams(cfg: AblateConfig) -> set[str]:
    """The seed streams (`seed_streams.NAME`) this config draws nothing from, so their values decide no number."""
    m, t = cfg.model, cfg.train
    return ({"seed_streams.augment"} if t.augment == "none" else set()) | (
        {"seed_streams.dropout"} if m._target_ is not None or m.dropout == 0 else set())  # your network's dropout: from init's


def _unused(cfg: AblateConfig) -> set[str]:
    """Keys this config's other settings make irrelevant to its numbers."""
    m, d, t = cfg.model, cfg.data, cfg.train
    unused = {f"data.{key}" for key in IMAGE_KEYS if key not in DATASET_IMAGE_KEYS.get(d.name, ())}
    split_drawn = d.train_size is not None or d.validation_size is not None
    if d.name != "synthetic" and d.test_size is None and (not split_drawn or cfg.seed_streams.split == PER_SEED):
        unused.add("data.subset_seed")  # it only picks subsets (synthetic draws its images from it)
    if m.head == "gap":
        unused.add("model.hidden")  # the hidden layer belongs to the flatten head
    if m.transfer == "scratch":
        unused.add("model.weights")
    if m.transfer != "finetune":
        unused.add("train.finetune_lr_decay")
    if t.optimizer != "sgd":
        unused.add("train.momentum")
    if t.augment == "none":
        unused.add("train.augment_pixels")
    unused |= undrawn_streams(cfg)
    if not (m.transfer != "scratch" and m.weights == "pretrain"):
        unused.update(f"pretrain.{key}" for key in asdict(cfg.pretrain))
    return unused


def content(cfg: AblateConfig, kept: Mapping[str, Any]) -> dict[str, Any]:
    """The identity keys that name files, by what the files hold (read now): the data's (`data.files`) and
    model.weights'. Imported here: they need torch, which a report (stored runs recorded theirs) never imports."""
    from ablate.data.catalog import data_files
    from ablate.networks.weights import weights_identity

    found: dict[str, Any] = {"data.files": data_files(cfg.data)}
    if kept.get("model.weights") is not None:
        found["model.weights"] = weights_identity(kept["model.weights"], cfg.model.arch)
    return {key: value for key, value in found.items() if value is not None}


def identity(cfg: AblateConfig, resolved: Resolved, recorded: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """The settings that decide a run's numbers: its config less what decides nothing, the files it reads by content,
    plus what auto resolved to. A stored run passes its `recorded` identity: its files' content is what they held
    when it trained (CONTENT_KEYS taken from there; absent from runs older than them), not what they hold now; a run
    stored before identities were recorded has none, and its files are read as they are now."""
    settings = flatten_config({**asdict(cfg), "model": model_node(cfg.model)})  # your network: its `_target_` and own keys
    skip = NOT_IDENTITY | _unused(cfg)
    kept = {key: (list(value) if isinstance(value, tuple) else value) for key, value in settings.items()
            if key not in skip and not key.startswith(NOT_IDENTITY_SECTIONS)}
    files = content(cfg, kept) if recorded is None else {key: recorded[key] for key in CONTENT_KEYS if key in recorded}
    kept = {key: value for key, value in kept.items() if key not in CONTENT_KEYS} | files
    # Named as the user types them, holding what they resolved to: `train.strategy: eager -> vectorized`.
    kept.update(resolved.settings)
    return dict(sorted(kept.items()))


def identity_hash(settings: Mapping[str, Any]) -> str:
    """Short stable hash of an identity; equal identities give equal hashes."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]


def recorded_resolution(metrics: Mapping[str, Any]) -> Resolved:
    """What a stored run trained with, from its metrics.json (runs from before train.strategy existed were eager)."""
    tf32 = tuple((name, bool(metrics[name])) for name in TF32_SWITCHES if name in metrics)
    return Resolved(str(metrics.get("device", "cpu")).split(":")[0], str(metrics.get("precision", "fp32")),
                    str(metrics.get("strategy") or "eager"), tf32)


def stored_identity(path: Path, record: Mapping[str, Any]) -> dict[str, Any]:
    """A finished run's identity, derived from its config.yaml (through today's schema) and what its metrics.json
    says `auto` resolved to; derived rather than read, so runs from before identities were stored compare alike."""
    refuse_misnamed(path)
    return identity(results.stored_config(path), recorded_resolution(record), record.get("identity"))


def refuse_misnamed(path: Path) -> None:
    """Raise ConfigError when a run's variant folder names other values than its config.yaml holds (a folder copied
    or renamed by hand): a run's variant is what its config says, and a folder is never trusted over it."""
    name = results.variant_of(path.parent)
    wrong = misnamed(name, results.read_config(path))
    if wrong:
        raise ConfigError(f"{path}: the folder of variant {name!r} holds a run trained as another variant "
                          f"({'; '.join(wrong)}); move that run back to the folder its config names, or away")


def stored_identities(study_dir: Path) -> Iterable[tuple[Path, dict[str, Any]]]:
    """(run folder, identity) of every finished run of a study (none when the study does not exist yet)."""
    for folder, record in results.finished_runs(study_dir):
        yield folder, stored_identity(folder, record)


def conflicts(mine: Mapping[str, Any], theirs: Mapping[str, Any], own_keys: Iterable[str] = ()) -> list[tuple[str, Any, Any]]:
    """(key, theirs, mine) for every setting both identities hold that differs, except the variants' own keys."""
    skip = set(own_keys)
    return [(key, theirs[key], mine[key]) for key in mine
            if key in theirs and key not in skip and not _same(mine[key], theirs[key])]


def pool_conflicts(mine: tuple[str, Mapping[str, Any]], theirs: tuple[str, Mapping[str, Any]]) -> list[tuple[str, Any, Any]]:
    """The one pooling rule, used by `ablate run`, by every job and by the report: two runs, each (variant name,
    identity), pool when their identities agree on every setting both hold except the keys their variants change
    (none between two runs of one variant)."""
    return conflicts(mine[1], theirs[1], {*keys_of(mine[0]), *keys_of(theirs[0])})


def first_conflict(runs: Iterable[tuple[str, str, Mapping[str, Any]]]) -> Optional[tuple[str, str, list[tuple[str, Any, Any]]]]:
    """(theirs, mine, conflicts) of the first two runs, each (variant name, label, identity), that do not pool: every run
    against the first run of its own variant, and that one against the baseline's first run (or the first run)."""
    firsts: dict[str, tuple[str, str, Mapping[str, Any]]] = {}
    for run in runs:
        reference = firsts.setdefault(run[0], run)
        anchor = firsts.get(BASELINE, next(iter(firsts.values())))
        for other in (reference, anchor):
            found = pool_conflicts((run[0], run[2]), (other[0], other[2]))
            if found:
                return other[1], run[1], found
    return None


def _same(a: Any, b: Any) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and a != a and b != b)


def describe_conflicts(found: list[tuple[str, Any, Any]]) -> str:
    """'key: theirs -> mine' for each conflict, comma-separated."""
    return ", ".join(f"{key}: {_text(theirs)} -> {_text(mine)}" for key, theirs, mine in found)


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
