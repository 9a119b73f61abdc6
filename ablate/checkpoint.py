"""Checkpoints of runs still training: what one holds, its atomic write beside the run, and its careful read.

A checkpoint is `seed=N/checkpoint.pt`, one per seed even when seeds train as one vectorized group (each holds its
own slice), so every run folder says on its own how far it got. It is never a finished run: that is metrics.json
alone. It stores the identity hash of the variant it belongs to; one written under another identity is refused like a
stale run, and a damaged one (or one of another format) is ignored with a warning (the run starts over).
"""

from __future__ import annotations

import contextlib
import io
import logging
import signal
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import torch

from ablate import results
from ablate.config import ConfigError
from ablate.stopping import StopSignals

log = logging.getLogger("ablate")

CHECKPOINT_FILE = "checkpoint.pt"
FORMAT = 1


@dataclass
class SeedState:
    """Everything one seed needs to go on exactly where it stopped.

    `epoch` epochs are finished and `step` batches of the next one are done (0 at an epoch's end); `order` is the
    seed's data-order generator state at the start of that next epoch (its permutation is drawn again from it);
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

    def point(self) -> tuple[int, int]:
        """(epochs done, steps of the next), for comparing seeds' states."""
        return self.epoch, self.step

    def position(self, epochs: int) -> str:
        """Where it goes on, in words: `epoch 2/3` (epoch 1 done) or `epoch 2/3, step 5`."""
        return f"epoch {self.epoch + 1}/{epochs}" + (f", step {self.step}" if self.step else "")


EpochHook = Callable[[int, list, Callable[[], list[SeedState]]], None]
"""Called after every epoch with the epoch, the group's SeedResults so far and a function building its SeedStates."""


class Stopped(BaseException):
    """Training stopped between two steps because a signal asked for it; carries each seed's state at that point.

    A BaseException (like KeyboardInterrupt), so the engine's fallback for failed seeds does not take it for one.
    """

    def __init__(self, states: list[SeedState]) -> None:
        super().__init__("stopped by a signal")
        self.states = states


@dataclass
class Hooks:
    """What the engine asks of whoever stores runs: a seed's state to resume from, a call after each epoch, and
    whether to stop now (a signal arrived)."""

    resume: Callable[[int], Optional[SeedState]] = lambda seed: None
    on_epoch: EpochHook = lambda epoch, outcomes, states: None
    stop: Callable[[], bool] = lambda: False


def rng_state() -> dict[str, Any]:
    """The global RNG states (CPU, and every CUDA device when there is one)."""
    return {"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict[str, Any]) -> None:
    """Put back what `rng_state` took."""
    torch.set_rng_state(state["cpu"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])


def write(folders: dict[int, Path], states: list[SeedState], settings: str) -> None:
    """Store seeds' states beside their runs, each file atomically (a kill mid-write leaves the previous one whole);
    all are serialized before the first is replaced, so a group's files change within moments of each other."""
    encoded = []
    for state in states:
        buffer = io.BytesIO()
        torch.save({"format": FORMAT, "settings": settings, "state": asdict(state)}, buffer)
        encoded.append((folders[state.seed], buffer.getvalue()))
    for folder, data in encoded:
        results.write_file(folder, CHECKPOINT_FILE, data)


def read(folder: Path) -> Optional[tuple[str, SeedState]]:
    """A run's checkpoint as (identity hash, state); None when there is none, or (with a warning) when it is damaged.
    Memory-mapped: tensors are read only when used, so a listing does not load every run's weights."""
    path = folder / CHECKPOINT_FILE
    if not path.is_file():
        return None
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        if stored["format"] != FORMAT:
            raise ValueError(f"format {stored['format']}, this ablate reads format {FORMAT}")
        return stored["settings"], SeedState(**stored["state"])
    except Exception as error:  # noqa: BLE001 - any unreadable file is damaged, whatever the reason
        log.warning(f"{path} is damaged ({type(error).__name__}: {error}); ignoring it, the run starts over")
        return None


def remove(folder: Path) -> None:
    """Delete a run's checkpoint once its run is stored (metrics.json written)."""
    (folder / CHECKPOINT_FILE).unlink(missing_ok=True)


def in_progress(study_dir: Path) -> dict[str, set[int]]:
    """Each variant's seeds still training in a study: a checkpoint and no metrics.json."""
    going: dict[str, set[int]] = {}
    for path in study_dir.glob(f"*/seed=*/{CHECKPOINT_FILE}"):
        if not results.is_finished(path.parent):
            going.setdefault(path.parent.parent.name, set()).add(int(path.parent.name.removeprefix("seed=")))
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


class RunCheckpoints:
    """The runner's side of the hooks for one variant: reads checkpoints to resume from, writes history.csv after
    every epoch and a checkpoint every `every` epochs (0: never), and writes every seed's state when stopped."""

    def __init__(self, folders: dict[int, Path], settings: str, label: str, epochs: int, every: int) -> None:
        self.folders, self.settings, self.label, self.epochs, self.every = folders, settings, label, epochs, every
        self.signals = StopSignals()
        self.found: Optional[dict[int, SeedState]] = None
        self.hooks = Hooks(resume=self.resume, on_epoch=self.on_epoch, stop=self.signals.requested)

    @contextlib.contextmanager
    def stopping(self) -> Iterator[None]:
        """Train inside this: a stop signal ends training between two steps, every seed's state is written, and the
        signal is handed on (see ablate/stopping.py); one that came after the last step is handed on at the end."""
        with self.signals:
            try:
                yield
            except Stopped as stopped:
                self.save(stopped.states)
                where = ", ".join(f"seed {s.seed} at {s.position(self.epochs)}" for s in stopped.states)
                log.warning(f"{self.label}: stopped by {signal.Signals(self.signals.received).name}; checkpoint written "
                            f"({where}); run the same command again to resume")
        self.signals.hand_on()

    def resume(self, seed: int) -> Optional[SeedState]:
        """The seed's checkpoint, if its run is unfinished, it was written under these settings (the preflight refuses
        others) and every seed of its group has one at the same point (else the group starts over together)."""
        if self.found is None:
            self.found = self._consistent()
        state = self.found.get(seed)
        if state is not None:
            log.info(f"resuming seed {seed} of variant {self.label} at {state.position(self.epochs)}")
        return state

    def _consistent(self) -> dict[int, SeedState]:
        found = {seed: read(folder) for seed, folder in self.folders.items() if not results.is_finished(folder)}
        states = {seed: pair[1] for seed, pair in found.items() if pair is not None and pair[0] == self.settings}
        kept = {seed: state for seed, state in states.items()
                if all(seed in states and states[seed].point() == state.point() for seed in state.group)}
        for seed in sorted(states.keys() - kept.keys()):
            log.warning(f"{self.label}: seed {seed}'s checkpoint is ignored: the seeds it trained with together "
                        f"({states[seed].group}) have none at the same point; they start over")
        return kept

    def on_epoch(self, epoch: int, outcomes: list, states: Callable[[], list[SeedState]]) -> None:
        """history.csv of every seed still training, and the checkpoints when one is due."""
        for outcome in outcomes:
            results.write_history(self.folders[outcome.seed], outcome.history)
        if self.every and epoch % self.every == 0 and epoch < self.epochs:
            self.save(states())

    def save(self, states: list[SeedState]) -> None:
        """Write each seed's checkpoint."""
        write(self.folders, states, self.settings)
