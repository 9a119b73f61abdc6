"""A run's lesion results, cached in its folder (`lesion-<key>.json`) under a key of the run's identity, its weights
and the lesion settings, so `ablate lesion` run again computes only the pieces that are missing; each piece is
written the moment it is computed (the whole file atomically), so a killed lesion resumes where it stopped."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

from ablate.store import results


def cache_key(identity_hash: str, seed: int, weights_digest: str, settings: Mapping[str, Any]) -> str:
    """16 hex digits of SHA-256 over what decides a run's lesion numbers: its identity, seed, weights and settings."""
    text = json.dumps({"identity": identity_hash, "seed": seed, "weights": weights_digest, "settings": dict(settings)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_file(run_path: Path, key: str) -> Path:
    """Where a run's lesion pieces under `key` are kept."""
    return Path(run_path) / f"lesion-{key}.json"


def read_pieces(run_path: Path, key: str) -> dict[str, Any]:
    """The pieces computed so far (piece name -> its numbers); none where the file is absent or not whole JSON."""
    try:
        stored = json.loads(cache_file(run_path, key).read_text())
    except (OSError, ValueError):
        return {}
    return stored.get("pieces", {}) if isinstance(stored, dict) else {}


def write_pieces(run_path: Path, key: str, settings: Mapping[str, Any], pieces: Mapping[str, Any]) -> None:
    """Keep every piece computed so far, with the settings they were computed under (atomically)."""
    results.write_file(run_path, cache_file(run_path, key).name, json.dumps({"settings": dict(settings), "pieces": dict(pieces)}) + "\n")
