"""One plan, one identity: what `ablate run` accepts, `ablate report` pools; what decides no number moves freely."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from conftest import TINY, run_ablate
from hydra._internal.config_loader_impl import ConfigLoaderImpl

from ablate.config import AblateConfig, ConfigError, DataConfig, ModelConfig, TrainConfig
from ablate.data.catalog import input_spec
from ablate.report.summary import summarize
from ablate.store import results
from ablate.study import identity, plan
from ablate.study.resolve import Resolved, auto_precision, resolve
from ablate.training import runner

CPU = Resolved("cpu", "fp32", "eager")


def test_paths_switches_and_ignored_settings_are_not_identity() -> None:
    base = AblateConfig(device="cpu")
    mine = identity.identity(base, CPU)
    moved = replace(base, runs_dir="elsewhere", study="other", seeds=[7],
                    data=replace(base.data, root="/mnt/data", download=True, image_size=64, channels=3),
                    train=replace(base.train, seeds_per_group=2, momentum=0.5), pretrain=replace(base.pretrain, epochs=9))
    assert identity.identity(moved, CPU) == mine  # mnist ignores image_size and channels; adam ignores momentum
    assert identity.identity(replace(base, train=replace(base.train, optimizer="sgd", momentum=0.5)), CPU)["train.momentum"] == 0.5
    synthetic = replace(base, data=DataConfig(name="synthetic", image_size=16))
    assert identity.identity(synthetic, CPU)["data.image_size"] == 16
    assert identity.identity(synthetic, CPU)["data.subset_seed"] == 0  # it draws synthetic's images
    assert "data.subset_seed" not in identity.identity(base, CPU)  # MNIST whole: it picks no subset
    transfer = replace(base, model=replace(base.model, transfer="frozen", weights="pretrain"))
    assert identity.identity(transfer, CPU)["pretrain.epochs"] == 2  # the source task decides a transfer's numbers


def test_what_auto_resolved_to_is_identity_and_a_difference_names_the_key_with_both_values() -> None:
    cfg = AblateConfig(device="cpu", precision="fp32")
    on_cpu, on_gpu = identity.identity(cfg, resolve(cfg)), identity.identity(cfg, Resolved("cuda", "bf16", "eager", (("cudnn_tf32", True),)))
    found = identity.conflicts(on_gpu, on_cpu)
    assert identity.describe_conflicts(found) == "device: cpu -> cuda, precision: fp32 -> bf16"
    assert identity.conflicts(on_cpu, on_cpu) == []
    depth = identity.identity(replace(cfg, model=replace(cfg.model, depth=3)), CPU)
    assert identity.conflicts(depth, on_cpu, {"model.depth"}) == []  # a variant's own key is its factor, not a conflict


def test_a_study_resumed_with_settings_that_decide_no_number_is_accepted_and_reports(workdir: Path) -> None:
    first = run_ablate("run", "+sweep=batchnorm", "seeds=[0]", *TINY, cwd=workdir)
    assert first.returncode == 0, first.stderr
    again = run_ablate("run", "+sweep=batchnorm", "seeds=[0,1]", *TINY, "pretrain.epochs=5", "data.root=moved",
                       "data.download=true", cwd=workdir)
    assert again.returncode == 0, again.stderr
    report = run_ablate("report", cwd=workdir)
    assert report.returncode == 0, report.stdout + report.stderr
    assert pd.read_csv(workdir / "reports/batchnorm/summary.csv")["n"].tolist() == [2, 2]


def test_a_new_variant_must_pool_with_the_studys_other_variants_before_training(workdir: Path) -> None:
    assert run_ablate("run", "seeds=[0]", *TINY, "study=s", cwd=workdir).returncode == 0
    refused = run_ablate("run", "seeds=[0]", *TINY, "study=s", "model.depth=3", "train.lr=0.01", cwd=workdir)
    assert refused.returncode == 2
    assert "runs/s/baseline/seed=0 (train.lr: 0.001 -> 0.01)" in refused.stderr and "study=NAME" in refused.stderr
    assert not (workdir / "runs/s/model.depth=3").exists()


def test_a_one_off_run_changing_two_keys_is_its_own_variant_and_reports_as_such(workdir: Path) -> None:
    assert run_ablate("run", "seeds=[0,1]", *TINY, cwd=workdir).returncode == 0
    two = run_ablate("run", "seeds=[0,1]", *TINY, "model.depth=3", "model.batchnorm=true", cwd=workdir)
    assert two.returncode == 0, two.stderr
    record = results.read_metrics(workdir / "runs/default/model.batchnorm=true,model.depth=3/seed=0")
    assert record["variant_overrides"] == {"model.batchnorm": "true", "model.depth": "3"}
    assert record["factor"] == "model.batchnorm+model.depth" and record["value"] == "true, 3"
    report = run_ablate("report", cwd=workdir)
    assert report.returncode == 0, report.stdout + report.stderr
    assert "model.batchnorm=true,model.depth=3: changes several keys at once" in report.stdout
    row = pd.read_csv(workdir / "reports/default/summary.csv").set_index("variant").loc["model.batchnorm=true,model.depth=3"]
    assert row["factor"] == "model.batchnorm+model.depth" and "not a one-factor comparison" in row["notes"]


def test_command_line_factors_plan_one_at_a_time_around_the_configs_own_values() -> None:
    planned = plan.build(["model.depth=2,3", "train.optimizer=adam,sgd", "train.lr=0.01", "study=mine"])
    assert [v.variant.name for v in planned.variants] == ["baseline", "model.depth=3", "train.optimizer=sgd"]
    assert all(v.config.train.lr == 0.01 and v.study == "mine" for v in planned.variants)
    sgd = planned.variants[2]
    assert sgd.config.train.optimizer == "sgd" and sgd.config.model.depth == 2 and sgd.identity["train.momentum"] == 0.9
    replaced = plan.build(["+sweep=depth", "model.depth=2,4"])  # the command line's values replace the file's
    assert [v.variant.name for v in replaced.variants] == ["baseline", "model.depth=4"]


def test_a_slower_variant_is_never_better_by_seconds() -> None:
    rows = [{"variant": v, "seed": s, "status": "ok", "factor": f, "value": "", "train_seconds": t}
            for v, f, times in (("baseline", "", (1.0, 1.1, 0.9)), ("model.depth=8", "model.depth", (5.0, 5.2, 4.9)))
            for s, t in enumerate(times)]
    summary = summarize(pd.DataFrame(rows), ["baseline", "model.depth=8"], "train_seconds").set_index("variant")
    assert summary.loc["model.depth=8", "verdict"] == "worse"


def test_inspect_reads_no_data_and_leaves_an_empty_folder_empty(workdir: Path) -> None:
    result = run_ablate("inspect", "+sweep=transfer", "model.arch=cnn", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "## model.transfer=frozen" in result.stdout
    assert list(workdir.iterdir()) == []


def test_retry_failed_trains_failed_runs_again_and_never_touches_ok_ones(workdir: Path) -> None:
    assert run_ablate("run", "seeds=[0,1]", *TINY, cwd=workdir).returncode == 0
    failed = workdir / "runs/default/baseline/seed=1"
    record = results.read_metrics(failed)
    results.write_run(failed, (failed / "config.yaml").read_text(), [], {**record, "status": "failed", "error": "CUDA out of memory"})
    kept = (workdir / "runs/default/baseline/seed=0/metrics.json").read_text()
    plain = run_ablate("run", "seeds=[0,1]", *TINY, cwd=workdir)
    assert plain.returncode == 1 and "failed: default/baseline/seed=1" in plain.stdout  # a failed run is a result
    retried = run_ablate("run", "seeds=[0,1]", *TINY, "--retry-failed", cwd=workdir)
    assert retried.returncode == 0, retried.stderr
    assert results.read_metrics(failed)["status"] == "ok" and results.read_metrics(failed)["test_acc"] == record["test_acc"]
    assert (workdir / "runs/default/baseline/seed=0/metrics.json").read_text() == kept


def test_every_run_stores_its_identity_resolution_and_hardware(workdir: Path) -> None:
    assert run_ablate("run", "seeds=[0]", *TINY, cwd=workdir).returncode == 0
    record = results.read_metrics(workdir / "runs/default/baseline/seed=0")
    expected = plan.build(["seeds=[0]", *TINY]).study
    assert record["identity"] == dict(expected.identity) and record["identity_hash"] == expected.identity_hash
    assert (record["device"], record["precision"], record["strategy"]) == ("cpu", auto_precision("cpu"), "eager")
    assert record["hardware"]["cpu"] and "gpu" not in record["hardware"]


def test_resolution_refusals_name_the_key() -> None:
    with pytest.raises(ConfigError, match="precision=fp16 needs a CUDA GPU"):
        resolve(AblateConfig(device="cpu", precision="fp16"))
    frozen = AblateConfig(device="cpu", train=TrainConfig(strategy="vectorized"), model=ModelConfig(transfer="frozen", weights="w.pt"))
    with pytest.raises(ConfigError, match="train.strategy=vectorized is not allowed with model.transfer=frozen"):
        resolve(frozen)


def test_the_suite_passes_in_a_checkout_whose_runs_folder_holds_other_studies(tmp_path: Path) -> None:
    """Tests run with this suite's conftest in a checkout where the README's commands left studies trained with other
    settings: each test plans in its own folder, so none of them meets those runs (without the conftest's fixture
    every plan below is refused for mixing settings)."""
    checkout = tmp_path / "checkout"
    (checkout / "tests").mkdir(parents=True)
    (checkout / "tests" / "conftest.py").write_text((Path(__file__).parent / "conftest.py").read_text())
    (checkout / "tests" / "test_readme_studies.py").write_text(
        "import pytest\nfrom ablate.study import plan, preflight\n\n"
        "@pytest.mark.parametrize('overrides', [['+sweep=kernel'], ['+sweep=depth'], ['+sweep=all'], []])\n"
        "def test_a_readme_study_plans_and_passes_preflight(overrides):\n"
        "    preflight.check(plan.build([*overrides, 'data=synthetic', 'device=cpu']))\n")
    for study in ("kernel", "depth", "all", "default"):  # what the README's commands leave, with other settings
        stale = checkout / "runs" / study / "baseline" / "seed=0"
        results.write_run(stale, OLD_STALE_CONFIG, [], {"status": "ok", "device": "cpu", "precision": "fp32"})
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0", "tests"],
                         cwd=checkout, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "4 passed" in run.stdout


OLD_STALE_CONFIG = "train: {epochs: 9, lr: 0.5}\nseeds: [0]\n"


def test_a_job_trains_the_variant_it_was_planned_without_planning_or_composing_again(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In this process (Hydra's basic launcher) the plan is the jobs: no sweeper, job or Hydra composes a config again."""
    built: list[plan.Plan] = []
    real_build = plan.build

    def build_once(*args: object, **kwargs: object) -> plan.Plan:
        built.append(real_build(*args, **kwargs))  # type: ignore[arg-type]

        def planning_again(*_: object, **__: object) -> None:
            raise AssertionError("a sweeper or job planned or composed the study again")
        monkeypatch.setattr(plan, "study_variants", planning_again)
        monkeypatch.setattr(ConfigLoaderImpl, "load_configuration", planning_again)
        return built[-1]

    monkeypatch.setattr(plan, "build", build_once)
    result = run_ablate("run", "+sweep=head", "seeds=[0]", *TINY, cwd=workdir)
    assert result.returncode == 0, result.stderr
    stored = {path.parent.name: results.read_metrics(path)["identity_hash"] for path in workdir.glob("runs/head/*/seed=0")}
    assert stored == {v.variant.name: v.identity_hash for v in built[0].variants}
    assert set(stored) == {"baseline", "model.head=gap"}


@pytest.mark.parametrize("strategy", ["eager", "vectorized"])
def test_a_variant_is_described_once_and_built_once_per_seed(workdir: Path, monkeypatch: pytest.MonkeyPatch, strategy: str) -> None:
    """The plan's description is what every run records and what a vectorized group's memory is planned from; the
    network is built once per seed that trains (the description needs no build of its own: the meta device)."""
    from ablate.networks import network

    calls = {"describe": 0, "build": 0}
    describe, build = network.CNN.describe, network.CNN.build

    def counted(name: str, method):  # type: ignore[no-untyped-def]
        def call(self):  # type: ignore[no-untyped-def]
            made = method(self)
            calls[name] += name == "describe" or next(made.parameters()).device.type != "meta"  # meta: no memory, no init
            return made
        return call

    monkeypatch.setattr(network.CNN, "describe", counted("describe", describe))
    monkeypatch.setattr(network.CNN, "build", counted("build", build))
    result = run_ablate("run", "seeds=[0,1,2]", f"train.strategy={strategy}", *TINY, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert calls == {"describe": 1, "build": 3}
    expected = network.CNN(ModelConfig(), *input_spec(DataConfig(name="synthetic", image_size=16))).describe()
    for seed in (0, 1, 2):
        record = results.read_metrics(results.run_dir(workdir / "runs", "default", "baseline", seed))
        assert (record["params"], record["receptive_field"]) == (expected.params, expected.receptive_field)


def test_a_job_whose_config_differs_from_its_spec_trains_nothing_and_names_the_key(
        workdir: Path, caplog: pytest.LogCaptureFixture) -> None:
    planned = plan.build(["model.depth=3", *TINY, f"runs_dir={workdir / 'runs'}"]).study
    spec = plan.read_spec(plan.job_spec(planned))
    assert plan.job_plan(planned.config, spec).identity_hash == planned.identity_hash  # the spec verifies as planned
    spec["identity"]["train.lr"] = 0.5  # the submitting host's config said another learning rate
    with pytest.raises(ConfigError, match=r"train.lr: this job's config gives 0.001 where its plan has 0.5"):
        plan.job_plan(planned.config, spec)
    assert runner.run_job(planned.config, spec) is None
    assert "default/model.depth=3: not trained: train.lr" in caplog.text
    assert not list(workdir.glob("runs/default/*/seed=*"))


def test_a_plan_for_jobs_elsewhere_leaves_auto_to_each_job(workdir: Path) -> None:
    tiny = [a for a in TINY if not a.startswith("device=")]
    planned = plan.build(["device=cuda", "precision=fp16", "hydra/launcher=slurm_local", *tiny]).study
    assert planned.deferred and (planned.resolved.device, planned.resolved.precision) == ("cuda", "fp16")
    with pytest.raises(ConfigError, match="device=cuda is not allowed here"):  # the job, on this CPU machine
        plan.job_plan(planned.config, plan.read_spec(plan.job_spec(planned)))
    auto = plan.build(["hydra/launcher=slurm_local", *tiny]).study
    assert auto.identity["device"] == "auto"
    here = plan.job_plan(auto.config, plan.read_spec(plan.job_spec(auto)))
    assert here.identity["device"] == resolve(here.config).device and not here.deferred
    with pytest.raises(ConfigError, match="device=cuda is not allowed here"):  # a local launcher: refused at submit
        plan.build(["device=cuda", "hydra/launcher=parallel", *tiny])
