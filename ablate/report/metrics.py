"""The metrics a report can compare, each with its direction and how it is shown: declared, never guessed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """A metric of metrics.json: whether a larger value is better, and the scale and unit it is shown in."""

    name: str
    higher_is_better: bool
    scale: float = 1.0
    unit: str = ""

    @property
    def label(self) -> str:
        """The axis and column label: `test_acc (%)`, `train_seconds (s)`, `test_loss`."""
        return f"{self.name} ({self.unit})" if self.unit else self.name


METRICS = {metric.name: metric for metric in (
    Metric("test_acc", True, 100.0, "%"), Metric("val_acc", True, 100.0, "%"), Metric("train_acc", True, 100.0, "%"),
    Metric("test_loss", False), Metric("val_loss", False), Metric("train_loss", False),
    Metric("train_seconds", False, unit="s"), Metric("wall_seconds", False, unit="s"),
)}


def held_out_split(name: str) -> str:
    """The held-out split a report of `name` shows beside it: "val" for val_* metrics, "test" otherwise, so a report
    used to choose on validation puts no test number in front of the reader."""
    return "val" if name.startswith("val_") else "test"


def metric(name: str) -> Metric:
    """The declared metric called `name`; ValueError listing the known ones otherwise."""
    if name not in METRICS:
        raise ValueError(f"--metric {name!r} is not a metric ablate knows; choose one of: {', '.join(METRICS)}")
    return METRICS[name]
