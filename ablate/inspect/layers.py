"""The layer table of `ablate inspect`: shapes, output-size formula, parameters, receptive field and FLOPs per layer.

Every number comes from the network's own description (ablate/networks/network.py: the layer plan for ablate's CNN,
forward hooks and torch's FlopCounterMode for resnet18 and your own network). This module only arranges them as
Markdown, CSV or JSON.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Sequence

import pandas as pd

from ablate.config import AblateConfig, format_value, model_node
from ablate.data.catalog import input_spec
from ablate.networks.network import create_network
from ablate.study import plan

SIZE_COLUMN = "output size: floor((H + 2P - D(K-1) - 1)/S + 1)"
RIGHT = ("params", "RF", "FLOPs")


def _shape(shape: tuple[int, ...] | None) -> str:
    return "" if shape is None else f"(B, {', '.join(map(str, shape))})"


def describe(variant: str, config: AblateConfig) -> dict[str, Any]:
    """Everything `inspect` says about one variant: its layer rows, total and head parameters, FLOPs, receptive field."""
    shape, classes = input_spec(config.data)
    network = create_network(config.model, shape, classes).describe()
    rows = [{**row, "input": _shape(row["input"]), "output": _shape(row["output"])} for row in network.layers]
    head = {"head_params": network.head_params, "head_share": network.head_params / network.params} if network.head_layers else {}
    return {
        "variant": variant, "dataset": config.data.name, "input_shape": list(shape), "num_classes": classes,
        "model": model_node(config.model), "layers": rows, "total_params": network.params,
        "head_layers": network.head_layers, **head, "receptive_field": network.receptive_field, "flops": network.flops,
        "flop_convention": network.flop_convention,
    }


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows).astype({"receptive_field": "Int64"})  # integers, empty for the head's layers


def _markdown(report: dict[str, Any]) -> str:
    table = _frame(report["layers"]).rename(columns={
        "output_size": SIZE_COLUMN, "params_formula": "params formula", "receptive_field": "RF", "flops": "FLOPs"})
    for column in ("params", "FLOPs"):
        table[column] = [f"{value:,}" if value else "" for value in table[column]]
    table["RF"] = table["RF"].astype("string").fillna("")
    c, h, w = report["input_shape"]
    rf = report["receptive_field"]
    settings = " ".join(f"{key}={format_value(value)}" for key, value in report["model"].items())
    parameters = f"- parameters: {report['total_params']:,}"
    if report["head_layers"]:
        parameters += (f"; classifier head ({', '.join(report['head_layers'])}): "
                       f"{report['head_params']:,} = {100 * report['head_share']:.1f}%")
    if rf is None:
        field = "- receptive field: not defined here (the feature maps do not pass through one chain of square conv, pooling and pointwise modules)"
    else:
        beyond = f", larger than the {h}×{w} input: units near the centre see all of it" if rf > min(h, w) else f" of the {h}×{w} input"
        field = f"- receptive field of one unit of the last feature map: {rf}×{rf} pixels{beyond}"
    return "\n".join([
        f"## {report['variant']}: {report['dataset']} images {c}×{h}×{w}, {report['num_classes']} classes",
        f"model: {settings}",
        "",
        table.to_markdown(index=False, disable_numparse=True, colalign=["right" if column in RIGHT else "left" for column in table]),
        "",
        parameters,
        field,
        f"- FLOPs per forward pass: {report['flops']:,} = {report['flop_convention']}",
    ])


def _csv(reports: Sequence[dict[str, Any]]) -> str:
    rows = [{"variant": report["variant"], **row} for report in reports for row in report["layers"]]
    return _frame(rows).to_csv(index=False).rstrip("\n")


RENDERERS: dict[str, Callable[[Sequence[dict[str, Any]]], str]] = {
    "md": lambda reports: "\n\n".join(_markdown(report) for report in reports),
    "csv": _csv,
    "json": lambda reports: json.dumps(list(reports), indent=2, ensure_ascii=False),
}
FORMATS = tuple(RENDERERS)


def inspect_overrides(overrides: Sequence[str], fmt: str = "md", config_dir: str | None = None) -> str:
    """The layer table of every variant the overrides compose to (one for a plain config, each of a `+sweep=NAME`),
    as `md` (a table per variant), `csv` (one row per layer, a variant column first) or `json` (a list of variants);
    `config_dir` is Hydra's --config-dir (your own config groups)."""
    variants = [v for v in plan.build(overrides, config_dir).variants if v.role == "study"]  # computes only: no file is read
    return RENDERERS[fmt]([describe(v.variant.name, v.config) for v in variants])
