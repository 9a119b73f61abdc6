"""Two-level designs: which design points `+design=factorial` (2^k) and `+design=fractional` (2^(k-p)) train.

Each factor lists two values; a design point sets every factor to one of them and is a variant like any other,
named by the keys it changes from the config's own values (the point that changes none is the baseline). The
design matrices come from pyDOE3: `ff2n` for the full factorial, and for a fraction the minimum-aberration
generator `fracfact_opt` finds, with the most factors erased that still keeps the resolution asked for.
"""

from __future__ import annotations

import itertools
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from ablate.config import ConfigError, format_value
from ablate.study.variants import Variant, make_variant

DESIGNS = ("one_at_a_time", "factorial", "fractional")
MAX_FRACTIONAL_FACTORS = 8  # pyDOE3's exhaustive generator search takes seconds beyond this


def resolution(matrix: np.ndarray) -> Optional[int]:
    """The length of the shortest word of a two-level design's defining relation (the fewest columns whose
    product is constant over its points); None for a full factorial, which has no such word."""
    for size in range(1, matrix.shape[1] + 1):
        for columns in itertools.combinations(range(matrix.shape[1]), size):
            if len(np.unique(np.prod(matrix[:, columns], axis=1))) == 1:
                return size
    return None


def fraction(factors: int, wanted: int) -> np.ndarray:
    """The smallest 2^(k-p) design of `factors` factors whose resolution is at least `wanted`."""
    from pyDOE3 import fracfact, fracfact_opt  # here: pyDOE3 brings scipy, 0.8 s that a plan without a design skips

    for erased in range(factors - 1, 0, -1):
        try:
            generator = fracfact_opt(factors, erased)[0]
        except ValueError:  # too many factors erased for pyDOE3 to alias them
            continue
        matrix = fracfact(generator)
        found = resolution(matrix)
        if found is not None and found >= wanted:
            return matrix
    raise ConfigError(f"hydra.sweeper.resolution={wanted}: no fraction of {factors} two-level factors reaches it; "
                      f"the full 2^{factors} design does: use +design=factorial")


def design_matrix(factors: int, design: str, wanted: Optional[int]) -> np.ndarray:
    """The coded design (-1: a factor's first value, +1: its second), one row per design point."""
    if design == "factorial":
        from pyDOE3 import ff2n

        return ff2n(factors)
    if not isinstance(wanted, int) or wanted < 3:
        raise ConfigError(f"hydra.sweeper.resolution={wanted}: a fractional design needs a resolution of 3 or more "
                          "(3: main effects clear of each other, 4: also of two-factor interactions, 5: all of these clear)")
    if factors > MAX_FRACTIONAL_FACTORS:
        raise ConfigError(f"+design=fractional takes at most {MAX_FRACTIONAL_FACTORS} factors, got {factors}")
    return fraction(factors, wanted)


def design_variants(config_values: Mapping[str, Any], factors: Mapping[str, Sequence[Any]], design: str,
                    wanted: Optional[int] = None) -> list[Variant]:
    """The variants of a two-level design over `factors` (key -> its two values), the baseline first when it is
    a design point; `config_values` are the config's own values of the factors."""
    if design not in DESIGNS[1:]:
        raise ConfigError(f"hydra.sweeper.design={design}: allowed are {', '.join(DESIGNS)}")
    if len(factors) < 2:
        raise ConfigError(f"+design={design} needs at least two factors, each with two values, e.g. model.depth=2,5 model.batchnorm=false,true")
    for key, values in factors.items():
        if len({format_value(value) for value in values}) != 2 or len(values) != 2:
            raise ConfigError(f"{key}={','.join(map(format_value, values))}: a two-level design takes exactly two different values per factor")
    keys = list(factors)
    points = []
    for row in design_matrix(len(keys), design, wanted):
        levels = {key: factors[key][int(code > 0)] for key, code in zip(keys, row)}
        points.append(make_variant({key: value for key, value in levels.items() if format_value(value) != format_value(config_values[key])}))
    return sorted(points, key=lambda variant: bool(variant.overrides))  # stable: the baseline first, then the generator's order
