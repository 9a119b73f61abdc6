"""seeds=auto: the state a study's stored runs leave (decisions, next round), a killed round resumed the same way,
the refusals of bad adaptive settings, and the whole loop end to end on a tiny study."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import TINY, run_ablate

from ablate.config import ConfigError
from ablate.store import results
from ablate.study import adaptive, plan, sequential

STUDY = [*TINY, "seeds=auto", "model.depth=1,3,4", "study=auto"]


def store(variant: str, values: dict[int, float], status: str = "ok") -> None:
    """A finished run per seed with this test accuracy, as the runner leaves it (only what the state reads)."""
    for seed, value in values.items():
        folder = results.run_dir("runs", "auto", variant, seed)
        folder.mkdir(parents=True)
        (folder / results.METRICS_FILE).write_text(json.dumps({"status": status, "test_acc": value}))


def decisions(current: adaptive.AdaptiveState) -> dict[str, str]:
    return {c.variant: c.decision for c in current.comparisons}


def test_a_fresh_study_trains_the_first_round_of_every_variant() -> None:
    current = adaptive.state(plan.build(STUDY))
    assert decisions(current) == {"model.depth=1": "open", "model.depth=3": "open", "model.depth=4": "open"}
    assert dict(current.next_seeds) == {name: (0, 1, 2) for name in ("baseline", "model.depth=1", "model.depth=3", "model.depth=4")}


def test_decided_comparisons_stop_and_the_baseline_trains_only_what_open_ones_pair_with() -> None:
    rng = np.random.default_rng(0)
    base = {s: 0.90 + rng.normal(0, 0.002) for s in range(6)}
    store("baseline", base)
    store("model.depth=1", {s: v + 0.05 + rng.normal(0, 0.001) for s, v in base.items()})  # +5 pt, clear
    store("model.depth=3", {s: v + rng.normal(0, 0.0005) for s, v in base.items()})  # the same within ±0.1 pt
    store("model.depth=4", {s: v + rng.normal(0, 0.03) for s, v in base.items()})  # noisy: open
    current = adaptive.state(plan.build(STUDY))
    assert decisions(current) == {"model.depth=1": "better", "model.depth=3": "equivalent", "model.depth=4": "open"}
    assert dict(current.next_seeds) == {"baseline": (6, 7, 8), "model.depth=4": (6, 7, 8)}
    better = next(c for c in current.comparisons if c.variant == "model.depth=1")
    assert better.seeds == tuple(range(6)) and 0 < better.low < 0.05 < better.high


def test_a_killed_round_is_finished_before_anything_is_judged() -> None:
    """One comparison at alpha 0.05 could decide at 4 seeds; a round is 3, so 4 stored seeds are judged as 3
    (undecidable) and the round is completed, exactly as a study that was never killed would go."""
    overrides = [*TINY, "seeds=auto", "model.depth=2,3", "study=auto"]
    store("baseline", {s: 0.90 for s in range(4)} | {0: 0.901, 1: 0.899})
    store("model.depth=3", {0: 0.951, 1: 0.950, 2: 0.949, 3: 0.950})
    current = adaptive.state(plan.build(overrides))
    assert decisions(current) == {"model.depth=3": "open"}
    assert dict(current.next_seeds) == {"baseline": (4, 5), "model.depth=3": (4, 5)}
    assert current.comparisons[0].seeds == (0, 1, 2)


def test_a_variant_ahead_of_the_baseline_waits_for_it() -> None:
    overrides = [*TINY, "seeds=auto", "model.depth=2,3", "study=auto"]
    store("baseline", {0: 0.90, 1: 0.91, 2: 0.90})
    store("model.depth=3", {s: 0.95 + s / 1000 for s in range(6)})
    current = adaptive.state(plan.build(overrides))
    assert decisions(current) == {"model.depth=3": "open"}
    assert dict(current.next_seeds) == {"baseline": (3, 4, 5)}


def test_a_spent_budget_leaves_the_comparison_inconclusive_with_its_interval() -> None:
    overrides = [*TINY, "seeds=auto", "model.depth=2,3", "study=auto", "adaptive.budget=4", "adaptive.batch=2"]
    store("baseline", {0: 0.90, 1: 0.93, 2: 0.88, 3: 0.91})
    store("model.depth=3", {0: 0.92, 1: 0.90, 2: 0.91, 3: 0.95}, status="ok")
    current = adaptive.state(plan.build(overrides))
    assert decisions(current) == {"model.depth=3": "inconclusive"} and not current.next_seeds
    assert np.isfinite(current.comparisons[0].low) and current.comparisons[0].low < 0 < current.comparisons[0].high


def test_a_failed_run_is_skipped_and_the_next_seed_takes_its_place() -> None:
    overrides = [*TINY, "seeds=auto", "model.depth=2,3", "study=auto"]
    store("baseline", {0: 0.90, 1: 0.91, 2: 0.90})
    store("model.depth=3", {0: 0.92, 2: 0.93})
    store("model.depth=3", {1: 0.0}, status="failed")
    current = adaptive.state(plan.build(overrides))
    assert current.comparisons[0].seeds == (0, 2)
    assert dict(current.next_seeds) == {"baseline": (3, 4, 5), "model.depth=3": (3, 4, 5)}


@pytest.mark.parametrize("setting, words", [
    ("seeds=abc", "seeds=abc is not allowed; give a list of integers such as [0,1,2], or auto"),
    ("adaptive.batch=30", "adaptive.batch=30 is not allowed; it must be at most adaptive.budget (20)"),
    ("adaptive.margin=0", "adaptive.margin=0.0 is not allowed"),
    ("adaptive.alpha=1.5", "adaptive.alpha=1.5 is not allowed"),
    ("adaptive.metric=test_loss", "adaptive.metric='test_loss' is not allowed; choose one of: test_acc, val_acc"),
])
def test_bad_adaptive_settings_are_refused_naming_the_key(setting: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(").replace(")", r"\)")):
        plan.build([*TINY, "seeds=auto", "model.depth=2,3", setting])


def test_seeds_auto_without_factors_is_refused() -> None:
    with pytest.raises(ConfigError, match="seeds=auto adds seeds where a variant's comparison with the baseline is open"):
        adaptive.is_adaptive(plan.build([*TINY, "seeds=auto"]))


def test_the_loop_trains_round_after_round_then_a_rerun_trains_nothing(workdir: Path) -> None:
    command = [*TINY, "seeds=auto", "model.batchnorm=true,false", "study=loop", "adaptive.budget=4", "adaptive.batch=2"]
    dry = run_ablate("run", *command, "--dry-run", cwd=workdir)
    assert dry.returncode == 0, dry.stderr
    assert "Next round: 4 run(s):\n  baseline: seeds 0, 1\n  model.batchnorm=true: seeds 0, 1" in dry.stdout
    assert not list(workdir.glob("runs/loop/*/seed=*"))  # nothing trained
    first = run_ablate("run", *command, cwd=workdir)
    assert first.returncode == 0, first.stderr
    for variant in ("baseline", "model.batchnorm=true"):
        assert sorted(p.name for p in (workdir / "runs/loop" / variant).iterdir()) == [f"seed={s}" for s in range(4)]
        record = json.loads((workdir / "runs/loop" / variant / "seed=3/metrics.json").read_text())
        assert record["adaptive"] is True and record["planned_seeds"] == [2, 3]
    final = first.stdout.split("seeds=auto:")[-1]
    assert "4 paired seed(s)" in final and "nothing to train" in final and "Study loop: 8 ok" in first.stdout
    again = run_ablate("run", *command, cwd=workdir)
    assert again.returncode == 0, again.stderr
    assert again.stdout.split("\n\n")[0].strip() == "seeds=auto:" + final.split("\n\n")[0].rstrip()
    report = run_ablate("report", "runs/loop", cwd=workdir)
    assert report.returncode == 0, report.stderr
    assert "Δ vs baseline [anytime-valid CI]" in report.stdout and "seeds=auto (budget 4, rounds of 2" in report.stdout
    row = pd.read_csv(workdir / "reports/loop/summary.csv").set_index("variant").loc["model.batchnorm=true"]
    values = {v: [json.loads((workdir / f"runs/loop/{v}/seed={s}/metrics.json").read_text())["test_acc"] for s in range(4)]
              for v in ("baseline", "model.batchnorm=true")}
    differences = np.subtract(values["model.batchnorm=true"], values["baseline"])
    low, high = sequential.interval(differences, 0.05)
    assert row["diff"] == pytest.approx(differences.mean()) and (row["diff_ci_low"], row["diff_ci_high"]) == pytest.approx((low, high))
    assert row["verdict"] == final.split("4 paired seed(s)")[1].split("\n")[0].split()[-1] and pd.isna(row["p_holm"])
    assert "missing" not in report.stdout
    forest = (workdir / "reports/loop/index.html").read_text()  # the page's forest plot, as inline SVG
    assert "anytime-valid interval" in forest and "with 95 % CI" not in forest


def test_the_report_judges_with_the_latest_commands_settings() -> None:
    """A study continued with a smaller budget: what reached that budget reads inconclusive, not open."""
    from ablate.report import adaptive as adaptive_report

    rows = [{"variant": v, "seed": s, "status": "ok", "adaptive": True, "test_acc": 0.9 + (0.02 * (s % 2) if v != "baseline" else 0.0),
             "finished_at": f"2026-01-0{1 + (s >= 3)}", **{f"cfg.adaptive.{k}": x for k, x in
             (("budget", 20 if s < 3 else 6), ("batch", 3), ("margin", 1.0), ("alpha", 0.05), ("metric", "test_acc"))}}
            for v in ("baseline", "model.depth=3") for s in range(6)]
    runs = pd.DataFrame(rows)
    assert adaptive_report.settings_of(runs).budget == 6
    summary = adaptive_report.apply(pd.DataFrame({"variant": ["baseline", "model.depth=3"], "ci_method": "t", "verdict": ""}), runs)
    assert summary.set_index("variant").loc["model.depth=3", "verdict"] == "inconclusive"
    assert summary.set_index("variant").loc["model.depth=3", "diff"] == pytest.approx(0.01)
