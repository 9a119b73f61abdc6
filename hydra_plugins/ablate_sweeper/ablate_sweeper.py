"""A Hydra sweeper for ablations: the baseline once, then each factor's values one at a time.

A cartesian product (Hydra's basic sweeper) would vary several factors at once; this sweeper launches ablate's
one-factor-at-a-time plan (factors from a sweep file's `factors` and from `key=a,b` on the command line) through
whichever Hydra launcher is configured, so joblib, ray or submitit run it unchanged. It plans nothing: `ablate run`
plans once (ablate/study/plan.py) and hands it the override list of every job of a phase (`launching`), each holding its
variant's spec, which the job verifies where it runs.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, ClassVar, Iterator, List, Optional, Sequence

from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from . import config as _config  # noqa: F401 - registers hydra/sweeper=ablate

log = logging.getLogger(__name__)


class AblateSweeper(Sweeper):
    """Launches the jobs `ablate run` planned (set by `launching`) as one batch."""

    jobs: ClassVar[Optional[list[list[str]]]] = None
    title: ClassVar[str] = ""

    def __init__(self, factors: dict[str, list[Any]], design: str = "one_at_a_time", resolution: Optional[int] = None) -> None:
        # read by the plan from the composed config, where Hydra puts them
        self.factors, self.design, self.resolution = factors, design, resolution
        self.config: Optional[DictConfig] = None
        self.launcher: Optional[Launcher] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: List[str]) -> Any:
        assert self.launcher is not None
        if self.jobs is None:
            raise RuntimeError("the ablate sweeper launches the jobs `ablate run` planned; start studies with `ablate run`")
        jobs = self.jobs
        announce(self.title)
        returns = self.launcher.launch(jobs, initial_job_idx=0)
        return [r.return_value for r in returns]


def announce(title: str) -> None:
    """The line that opens a phase's jobs (`Ablation: 2 variant(s) (baseline + 1)`), wherever they are run."""
    log.info(f"Ablation: {title}")


@contextlib.contextmanager
def launching(jobs: Sequence[list[str]], title: str) -> Iterator[None]:
    """While inside, a sweep launches these jobs (each a list of overrides), logging the title first: one phase of
    one `ablate run` (its study, a seeds=auto round, a +tune phase)."""
    AblateSweeper.jobs, AblateSweeper.title = list(jobs), title
    try:
        yield
    finally:
        AblateSweeper.jobs, AblateSweeper.title = None, ""


def register() -> None:
    """Make the sweeper known to Hydra even where plugin discovery cannot see this package (editable installs)."""
    Plugins.instance().register(AblateSweeper)
