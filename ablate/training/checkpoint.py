"""Training's side of checkpoints: the hooks the engine calls between steps and epochs, the global RNG states, and
the runner's reading, writing and stop handling for one variant (the files themselves: ablate/store/checkpoints.py).
"""

from __future__ import annotations

import contextlib
import logging
import signal
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

import torch

from ablate.store import results
from ablate.store.checkpoints import SeedState, read, write
from ablate.training.stopping import StopSignals

log = logging.getLogger("ablate")

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


class RunCheckpoints:
    """The runner's side of the hooks for one variant: reads checkpoints to resume from, writes history.csv after
    every epoch and a checkpoint every `every` epochs (0: never), and writes every seed's state when stopped."""

    def __init__(self, folders: dict[int, Path], settings: str, label: str, epochs: int, every: int,
                 held: Optional[Iterable[int]] = None) -> None:
        self.folders, self.settings, self.label, self.epochs, self.every = folders, settings, label, epochs, every
        self.held = set(folders if held is None else held)  # the seeds this process holds the locks of
        self.signals = StopSignals()
        self.found: Optional[dict[int, SeedState]] = None
        self.hooks = Hooks(resume=self.resume, on_epoch=self.on_epoch, stop=self.signals.requested)

    @contextlib.contextmanager
    def stopping(self) -> Iterator[None]:
        """Train inside this: a stop signal ends training between two steps, every seed's state is written, and the
        signal is handed on (see ablate/training/stopping.py); one that came after the last step is handed on at the end."""
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
        others) and every seed of its group has one at the same point (else the group starts over together); its
        group narrowed to the seeds this process holds, so a seed another process trains is never trained here."""
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
        return {seed: replace(state, group=[s for s in state.group if s in self.held]) for seed, state in kept.items() if seed in self.held}

    def on_epoch(self, epoch: int, outcomes: list, states: Callable[[], list[SeedState]]) -> None:
        """history.csv of every seed still training, and the checkpoints when one is due."""
        for outcome in outcomes:
            results.write_history(self.folders[outcome.seed], outcome.history)
        if self.every and epoch % self.every == 0 and epoch < self.epochs:
            self.save(states())

    def save(self, states: list[SeedState]) -> None:
        """Write each seed's checkpoint."""
        write(self.folders, states, self.settings)
