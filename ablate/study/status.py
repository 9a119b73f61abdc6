"""Where each run of a plan stands, as the store says: finished ok, failed or diverged, in progress, or still to
train. `--dry-run` lists it before training; `ablate run` sums it up after.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ablate.store import checkpoints, results
from ablate.study.plan import Plan


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
    """What a command would do: every planned run with its state (finished, failed, diverged, to train), nothing
    trained; failed and diverged runs are kept as results, to train again only with --retry-failed (as the runner does)."""
    found, lines, counts = statuses(plan), [], Counter()
    retry = plan.study.config.retry_failed
    for run in plan.runs:
        state = found.get(run.folder, "to train")
        kept = state if state == "to train" or not retry or state == "ok" else f"to train ({state})"
        progress = checkpoints.progress(run.folder, run.variant.config.train.epochs) if kept.startswith("to train") else ""
        counts["to train" if kept.startswith("to train") else state] += 1
        counts["in progress"] += bool(progress)
        lines.append(f"  {kept:9s} {run.folder}{progress}")
    kept_results = "".join(f", {counts[s]} {s}" for s in ("failed", "diverged") if counts[s])
    again = " (kept as results; --retry-failed trains them again)" if kept_results else ""
    first = plan.study
    header = (f"{len(lines)} run(s) planned, {counts['ok']} finished{kept_results}{again}, {counts['to train']} to train "
              f"({counts['in progress']} in progress) (device {first.resolved.device}, precision {first.resolved.precision}, "
              f"strategy {first.resolved.strategy}{'; each job resolves auto where it runs' if first.deferred else ''}):")
    return "\n".join([header, *lines])
