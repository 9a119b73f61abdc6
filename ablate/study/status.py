"""Where each run of a plan stands, as the store says: finished ok, failed or diverged, in progress, or still to
train. `--dry-run` lists it before training; `ablate run` sums it up after.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ablate.store import checkpoints, results
from ablate.study.plan import Plan


def records(plan: Plan) -> dict[Path, dict]:
    """The metrics.json of every planned run that has one (status ok, failed or diverged), by folder."""
    found = {run.folder: results.read_metrics(run.folder) for run in plan.runs}
    return {folder: record for folder, record in found.items() if record is not None}


def statuses(plan: Plan) -> dict[Path, str]:
    """The status of every planned run that has a metrics.json (ok, failed, diverged), by folder."""
    return {folder: record["status"] for folder, record in records(plan).items()}


def study_status(plan: Plan) -> dict[str, list[str]]:
    """Each planned run by outcome (ok, failed, diverged, missing): `study/variant/seed=N` names per outcome, a
    failed or diverged one with its error (what the console showed while it trained, long scrolled away)."""
    known, outcome = records(plan), {}
    for run in plan.runs:
        record = known.get(run.folder, {"status": "missing"})
        error = f": {record['error']}" if record["status"] in ("failed", "diverged") and record.get("error") else ""
        outcome.setdefault(record["status"], []).append(f"{run.variant.study}/{run.variant.variant.name}/seed={run.seed}{error}")
    return outcome


def describe_status(outcome: dict[str, list[str]]) -> str:
    """The study's last lines: counts, then every run that failed or diverged with its error, and the missing ones."""
    counts = Counter({status: len(names) for status, names in outcome.items()})
    lines = [", ".join(f"{counts[s]} {s}" for s in ("ok", "failed", "diverged", "missing") if counts[s])]
    for status in ("failed", "diverged"):
        lines += [f"  {status}: {name}" for name in outcome.get(status, [])]
    missing = outcome.get("missing", [])
    lines += [f"  missing: {name}" for name in missing[:20]] + ([f"  missing: {len(missing) - 20} more"] if len(missing) > 20 else [])
    return "\n".join(lines)


def describe(plan: Plan) -> str:
    """What a command would do: every planned run with its state (finished, failed, to train), nothing trained."""
    found, lines, to_train, going = statuses(plan), [], 0, 0
    for run in plan.runs:
        state = found.get(run.folder, "to train")
        to_train += state == "to train"
        progress = checkpoints.progress(run.folder, run.variant.config.train.epochs) if state == "to train" else ""
        going += bool(progress)
        lines.append(f"  {state:9s} {run.folder}{progress}")
    first = plan.study
    header = (f"{len(lines)} run(s) planned, {len(lines) - to_train} finished, {to_train} to train ({going} in progress) "
              f"(device {first.resolved.device}, precision {first.resolved.precision}, strategy {first.resolved.strategy}"
              f"{'; each job resolves auto where it runs' if first.deferred else ''}):")
    return "\n".join([header, *lines])
