"""Where each run of a plan stands, as the store says: finished ok, failed or diverged, in progress, or still to
train. `--dry-run` lists it before training; `ablate run` sums it up after.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Optional

from ablate.config import flatten_config, format_value, plain
from ablate.store import checkpoints, results
from ablate.study.estimate import estimate
from ablate.study.plan import Plan
from ablate.study.variants import BASELINE


ELSEWHERE = "in progress elsewhere"  # no metrics.json, and another process holds the run's lock
OUTCOMES = ("ok", "failed", "diverged", "damaged", ELSEWHERE, "missing")


def statuses(plan: Plan) -> dict[Path, tuple[str, str]]:
    """(status, what is wrong) of every planned run that is not simply absent, by folder: ok, failed or diverged
    from its metrics.json (with its error); damaged with what is wrong with it; or in progress elsewhere."""
    found = {}
    for run in plan.runs:
        record = results.read_metrics(run.folder)
        if record is not None:
            error = (record.get("error") or "").strip().splitlines() if record["status"] != "ok" else []
            found[run.folder] = (record["status"], error[0] if error else "")
        elif reason := results.damage(run.folder):
            found[run.folder] = ("damaged", reason)
        elif results.is_locked(run.folder):
            found[run.folder] = (ELSEWHERE, "")
    return found


def study_status(plan: Plan) -> dict[str, list[str]]:
    """Each planned run by outcome (see OUTCOMES): `study/variant/seed=N` names per outcome, with what is wrong with a
    failed, diverged or damaged one (what the console showed while it trained, long scrolled away)."""
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
    for status in OUTCOMES[1:]:  # every failed and diverged run; the others up to 20
        names = outcome.get(status, [])
        shown = names if status in ("failed", "diverged") else names[:20]
        lines += [f"  {status}: {name}" for name in shown] + ([f"  {status}: {len(names) - 20} more"] if len(names) > len(shown) else [])
    return "\n".join(lines)


def kept(plan: Plan) -> str:
    """What an interrupted command leaves: its finished runs and the checkpoints of runs in training, in words."""
    finished = sum(results.is_finished(run.folder) for run in plan.runs)
    going = [run.folder for run in plan.runs
             if not results.is_finished(run.folder) and checkpoints.progress(run.folder, run.variant.config.train.epochs)]
    where = f" ({', '.join(map(str, going[:3]))}{', ...' if len(going) > 3 else ''})" if going else ""
    return f"{finished} finished run(s) and {len(going)} checkpoint(s) of runs in training{where} are kept"


def describe(plan: Plan) -> str:
    """What a command would do: every planned run with its state (finished, failed, diverged, damaged, to train),
    nothing trained; failed and diverged runs are kept as results, to train again only with --retry-failed (as the
    runner decides); then the estimated time of those to train (study/estimate.py)."""
    found, lines, counts, training = statuses(plan), [], Counter(), []
    retry = plan.study.config.retry_failed
    for run in plan.runs:
        state, reason = found.get(run.folder, ("to train", ""))
        if retry and state in ("failed", "diverged"):
            state = f"to train ({state})"
        counts["to train" if state.startswith("to train") else state] += 1
        training += [run] if state.startswith("to train") or state == "damaged" else []
        progress = checkpoints.progress(run.folder, run.variant.config.train.epochs) if state.startswith("to train") else ""
        counts["going"] += bool(progress)
        if state == "damaged":
            progress = (f": {reason}; ablate run moves its files to {run.folder / results.DAMAGED_PREFIX}<time>/ and trains "
                        "it again")
        lines.append(f"  {state:9s} {run.folder}{progress}")
    first, to_train = plan.study, counts["to train"] + counts["damaged"]
    kept_results = "".join(f", {counts[s]} {s}" for s in ("failed", "diverged") if counts[s])
    again = " (kept as results; --retry-failed trains them again)" if kept_results else ""
    others = "".join(f", {counts[s]} {s}" for s in ("damaged", ELSEWHERE) if counts[s])
    header = (f"{len(lines)} run(s) planned, {counts['ok']} finished{kept_results}{again}, {to_train} to train "
              f"({counts['going']} in progress{others}) "
              f"(device {first.resolved.device}, precision {first.resolved.precision}, strategy {first.resolved.strategy}"
              f"{'; each job resolves auto where it runs' if first.deferred else ''}):")
    return "\n".join([header, *plan.notes, *filter(None, [baseline_line(plan)]), *lines, estimate(training)])


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
