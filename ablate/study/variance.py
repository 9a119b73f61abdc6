"""+variance=sources: the variants that vary each seed stream alone, the others held fixed, and all of them at once.

A variance study is one phase of ordinary runs: each variant is the command line's config (the baseline, or the
variant its keys make) with `seed_streams.*` set, so it is planned, launched, resumed and listed like any other.
The variant of source S is named `seed_streams.S=per_seed`; the one of every source `seed_streams.A=per_seed,...`
(each stream it varies), so a name says what varies and the pooling rule skips exactly the streams that differ.
"""

from __future__ import annotations

from typing import Any

from ablate.config import FIXED_SPLIT, PER_SEED, STREAMS, AblateConfig, ConfigError
from ablate.study.identity import undrawn_streams
from ablate.study.variants import Variant, make_variant

ALL = "all"  # the source name of the variant that varies every stream at once


def enabled(config: AblateConfig) -> bool:
    """Whether this config plans a variance study (+variance=sources: variance.sources lists streams)."""
    return bool(config.variance.sources)


def why_fixed(config: AblateConfig) -> dict[str, str]:
    """Each stream this config draws nothing from (identity.undrawn_streams decides which), with the reason in words."""
    words = {"augment": "train.augment=none draws no shifts",
             "dropout": ("your network's dropout draws from the init stream" if config.model._target_ is not None
                         else "model.dropout=0 draws no masks")}
    reasons = {name: words[name] for name in words if f"seed_streams.{name}" in undrawn_streams(config)}
    data = config.data
    if data.name == "synthetic":
        reasons["split"] = "data.name=synthetic draws its images from data.subset_seed"
    elif data.train_size is None and data.validation_size is None:
        reasons["split"] = "the whole training set leaves no subset to draw (set data.train_size or data.validation_size)"
    return reasons


def sources(config: AblateConfig) -> tuple[list[str], dict[str, str]]:
    """The listed streams that can vary under this config, in STREAMS' order, and those left out with the reason."""
    reasons = why_fixed(config)
    listed = [name for name in STREAMS if name in config.variance.sources]
    return [name for name in listed if name not in reasons], {name: reasons[name] for name in listed if name in reasons}


def _held(name: str, fixed: int) -> Any:
    return FIXED_SPLIT if name == "split" else fixed


def variants(config: AblateConfig) -> list[Variant]:
    """One variant per source that can vary (it per_seed, every other such stream held), then the one of them all."""
    varied, _ = sources(config)
    if len(varied) < 2:
        raise ConfigError(f"variance.sources={','.join(config.variance.sources) or '[]'} leaves fewer than two streams that can "
                          "vary here; list at least two of: " + ", ".join(STREAMS))
    if len(config.seeds) < 2:
        raise ConfigError(f"seeds={config.seeds} is not allowed with +variance=sources; a standard deviation needs at least two seeds, e.g. seeds=[0,1,2,3,4]")
    planned = [Variant(f"seed_streams.{name}={PER_SEED}",
                       tuple((f"seed_streams.{other}", PER_SEED if other == name else _held(other, config.variance.fixed)) for other in varied))
               for name in varied]
    return planned + [make_variant({f"seed_streams.{name}": PER_SEED for name in varied})]


def source_of(config: AblateConfig) -> str:
    """Which source a run of a variance study varies (from its stored config): the one per-seed stream of those that
    can vary, `all` when every one is, '' when neither (a run that is no variance variant)."""
    varied = sources(config)[0]
    per_seed = [name for name in varied if getattr(config.seed_streams, name) == PER_SEED]
    return ALL if len(per_seed) == len(varied) > 1 else per_seed[0] if len(per_seed) == 1 else ""


def title(config: AblateConfig) -> str:
    """What `ablate run` says it launches: the sources, each alone, then all of them (no baseline)."""
    varied = sources(config)[0]
    return f"variance by source, {len(varied) + 1} variant(s): {', '.join(varied)} each alone, then all together"


def left_out(config: AblateConfig) -> list[str]:
    """The dry run's lines naming each listed stream the study leaves out, and why."""
    return [f"  variance: {name} left out ({reason})" for name, reason in sources(config)[1].items()]
