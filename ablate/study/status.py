"""Where each run of a plan stands, as the store says: finished ok, failed or diverged, in progress, or still to
train. `--dry-run` lists it before training; `ablate run` sums it up after.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Optional

from ablate.config import flatten_config, format_value, plain

from ablate.store import checkpoints, results
from ablate.study.plan import Plan
from ablate.study.variants import BASELINE


def statuses(plan: Plan) -> dict[Path, str]:
    """The status of every planned run that has a metrics.json (ok, failed, diverged), by folder."""
    found = {run.folder: results.read_metrics(run.folder) for run in plan.runs}
    return {folder: record["status"] for folder, record in found.items() if record is not None}


def study_status(plan: Plan) -> dict[str, list[str]]:
    """Each planned run by outcome (ok, failed, diverged, missing): `study/variant/seed=N` names per outcome."""
    known, outcome = statuses(plan), {}
    for run in plan.runs:
        outcome.setdefault(known.get(run.folder, "missing"), []).append(f"{run.variant.study}/{run.variant.variant.name}/seed={run.seed}")
    return outcome


def describe_status(outcome: dict[str, list[str]]) -> str:
    """A one-screen account of a study's runs: counts, then each run that did not end well."""
    counts = Counter({status: len(names) for status, names in outcome.items()})
    lines = [", ".join(f"{counts[s]} {s}" for s in ("ok", "failed", "diverged", "missing") if counts[s])]
    for status in ("failed", "diverged", "missing"):
        lines += [f"  {status}: {name}" for name in outcome.get(status, [])[:20]]
    return "\n".join(lines)


def describe(plan: Plan) -> str:
    """What a command would do: every planned run with its state (ok, failed, diverged, to train), nothing trained;
    only ok runs count as finished, and failed or diverged ones as to train under --retry-failed."""
    found, lines, states, going = statuses(plan), [], Counter[str](), 0
    retry = plan.study.config.retry_failed
    for run in plan.runs:
        state = found.get(run.folder, "to train")
        state = "to train" if retry and state in ("failed", "diverged") else state
        states[state] += 1
        progress = checkpoints.progress(run.folder, run.variant.config.train.epochs) if state == "to train" else ""
        going += bool(progress)
        lines.append(f"  {state:9s} {run.folder}{progress}")
    first = plan.study
    kept = "".join(f", {states[s]} {s}" for s in ("failed", "diverged") if states[s])
    kept += " (kept as results; --retry-failed trains them again)" if kept else ""
    header = (f"{len(lines)} run(s) planned, {states['ok']} finished{kept}, {states['to train']} to train ({going} in progress) "
              f"(device {first.resolved.device}, precision {first.resolved.precision}, strategy {first.resolved.strategy}"
              f"{'; each job resolves auto where it runs' if first.deferred else ''}):")
    return "\n".join([header, *filter(None, [baseline_line(plan)]), *lines])


def baseline_line(plan: Plan) -> Optional[str]:
    """The baseline's own value of every factor (the config's, which the command line may not show: `-m
    train.lr=0.01,0.1` also trains the config's 0.001), or None for a plan without a baseline and factors."""
    study = [v for v in plan.variants if v.role == "study"]
    baseline = next((v for v in study if v.variant.name == BASELINE), None)
    keys = list(dict.fromkeys(key for v in study for key in v.variant.keys))
    if baseline is None or not keys:
        return None
    values = flatten_config(plain(baseline.config))
    return f"  baseline: {', '.join(f'{key}={format_value(values.get(key))}' for key in keys)} (the config's own values)"
