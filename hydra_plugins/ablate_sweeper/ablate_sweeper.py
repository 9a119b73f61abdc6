"""A Hydra sweeper for ablations: the baseline once, then each factor's values one at a time.

A cartesian product (Hydra's basic sweeper) would vary several factors at once; this sweeper turns
`factors` into a one-factor-at-a-time plan and hands every job to whichever Hydra launcher is configured,
so joblib, ray or submitit run it unchanged. Each job gets `variant=<name>`, the folder it writes to.
"""

from __future__ import annotations

import logging
from typing import Any, List, Optional, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from ablate.variants import plan_variants

from . import config as _config  # noqa: F401 - registers hydra/sweeper=ablate

log = logging.getLogger(__name__)


class SweepError(ValueError):
    """An override that cannot be combined with a one-factor-at-a-time sweep."""


def check_arguments(arguments: Sequence[str], factors: dict[str, list[Any]]) -> None:
    """Refuse command-line overrides that would break one-factor-at-a-time: sweeps, or setting a swept factor."""
    for override in OverridesParser.create().parse_overrides(list(arguments)):
        key = override.get_key_element().lstrip("+~")
        if override.is_sweep_override():
            raise SweepError(f"{key}: a study sweeps its factors itself; give one value, not a sweep ({override.input_line})")
        if key in factors:
            raise SweepError(f"{key} is a factor this sweep varies; drop {override.input_line} or use a sweep without it")


class AblateSweeper(Sweeper):
    """Plans the variants of an ablation and launches them as one batch."""

    def __init__(self, factors: dict[str, list[Any]]) -> None:
        self.factors = {key: list(values) for key, values in factors.items()}
        self.config: Optional[DictConfig] = None
        self.launcher: Optional[Launcher] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def plan(self, arguments: Sequence[str]) -> list[list[str]]:
        """The override list of every job: the user's overrides, then the variant's own."""
        assert self.config is not None
        check_arguments(arguments, self.factors)
        missing = [key for key in self.factors if OmegaConf.select(self.config, key, default=None) is None]
        if missing:
            raise SweepError(f"sweep factors {missing} are not keys of the config")
        baseline = {key: OmegaConf.select(self.config, key) for key in self.factors}
        return [list(arguments) + list(v.overrides) + [f"variant='{v.name}'"] for v in plan_variants(baseline, self.factors)]

    def sweep(self, arguments: List[str]) -> Any:
        assert self.launcher is not None
        jobs = self.plan(arguments)
        log.info(f"Ablation of {', '.join(self.factors)}: {len(jobs)} variants (baseline + {len(jobs) - 1})")
        returns = self.launcher.launch(jobs, initial_job_idx=0)
        return [r.return_value for r in returns]


def register() -> None:
    """Make the sweeper known to Hydra even where plugin discovery cannot see this package (editable installs)."""
    Plugins.instance().register(AblateSweeper)
