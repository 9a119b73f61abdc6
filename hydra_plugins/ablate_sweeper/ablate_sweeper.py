"""A Hydra sweeper for ablations: the baseline once, then each factor's values one at a time.

A cartesian product (Hydra's basic sweeper) would vary several factors at once; this sweeper launches ablate's
one-factor-at-a-time plan (factors from a sweep file's `factors` and from `key=a,b` on the command line) through
whichever Hydra launcher is configured, so joblib, ray or submitit run it unchanged. Each job gets
`variant=<name>`, the folder it writes to. Which variants exist is decided by ablate/study/plan.py alone.
"""

from __future__ import annotations

import logging
from typing import Any, List, Optional, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from . import config as _config  # noqa: F401 - registers hydra/sweeper=ablate

log = logging.getLogger(__name__)


class AblateSweeper(Sweeper):
    """Launches the variants ablate's plan gives (ablate.study.plan.study_variants) as one batch."""

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

    def plan(self, arguments: Sequence[str]) -> list[list[str]]:
        """The override list of every job: the user's single-valued overrides, then the variant's own."""
        from ablate.study.plan import study_variants

        assert self.config is not None
        plain = [o.input_line for o in OverridesParser.create().parse_overrides(list(arguments)) if not o.is_sweep_override()]
        return [plain + variant.arguments + [f"variant='{variant.name}'"] for variant in study_variants(self.config, arguments)]

    def sweep(self, arguments: List[str]) -> Any:
        assert self.launcher is not None
        jobs = self.plan(arguments)
        log.info(f"Ablation: {len(jobs)} variant(s) (baseline + {len(jobs) - 1})")
        returns = self.launcher.launch(jobs, initial_job_idx=0)
        return [r.return_value for r in returns]


def register() -> None:
    """Make the sweeper known to Hydra even where plugin discovery cannot see this package (editable installs)."""
    Plugins.instance().register(AblateSweeper)
