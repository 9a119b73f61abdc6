"""Checkpoint files of runs still training: what one holds, its atomic write beside the run, and its careful read.

A checkpoint is `seed=N/checkpoint.pt`, one per seed even when seeds train as one vectorized group (each holds its
own slice), so every run folder says on its own how far it got. It is never a finished run: that is metrics.json
alone. It stores the identity hash of the variant it belongs to; one written under another identity is refused like a
stale run, and a damaged one (or one of another format) is ignored with a warning (the run starts over).
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from ablate.config import ConfigError
from ablate.store import results

if TYPE_CHECKING:  # torch is imported where checkpoints are written or read: planning and listing need none
    import torch

log = logging.getLogger("ablate")

CHECKPOINT_FILE = "checkpoint.pt"
FORMAT = 3  # 2: each seed's trainer state holds its dropout generator; 3: its augment generator's state beside `order`


@dataclass
class SeedState:
    """Everything one seed needs to go on exactly where it stopped.

    `epoch` epochs are finished and `step` batches of the next one are done (0 at an epoch's end); `order` is the
    seed's data-order generator state at the start of that next epoch (its permutation is drawn again from it) and
    `augment` its augment generator's (its shifts);
    `partial` holds that epoch's loss sum, correct count and seconds so far. `trainer` is the seed's weights,
    optimizer and grad-scaler state; `rng` the global RNG states; `resumed` where earlier attempts stopped; `group`
    the seeds it trained with (vectorized), which must all go on together for its numbers to stay the same.
    """

    seed: int
    group: list[int]
    strategy: str
    epoch: int
    step: int
    order: torch.Tensor
    trainer: dict[str, Any]
    rng: dict[str, Any]
    partial: dict[str, float] = field(default_factory=dict)
    status: str = "ok"
    error: Optional[str] = None
    metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    resumed: list[dict[str, int]] = field(default_factory=list)
    augment: Optional[torch.Tensor] = None

    def point(self) -> tuple[int, int]:
        """(epochs done, steps of the next), for comparing seeds' states."""
        return self.epoch, self.step

    def position(self, epochs: int) -> str:
        """Where it goes on, in words: `epoch 2/3` (epoch 1 done) or `epoch 2/3, step 5`."""
        return f"epoch {self.epoch + 1}/{epochs}" + (f", step {self.step}" if self.step else "")


def write(folders: dict[int, Path], states: list[SeedState], settings: str) -> None:
    """Store seeds' states beside their runs, each file atomically (a kill mid-write leaves the previous one whole);
    all are serialized before the first is replaced, so a group's files change within moments of each other."""
    import torch

    encoded = []
    for state in states:
        buffer = io.BytesIO()
        torch.save({"format": FORMAT, "settings": settings, "state": asdict(state)}, buffer)
        encoded.append((folders[state.seed], buffer.getvalue()))
    for folder, data in encoded:
        results.write_file(folder, CHECKPOINT_FILE, data)


def read(folder: Path) -> Optional[tuple[str, SeedState]]:
    """A run's checkpoint as (identity hash, state); None when there is none (or no longer: its run just ended), or
    (with a warning) when it is damaged. Memory-mapped: tensors are read only when used, so a listing does not load
    every run's weights. The file is opened once and read through that opening (`_opened`), so a checkpoint that the
    process training the run replaces or removes meanwhile is read whole, as it was, never taken for a damaged one."""
    path = folder / CHECKPOINT_FILE
    if not path.is_file():
        return None
    try:
        handle = os.open(path, os.O_RDONLY)
    except FileNotFoundError:  # removed since: its run was stored
        return None
    import torch

    try:
        stored = torch.load(_opened(path, handle), map_location="cpu", weights_only=True, mmap=True)
        if stored["format"] != FORMAT:
            raise ValueError(f"format {stored['format']}, this ablate reads format {FORMAT}")
        return stored["settings"], SeedState(**stored["state"])
    except Exception as error:  # noqa: BLE001 - any unreadable file is damaged, whatever the reason
        log.warning(f"{path} is damaged ({type(error).__name__}: {error}); ignoring it, the run starts over")
        return None
    finally:
        os.close(handle)


def _opened(path: Path, handle: int) -> str:
    """A name that opens the very file `handle` has open (Linux's /proc/self/fd), even after `path` was replaced or
    removed: torch.load opens a memory-mapped file twice, by name; `path` itself where there is no such name."""
    name = f"/proc/self/fd/{handle}"
    return name if os.path.exists(name) else str(path)


def remove(folder: Path) -> None:
    """Delete a run's checkpoint once its run is stored (metrics.json written)."""
    (folder / CHECKPOINT_FILE).unlink(missing_ok=True)


def in_progress(study_dir: Path) -> dict[str, set[int]]:
    """Each variant's seeds still training in a study: a checkpoint and no metrics.json."""
    going: dict[str, set[int]] = {}
    for path in study_dir.glob(f"*/seed=*/{CHECKPOINT_FILE}"):
        if not results.is_finished(path.parent):
            going.setdefault(results.variant_of(path.parent.parent), set()).add(int(path.parent.name.removeprefix("seed=")))
    return going


def progress(folder: Path, epochs: int) -> str:
    """How far a run in training got, for listings (` (in progress: 1/3 epochs done, resumes at epoch 2/3)`), or ''."""
    found = read(folder)
    if found is None:
        return ""
    return f" (in progress: {found[1].epoch}/{epochs} epochs done, resumes at {found[1].position(epochs)})"


def refuse_stale(folders: list[Path], settings: str) -> None:
    """Raise ConfigError when an unfinished run holds a checkpoint written under other settings (identity hash)."""
    for folder in folders:
        found = read(folder) if not results.is_finished(folder) else None
        if found is not None and found[0] != settings:
            raise ConfigError(
                f"{folder / CHECKPOINT_FILE} was written by a run with other settings; it will not be continued under "
                "these: choose a new study name (study=NAME) or move that run folder away")
