"""The text of `ablate run --help`: every key a user may set, its default and its one-line meaning, and every
config group's options, read from the schema's source (ablate/config.py: the dataclasses and their field comments)
and from conf/, so the help cannot drift from the schema.

It parses that source instead of importing it: importing the schema imports Hydra and OmegaConf, and answering
through Hydra imports torch; this answers in a fraction of a second. Internal keys (set by ablate itself) are hidden.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import tokenize
from pathlib import Path
from typing import Iterator

SCHEMA = "AblateConfig"
HIDDEN = ("variant", "retry_failed", "_target_", "params")  # set by ablate itself, or by your own network's config file
OWN_OPTIONS = {"model": ["baseline"], "data": ["mnist"], "train": ["default"], "logger": ["none"]}  # registered from the schema
GROUPS = ("model", "data", "train", "logger", "+sweep", "+design", "hydra/launcher")
HEADER = """ablate run: train every variant of an ablation study over several seeds.

usage: ablate run [KEY=VALUE ...] [GROUP=OPTION ...] [KEY=A,B,C ...] [--dry-run] [--retry-failed] [--config-dir DIR]
  KEY=A,B,C (with or without -m) is a factor: varied one value at a time around the config's own value (the baseline).
  --dry-run lists the planned runs and trains nothing; --retry-failed trains failed and diverged runs again;
  --config-dir DIR adds your own config groups (DIR/model/mynet.yaml); --cfg job prints the composed config;
  --debug shows tracebacks; --hydra-help shows Hydra's own flags.
Examples: ablate run +sweep=depth | ablate run +sweep=all train.epochs=2 | ablate run model.batchnorm=true"""
FOOTER = "Results: <runs_dir>/<study>/<variant>/seed=<s>/. A key not listed here is refused, never ignored."


def _source(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    return Path(spec.origin)


def _comments(text: str) -> dict[int, tuple[str, bool]]:
    """Each comment of a source text by its line number, and whether it stands on a line of its own."""
    tokens = tokenize.generate_tokens(io.StringIO(text).readline)
    return {token.start[0]: (token.string.lstrip("# ").strip(), token.line.lstrip().startswith("#"))
            for token in tokens if token.type == tokenize.COMMENT}


def _meaning(field: ast.AnnAssign, comments: dict[int, tuple[str, bool]]) -> str:
    """A field's comment on its own line, else the comment lines just above it, joined."""
    if field.lineno in comments:
        return comments[field.lineno][0]
    above, line = [], field.lineno - 1
    while comments.get(line, ("", False))[1]:
        above.insert(0, comments[line][0])
        line -= 1
    return " ".join(above)


def _default(value: ast.expr | None, constants: dict[str, str]) -> str:
    """A field's default as a user types it (a module constant by its value); a section (default_factory=SomeConfig)
    as its class's name."""
    if isinstance(value, ast.Call) and value.keywords and value.keywords[0].arg == "default_factory":
        factory = value.keywords[0].value
        return factory.id if isinstance(factory, ast.Name) else _default(getattr(factory, "body", None), constants)
    if value is None:
        return ""
    if isinstance(value, ast.Name) and value.id in constants:
        return constants[value.id]
    try:
        literal = ast.literal_eval(value)
    except ValueError:
        return ast.unparse(value)
    if isinstance(literal, bool) or literal is None:
        return {True: "true", False: "false", None: "null"}[literal]
    return str(literal).replace(" ", "")


def keys() -> Iterator[tuple[str, str, str]]:
    """(dotted key, default, meaning) of every key a user may set, in the schema's order."""
    text = _source("ablate.config").read_text()
    tree, comments = ast.parse(text), _comments(text)
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    constants = {node.targets[0].id: node.value.value for node in tree.body if isinstance(node, ast.Assign)  # NAME = "text"
                 and isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)}

    def walk(cls: ast.ClassDef, prefix: str) -> Iterator[tuple[str, str, str]]:
        for field in (node for node in cls.body if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            name, default = field.target.id, _default(field.value, constants)  # type: ignore[union-attr]
            if name in HIDDEN:
                continue
            section = "ModelConfig" if name == "model" else default
            if section in classes and section != SCHEMA:
                yield from walk(classes[section], f"{prefix}{name}.")
            else:
                yield f"{prefix}{name}", default, _meaning(field, comments)

    return walk(classes[SCHEMA], "")


def group_options() -> dict[str, list[str]]:
    """The options of each config group: the schema's own defaults, then conf/'s files."""
    conf = Path(next(iter(importlib.util.find_spec("ablate.conf").submodule_search_locations)))  # type: ignore[union-attr]
    return {group: OWN_OPTIONS.get(group, []) + sorted(p.stem for p in (conf / group.lstrip("+")).glob("*.yaml")) for group in GROUPS}


def text() -> str:
    """The whole help: usage, the config groups, every key with its default and meaning."""
    rows = list(keys())
    width = max(len(f"{key}={default}") for key, default, _ in rows) + 2
    groups = [f"  {group:15s} {', '.join(options)}" for group, options in group_options().items()]
    lines = [f"  {f'{key}={default}':{width}s}{meaning}" for key, default, meaning in rows]
    return "\n".join([HEADER, "", "Config groups (GROUP=OPTION; model, data, train, logger: the first is the default; +sweep, +design, hydra/launcher: none unless given):", *groups, "",
                      "Keys (KEY=VALUE, shown with its default):", *lines, "", FOOTER])
