"""Where each run of a plan stands, as the store says: finished ok, failed or diverged, in progress, or still to
train. `--dry-run` lists it before training; `ablate run` sums it up after.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ablate.store import checkpoints, results
from ablate.study.plan import Plan


ELSEWHERE = "in progress elsewhere"  # no metrics.json, and another process holds the run's lock
OUTCOMES = ("ok", "failed", "diverged", "damaged", ELSEWHERE, "missing")


def statuses(plan: Plan) -> dict[Path, tuple[str, str]]:
    """(status, what is wrong) of every planned run that is not simply absent, by folder: ok, failed or diverged
    from its metrics.json; damaged with what is wrong with it; or in progress elsewhere."""
    found = {}
    for run in plan.runs:
        record = results.read_metrics(run.folder)
        if record is not None:
            found[run.folder] = (record["status"], "")
        elif reason := results.damage(run.folder):
            found[run.folder] = ("damaged", reason)
        elif results.is_locked(run.folder):
            found[run.folder] = (ELSEWHERE, "")
    return found


def study_status(plan: Plan) -> dict[str, list[str]]:
    """Each planned run by outcome (see OUTCOMES): `study/variant/seed=N` names per outcome (with what is wrong with
    a damaged one)."""
    known, outcome = statuses(plan), {}
    for run in plan.runs:
        state, reason = known.get(run.folder, ("missing", ""))
        name = f"{run.variant.study}/{run.variant.variant.name}/seed={run.seed}"
        outcome.setdefault(state, []).append(f"{name}: {reason}" if reason else name)
    return outcome


def describe_status(outcome: dict[str, list[str]]) -> str:
    """A one-screen account of a study's runs: counts, then each run that did not end well."""
    counts = Counter({status: len(names) for status, names in outcome.items()})
    lines = [", ".join(f"{counts[s]} {s}" for s in OUTCOMES if counts[s])]
    for status in OUTCOMES[1:]:
        lines += [f"  {status}: {name}" for name in outcome.get(status, [])[:20]]
    return "\n".join(lines)


def kept(plan: Plan) -> str:
    """What an interrupted command leaves: its finished runs and the checkpoints of runs in training, in words."""
    finished = sum(results.is_finished(run.folder) for run in plan.runs)
    going = [run.folder for run in plan.runs
             if not results.is_finished(run.folder) and checkpoints.progress(run.folder, run.variant.config.train.epochs)]
    where = f" ({', '.join(map(str, going[:3]))}{', ...' if len(going) > 3 else ''})" if going else ""
    return f"{finished} finished run(s) and {len(going)} checkpoint(s) of runs in training{where} are kept"


def describe(plan: Plan) -> str:
    """What a command would do: every planned run with its state (finished, failed, damaged, to train), nothing trained."""
    found, lines, counts = statuses(plan), [], Counter()
    for run in plan.runs:
        state, reason = found.get(run.folder, ("to train", ""))
        counts[state] += 1
        progress = checkpoints.progress(run.folder, run.variant.config.train.epochs) if state == "to train" else ""
        counts["going"] += bool(progress)
        if state == "damaged":
            progress = (f": {reason}; ablate run moves its files to {run.folder / results.DAMAGED_PREFIX}<time>/ and trains "
                        "it again")
        lines.append(f"  {state:9s} {run.folder}{progress}")
    first, to_train = plan.study, counts["to train"] + counts["damaged"]
    others = "".join(f", {counts[s]} {s}" for s in ("damaged", ELSEWHERE) if counts[s])
    header = (f"{len(lines)} run(s) planned, {len(lines) - to_train - counts[ELSEWHERE]} finished, {to_train} to train "
              f"({counts['going']} in progress{others}) "
              f"(device {first.resolved.device}, precision {first.resolved.precision}, strategy {first.resolved.strategy}"
              f"{'; each job resolves auto where it runs' if first.deferred else ''}):")
    return "\n".join([header, *lines])
