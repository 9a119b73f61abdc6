"""A run's seed streams: the seed each source of its randomness starts its own generator from.

`seed_streams.*` (ablate/config.py) says where each stream takes its value: the run's seed (`per_seed`) or a fixed
integer. Each generator is seeded from (that value, the stream's name), so changing one stream's value changes that
stream's draws and no other's. init, order and augment are seeded by the value itself, and dropout by the value
mixed with its stream number (numpy's SeedSequence), exactly as runs drew them before streams had names, so stored
studies keep their numbers; a per-seed split mixes the run's seed with its own stream number. The order and augment
generators each draw an epoch as the one generator of those runs did (the permutation, then the shifts) and keep
their own part (ablate/training/loop.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ablate.config import FIXED_SPLIT, PER_SEED, SeedStreamsConfig

# The numbers SeedSequence mixes with a stream's value: dropout's was chosen before streams had names (so its
# masks never repeat the batch order's stream); split's is new.
STREAM_NUMBERS = {"dropout": 1, "split": 2}


@dataclass(frozen=True)
class StreamSeeds:
    """The seed each training stream's generator starts from, for one run."""

    init: int
    order: int
    augment: int
    dropout: int


def mixed(value: int, stream: str) -> int:
    """A 63-bit seed mixed from (value, the stream's number) by numpy's SeedSequence (any int, negative ones too)."""
    return int(np.random.SeedSequence([value % 2**64, STREAM_NUMBERS[stream]]).generate_state(1, np.uint64)[0]) >> 1


def _value(streams: SeedStreamsConfig, name: str, seed: int) -> int:
    """A stream's value for run `seed`: the seed itself where the stream is per_seed, else the fixed integer."""
    value = getattr(streams, name)
    return seed if value == PER_SEED else int(value)


def stream_seeds(streams: SeedStreamsConfig, seed: int) -> StreamSeeds:
    """The training streams' seeds of run `seed`."""
    init, order, augment, dropout = (_value(streams, name, seed) for name in ("init", "order", "augment", "dropout"))
    return StreamSeeds(init, order, augment, mixed(dropout, "dropout"))


def split_seed(streams: SeedStreamsConfig, seed: int, subset_seed: int) -> int:
    """The seed run `seed`'s training subset and validation hold-out are drawn with: data.subset_seed where the split
    is fixed, else one mixed from the run's seed."""
    return subset_seed if streams.split == FIXED_SPLIT else mixed(seed, "split")


def recorded(streams: SeedStreamsConfig, seed: int, subset_seed: int) -> dict[str, int]:
    """Every stream's seed for run `seed`, as metrics.json records them."""
    return {**asdict(stream_seeds(streams, seed)), "split": split_seed(streams, seed, subset_seed)}
