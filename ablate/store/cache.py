"""ablate's own cache folder ($XDG_CACHE_HOME/ablate, else ~/.cache/ablate): answers that are slow to learn and
cheap to check, each remembered under a key that changes whenever the answer could (a file's size and time, the
torch build and the devices it sees). Losing the folder only costs the next command the slow way."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Optional


def folder() -> Path:
    """Where ablate keeps what it remembers across commands."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ablate"


def recall(kind: str, key: str) -> Optional[Any]:
    """The value remembered for `key` in `kind` (one JSON-lines file per kind), or None if there is none."""
    try:
        lines = (folder() / f"{kind}.jsonl").read_text().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict) and entry.get("key") == key:
                return entry.get("value")
    return None


def remember(kind: str, key: str, value: Any) -> None:
    """Keep `value` for `key`; a folder that cannot be written only costs the next command the slow way again."""
    with contextlib.suppress(OSError):
        folder().mkdir(parents=True, exist_ok=True)
        with (folder() / f"{kind}.jsonl").open("a") as stream:
            stream.write(json.dumps({"key": key, "value": value}) + "\n")
