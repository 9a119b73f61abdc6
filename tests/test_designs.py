"""Two-level designs: the planned points are the design a user asked for, the report recovers known effects and
names aliases, and a tiny design runs end to end through the command (folders, --dry-run, resume, effects)."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from conftest import TINY, run_ablate

from ablate.config import ConfigError
from ablate.report import effects
from ablate.study import plan
from ablate.study.variants import make_variant

FACTORS = {"model.depth": (2, 4), "model.batchnorm": (False, True), "model.pool": ("max", "avg")}
# True effects in percentage points (change from the first value to the second) and one interaction.
TRUE = {"depth": 4.0, "batchnorm": -2.0, "pool": 0.0, "batchnorm × depth": 3.0, "batchnorm × pool": 0.0, "depth × pool": 0.0}


def synthetic_runs(keep: "callable[[tuple[int, ...]], bool]" = lambda codes: True, noise: float = 0.001) -> pd.DataFrame:
    """Per-seed test_acc of every kept point of the 2^3 design over FACTORS, drawn from TRUE plus seed noise (no training)."""
    rng = np.random.default_rng(0)
    rows = []
    for codes in itertools.product((-1, 1), repeat=3):
        if not keep(codes):
            continue
        depth, batchnorm, pool = codes
        levels = {key: values[code > 0] for (key, values), code in zip(FACTORS.items(), codes)}
        variant = make_variant({key: value for key, value in levels.items() if value != FACTORS[key][0]})
        mean = 0.90 + (TRUE["depth"] * depth + TRUE["batchnorm"] * batchnorm + TRUE["batchnorm × depth"] * depth * batchnorm) / 200
        for seed in range(4):
            rows.append({"variant": variant.name, "seed": seed, "status": "ok", "test_acc": mean + rng.normal(0, noise),
                         **{f"cfg.{key}": value for key, value in levels.items()}})
    return pd.DataFrame(rows)


def test_the_fit_recovers_known_main_effects_and_an_interaction_from_synthetic_responses() -> None:
    runs = synthetic_runs()
    fit = effects.fit_effects(effects.two_level_runs(runs, "test_acc", 100.0))
    table = fit.effects.set_index("term")
    assert fit.design == "2^3 full factorial" and fit.residual_df == 32 - 7
    assert set(table.index) == set(TRUE)
    for term, truth in TRUE.items():  # the standard error of an effect is 2 × 0.1 pt / sqrt(32) ≈ 0.035 pt
        assert table.loc[term, "effect"] == pytest.approx(truth, abs=0.15), term
        assert table.loc[term, "ci_low"] < table.loc[term, "effect"] < table.loc[term, "ci_high"] < table.loc[term, "ci_low"] + 0.5
    # recomputed by hand: a main effect is the mean at the second value minus the mean at the first
    acc = runs["test_acc"] * 100
    assert table.loc["depth", "effect"] == pytest.approx(acc[runs["cfg.model.depth"] == 4].mean() - acc[runs["cfg.model.depth"] == 2].mean())
    same = (runs["cfg.model.depth"] == 4) == runs["cfg.model.batchnorm"]
    assert table.loc["batchnorm × depth", "effect"] == pytest.approx(acc[same].mean() - acc[~same].mean())
    significant = set(table.index[table["p_holm"] < 0.05])
    assert significant == {"depth", "batchnorm", "batchnorm × depth"}
    assert table.loc["batchnorm × depth", "change"] == "batchnorm false→true × depth 2→4"
    # an effect's standard error in a balanced ±1 design: 2 σ / sqrt(N), σ² the residual mean square
    coded = np.column_stack([np.ones(32)] + [np.where(runs[f"cfg.{k}"] == v[1], 1.0, -1.0) for k, v in FACTORS.items()])
    model = np.column_stack([coded, *(coded[:, i] * coded[:, j] for i, j in itertools.combinations(range(1, 4), 2))])
    residuals = acc - model @ np.linalg.lstsq(model, acc, rcond=None)[0]
    assert table["se"].to_numpy() == pytest.approx(2 * np.sqrt(residuals @ residuals / 25) / np.sqrt(32))
    scores = effects.half_normal_scores(fit.effects)
    assert list(scores["term"][-3:]) == ["batchnorm", "batchnorm × depth", "depth"]  # largest |effect| last
    assert scores["quantile"].to_numpy() == pytest.approx(stats.norm.ppf(0.5 + 0.5 * (np.arange(1, 7) - 0.5) / 6))
    assert scores["noise"].to_numpy() == pytest.approx(scores["quantile"].to_numpy() * table["se"].median())


def test_each_effect_interval_excludes_0_exactly_where_its_holm_adjusted_p_is_below_alpha() -> None:
    fits = [effects.fit_effects(effects.two_level_runs(synthetic_runs(noise=noise), "test_acc", 100.0)).effects
            for noise in (0.08, 0.1, 0.12)]  # noisy enough that some effects are near the line
    for table in fits:
        excludes = (table["ci_low"] > 0) | (table["ci_high"] < 0)
        assert list(excludes) == list(table["p_holm"] < 0.05), table
    borderline = pd.concat(fits).query("p < 0.05 <= p_holm")  # where an unadjusted 95 % interval would exclude 0
    assert len(borderline) >= 2 and ((borderline["ci_low"] < 0) & (borderline["ci_high"] > 0)).all()


def test_a_half_fraction_names_its_aliases_and_estimates_their_sum() -> None:
    runs = synthetic_runs(keep=lambda codes: np.prod(codes) == -1)  # I = -ABC: resolution III
    design = effects.two_level_runs(runs, "test_acc", 100.0)
    fit = effects.fit_effects(design)
    table = fit.effects.set_index("term")
    assert fit.design == "2^(3-1) fraction, resolution III"
    assert list(table.index) == ["batchnorm", "depth", "pool"]  # the interactions are the main effects' aliases
    assert table.loc["pool", "aliases"] == "−batchnorm × depth"
    assert table.loc["depth", "aliases"] == "−batchnorm × pool"
    # pool's column is minus batchnorm × depth's over these points, so the fit sees pool - (batchnorm × depth)
    assert table.loc["pool", "effect"] == pytest.approx(TRUE["pool"] - TRUE["batchnorm × depth"], abs=0.2)


def test_runs_that_form_no_design_get_no_effects() -> None:
    one_off = synthetic_runs(keep=lambda codes: codes in {(-1, -1, -1), (1, 1, -1)})  # baseline and one two-key variant
    assert effects.two_level_runs(one_off, "test_acc") is None
    one_at_a_time = synthetic_runs(keep=lambda codes: sorted(codes) in ([-1, -1, -1], [-1, -1, 1]))
    assert effects.two_level_runs(one_at_a_time, "test_acc") is None


def test_the_planned_points_are_a_resolution_iv_half_of_the_four_factor_design() -> None:
    planned = plan.build(["+design=fractional", "model.depth=2,4", "model.batchnorm=false,true", "model.pool=max,avg",
                          "model.head=flatten,gap", "study=f"])
    assert len(planned.variants) == 8 and planned.variants[0].variant.name == "baseline"
    codes = np.array([[1.0 if (v.config.model.depth, v.config.model.batchnorm, v.config.model.pool, v.config.model.head)[i]
                       == (4, True, "avg", "gap")[i] else -1.0 for i in range(4)] for v in planned.variants])
    assert len({tuple(row) for row in codes}) == 8
    pairs = [codes[:, i] * codes[:, j] for i, j in itertools.combinations(range(4), 2)]
    assert all(abs(codes[:, i] @ pair) == 0 for i in range(4) for pair in pairs)  # mains clear of two-factor interactions
    assert abs(np.prod(codes, axis=1).sum()) == 8  # the defining word has all four factors
    full = plan.build(["+design=factorial", "model.depth=2,4", "model.batchnorm=false,true", "model.pool=max,avg"])
    assert len({v.variant.name for v in full.variants}) == 8


@pytest.mark.parametrize(("overrides", "message"), [
    (["+design=factorial", "model.depth=2,3,4", "model.batchnorm=false,true"], "model.depth=2,3,4: a two-level design takes exactly two"),
    (["+design=factorial", "model.depth=2,3"], "needs at least two factors"),
    (["+design=fractional", "hydra.sweeper.resolution=2", "model.depth=2,3", "model.batchnorm=false,true", "model.pool=max,avg"],
     "hydra.sweeper.resolution=2: a fractional design needs a resolution of 3 or more"),
    (["+design=fractional", "hydra.sweeper.resolution=5", "model.depth=2,3", "model.batchnorm=false,true", "model.pool=max,avg"],
     "use +design=factorial"),
])
def test_a_design_it_cannot_build_is_refused_naming_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("+", r"\+")):
        plan.build(overrides)


def test_a_tiny_factorial_runs_end_to_end_resumes_and_reports_its_effects(workdir: Path) -> None:
    command = ["run", "+design=factorial", "model.depth=2,3", "model.batchnorm=false,true", "seeds=[0,1]", "study=fac",
               "precision=fp32", *TINY]
    dry = run_ablate(*command, "--dry-run", cwd=workdir)
    assert dry.returncode == 0 and "8 run(s) planned, 0 finished, 8 to train" in dry.stdout
    assert run_ablate(*command, cwd=workdir).returncode == 0
    names = {"baseline", "model.depth=3", "model.batchnorm=true", "model.batchnorm=true,model.depth=3"}
    assert {p.name for p in (workdir / "runs/fac").iterdir() if not p.name.startswith(".")} == names
    assert "8 finished, 0 to train" in run_ablate(*command, "--dry-run", cwd=workdir).stdout
    report = run_ablate("report", "runs/fac", cwd=workdir)
    assert report.returncode == 0, report.stderr
    assert "2^2 full factorial, OLS on 8 finished runs, 4 residual degrees of freedom" in report.stdout
    accuracy = {(name, seed): json.loads((workdir / f"runs/fac/{name}/seed={seed}/metrics.json").read_text())["test_acc"] * 100
                for name in names for seed in (0, 1)}
    def mean(where: "callable[[str], bool]") -> float:
        return float(np.mean([a for (name, _), a in accuracy.items() if where(name)]))
    table = pd.read_csv(workdir / "reports/fac/effects.csv").set_index("term")
    assert table.loc["depth", "effect"] == pytest.approx(mean(lambda n: "depth" in n) - mean(lambda n: "depth" not in n))
    assert table.loc["batchnorm × depth", "effect"] == pytest.approx(
        mean(lambda n: n in ("baseline", "model.batchnorm=true,model.depth=3")) - mean(lambda n: n in ("model.depth=3", "model.batchnorm=true")))
    for picture in ("interactions.png", "half_normal.png"):
        assert (workdir / "reports/fac" / picture).read_bytes()[:4] == b"\x89PNG"
    assert "## Effects on test_acc (%)" in (workdir / "reports/fac/summary.md").read_text()
    page = (workdir / "reports/fac/index.html").read_text()  # the shared page holds the effects and their pictures
    assert "Effects on test_acc (%)" in page and page.count('<figure id="figure-') == 6 and 'id="figure-half_normal"' in page
    shown = page[page.index('<table id="effects-table">'):]
    shown = shown[:shown.index("</table>")]
    rows = [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tbody>.*", shown, re.S)[0].split("</tr>") if "<td>" in row]
    assert [row[0] for row in rows] == list(table.index)  # a table of its own on the page, one row per effect
    for row in rows:
        assert row[2].startswith(f"{table.loc[row[0], 'effect']:+.2f} [")
