"""One-factor-at-a-time plans: which variants a sweep trains, and how each is named on disk.

A variant is the baseline with exactly one key changed; its name is that override (`model.depth=5`),
and the baseline's name is `baseline`. Values equal to the baseline's are the baseline, trained once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

BASELINE = "baseline"


@dataclass(frozen=True)
class Variant:
    """A variant: its folder name, and the one key and value that make it from the baseline (none for the baseline)."""

    name: str
    key: Optional[str] = None
    value: Any = None

    @property
    def overrides(self) -> tuple[str, ...]:
        """The Hydra overrides that turn the baseline into this variant."""
        return () if self.key is None else (self.name,)


def format_value(value: Any) -> str:
    """A value as a user types it in an override: true/false for booleans, plain text otherwise."""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def plan_variants(baseline: Mapping[str, Any], factors: Mapping[str, Sequence[Any]]) -> list[Variant]:
    """The baseline first, then each factor's values in the order given, skipping values equal to the baseline's."""
    plan = [Variant(BASELINE)]
    for key, values in factors.items():
        for value in values:
            if format_value(value) == format_value(baseline[key]):
                continue
            override = f"{key}={format_value(value)}"
            if all(v.name != override for v in plan):
                plan.append(Variant(override, key, value))
    return plan


def variant_from_overrides(overrides: Sequence[str], keys_prefix: str = "model.") -> str:
    """Name of a single run's variant: its model overrides joined by ',' (sorted), or `baseline` if it has none."""
    changed = sorted(o.lstrip("+") for o in overrides if o.lstrip("+").startswith(keys_prefix))
    return ",".join(changed) or BASELINE


def parse_variant(name: str) -> tuple[str, str]:
    """(factor key, value text) of a variant name; ('', '') for the baseline."""
    if name == BASELINE or "=" not in name:
        return "", ""
    key, _, value = name.partition("=")
    return key, value
