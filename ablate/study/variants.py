"""Variants and their names: the one place that decides which variants a study trains and what each is called.

A variant is the baseline with some keys changed. A study's variant changes exactly one key (`model.depth=5`);
a one-off run may change several (`model.batchnorm=true,model.depth=3`), and the report marks it as such.
The baseline is `baseline`. Values equal to the baseline's are the baseline, trained once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ablate.config import format_value

BASELINE = "baseline"
# Where one key=value ends and the next begins in a variant name: a comma before `section.key=` (values may hold commas).
_NEXT_OVERRIDE = re.compile(r",(?=[A-Za-z_][\w]*(?:\.[\w]+)+=)")
# One-off runs (no sweep): the overrides under this prefix make the variant; the others are settings of the study.
ONE_OFF_PREFIX = "model."


@dataclass(frozen=True)
class Variant:
    """A variant: its folder name and the (key, value) pairs that make it from the baseline (none for the baseline)."""

    name: str
    overrides: tuple[tuple[str, Any], ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        """The keys this variant changes."""
        return tuple(key for key, _ in self.overrides)

    @property
    def factor(self) -> str:
        """The changed key, keys joined by '+' when several change at once, '' for the baseline."""
        return "+".join(self.keys)

    @property
    def value(self) -> str:
        """The changed value as typed, values joined by ', ' when several change at once."""
        return ", ".join(format_value(value) for _, value in self.overrides)

    @property
    def arguments(self) -> list[str]:
        """The Hydra overrides that turn the baseline into this variant."""
        return [f"{key}={format_value(value)}" for key, value in self.overrides]


def make_variant(overrides: Mapping[str, Any]) -> Variant:
    """The variant that changes these keys (sorted by key), or the baseline when there are none."""
    pairs = tuple(sorted(overrides.items()))
    return Variant(",".join(f"{key}={format_value(value)}" for key, value in pairs) or BASELINE, pairs)


def plan_variants(baseline: Mapping[str, Any], factors: Mapping[str, Sequence[Any]]) -> list[Variant]:
    """The baseline first, then each factor's values in the order given, skipping values equal to the baseline's."""
    plan = [Variant(BASELINE)]
    for key, values in factors.items():
        for value in values:
            variant = make_variant({key: value})
            if format_value(value) != format_value(baseline[key]) and variant not in plan:
                plan.append(variant)
    return plan


def pairs_of(name: str) -> list[tuple[str, str]]:
    """The (key, value as written) pairs a variant's name changes ([] for the baseline)."""
    if name == BASELINE:
        return []
    return [(key, value) for key, _, value in (part.partition("=") for part in _NEXT_OVERRIDE.split(name))]


def keys_of(name: str) -> list[str]:
    """The keys a variant's name changes ([] for the baseline); how a stored run recovers them."""
    return [key for key, _ in pairs_of(name)]


def misnamed(name: str, config: Mapping[str, Any]) -> list[str]:
    """Each key whose value in a variant's name is not what a run's config (flattened) holds, in words
    ('model.depth=9 in its name, 2 in its config.yaml'); [] when the name says what the config holds. Numbers
    compare as numbers, so a name written before values were typed (`model.dropout=0`) still agrees with 0.0. A name
    part without '=' (a variant named by `variant=NAME`) claims no value and is not checked."""
    return [f"{key}={value} in its name, {format_value(config.get(key))} in its config.yaml"
            for key, value in pairs_of(name)
            if f"{key}=" in name and not _same_text(value, format_value(config.get(key)))]


def _same_text(a: str, b: str) -> bool:
    try:
        return a == b or float(a) == float(b)
    except ValueError:
        return False


def one_off_keys(overrides: Sequence[str]) -> list[str]:
    """The keys of a one-off run's overrides that make its variant (those under ONE_OFF_PREFIX)."""
    keys = (override.partition("=")[0].lstrip("+~") for override in overrides if "=" in override)
    return sorted({key for key in keys if key.startswith(ONE_OFF_PREFIX)})
