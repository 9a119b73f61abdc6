"""Signals that ask training to stop: SIGTERM (kill, scancel, scontrol requeue, preemption), SIGUSR1 (what
`sbatch --signal=USR1@90` sends before a time limit) and, when submitit is the job's host, its requeue signal.

A signal only raises a flag; training looks at it between two steps, writes checkpoints, and then the signal is
handed on: to the handler that was there before (submitit's, which requeues the job and exits), else the process
ends by that signal as if it had never been caught, so the shell reports status 128 + its number (143 for SIGTERM,
138 for SIGUSR1) and a launcher sees a job killed by it.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType, TracebackType
from typing import Any, Optional

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)


class StopSignals:
    """While entered (main thread only: Python handles signals there), the stop signals set `received` instead of
    ending the process. SIGUSR2 is caught only where someone already handles it (submitit's requeue)."""

    def __init__(self) -> None:
        self.received: Optional[int] = None
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for number in STOP_SIGNALS:
                if number != signal.SIGUSR2 or callable(signal.getsignal(number)):
                    self.previous[number] = signal.signal(number, self._note)
        return self

    def _note(self, number: int, frame: Optional[FrameType]) -> None:
        self.received = number

    def requested(self) -> bool:
        """Whether a stop signal arrived."""
        return self.received is not None

    def __exit__(self, kind: Optional[type], error: Optional[BaseException], trace: Optional[TracebackType]) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)

    def hand_on(self) -> None:
        """Deliver the received signal to its previous handler (which may requeue and exit) or, when that returns or
        there was none, end the process by it."""
        number = self.received
        if number is None:
            return
        previous = self.previous.get(number, signal.SIG_DFL)
        signal.signal(number, previous)
        if callable(previous):
            previous(number, None)
        signal.signal(number, signal.SIG_DFL)
        os.kill(os.getpid(), number)
