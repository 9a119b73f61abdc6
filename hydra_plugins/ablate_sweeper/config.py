"""Config schema of the ablate sweeper, registered as `hydra/sweeper=ablate`."""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class AblateSweeperConf:
    """factors: config key -> values to try, one key at a time, each against the shared baseline; or, with
    design factorial or fractional (conf/design/), two values per key combined in a two-level design of at least
    `resolution` (fractional only)."""

    _target_: str = "hydra_plugins.ablate_sweeper.ablate_sweeper.AblateSweeper"
    factors: Dict[str, List[Any]] = field(default_factory=dict)
    design: str = "one_at_a_time"
    resolution: Optional[int] = None


ConfigStore.instance().store(group="hydra/sweeper", name="ablate", node=AblateSweeperConf, provider="ablate")
