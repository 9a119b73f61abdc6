"""logger=mlflow | tensorboard | wandb: every run of a tiny study read back with the tracker's own reader and
compared with the run's history.csv and metrics.json; a missing package or a broken tracker loses nothing."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import TINY, run_ablate

# Two variants x two seeds x two epochs: the trackers must keep runs, seeds and epochs apart.
STUDY = ["+sweep=batchnorm", "seeds=[0,1]", *TINY, "train.epochs=2"]
IDENTITY = ("study", "variant", "factor", "value", "seed", "identity_hash")


def on_disk(root: Path) -> dict[str, dict[str, Any]]:
    """Every run of study batchnorm as ablate wrote it, by tracker run name `variant/seed=N`: its metrics.json and
    its per-epoch curves from history.csv ({metric: [(epoch, value), ...]})."""
    runs = {}
    for folder in sorted((root / "runs" / "batchnorm").glob("*/seed=*")):
        record = json.loads((folder / "metrics.json").read_text())
        with (folder / "history.csv").open() as stream:
            rows = list(csv.DictReader(stream))
        curves = {key: [(int(row["epoch"]), float(row[key])) for row in rows] for key in rows[0] if key != "epoch"}
        runs[f"{folder.parent.name}/{folder.name}"] = {"record": record, "curves": curves}
    return runs


def assert_logged(logged: dict[str, dict[str, Any]], root: Path, rel: float, seeds: tuple[int, ...] = (0, 1)) -> None:
    """The tracker holds exactly ablate's runs of `seeds`, each with its identity, every curve point by epoch and
    the final metrics of metrics.json (`rel`: the tracker's float precision)."""
    expected = {name: run for name, run in on_disk(root).items() if run["record"]["seed"] in seeds}
    assert len(expected) == 2 * len(seeds) and sorted(logged) == sorted(expected)
    for name, run in expected.items():
        record = run["record"]
        assert logged[name]["tags"] == {key: str(record[key]) for key in IDENTITY}, name
        assert logged[name]["curves"].keys() == run["curves"].keys() == {"train_loss", "train_acc", "test_loss", "test_acc", "seconds"}
        for metric, points in run["curves"].items():
            assert [step for step, _ in logged[name]["curves"][metric]] == [1, 2], (name, metric)
            assert [value for _, value in logged[name]["curves"][metric]] == pytest.approx([v for _, v in points], rel=rel)
        for metric in ("test_acc", "test_loss", "train_loss", "params"):
            assert logged[name]["final"][f"final/{metric}"] == pytest.approx(record[metric], rel=rel), (name, metric)


def train(root: Path, *args: str, tracker: bool = True) -> None:
    """The study trained in `root`; with a tracker in a process of its own (its globals and threads end with it)."""
    result = run_ablate("run", *STUDY, *args, cwd=root, process=tracker)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow  # a tracker's store and background threads
def test_mlflow_sqlite_store_holds_every_run(workdir: Path) -> None:
    pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    from mlflow import MlflowClient

    train(workdir, "logger=mlflow")
    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlruns.db'}")
    experiment = client.get_experiment_by_name("batchnorm")
    logged = {}
    for run in client.search_runs([experiment.experiment_id]):
        assert run.info.status == "FINISHED"
        assert run.data.params["model.batchnorm"] == str(run.data.tags["variant"] != "baseline")
        curves = {key: [(m.step, m.value) for m in sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)]
                  for key in run.data.metrics if not key.startswith("final/")}
        final = {key: value for key, value in run.data.metrics.items() if key.startswith("final/")}
        logged[run.info.run_name] = {"tags": {key: run.data.tags[key] for key in IDENTITY}, "curves": curves, "final": final}
    assert_logged(logged, workdir, rel=1e-12)


@pytest.mark.slow  # a tracker's store and background threads
def test_tensorboard_event_files_per_run_and_logger_is_not_a_setting(workdir: Path) -> None:
    """Seed 0 trained without a tracker, then seeds 0 and 1 with TensorBoard: the same study (the logger decides
    no numbers), seed 0 is not retrained, and the report pools runs logged differently."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    train(workdir, "seeds=[0]", tracker=False)
    train(workdir, "logger=tensorboard")
    logged = {}
    for folder in sorted((workdir / "tb" / "batchnorm").glob("*/seed=*")):
        events = EventAccumulator(str(folder))
        events.Reload()
        scalars = {tag: [(event.step, event.value) for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
        hparams = next(HParamsPluginData.FromString(content).session_start_info.hparams
                       for content in events.PluginTagToContent("hparams").values()
                       if HParamsPluginData.FromString(content).HasField("session_start_info"))
        logged[f"{folder.parent.name}/{folder.name}"] = {
            "tags": {key: hparams[key].string_value for key in IDENTITY},
            "curves": {tag: points for tag, points in scalars.items() if not tag.startswith("final/")},
            "final": {tag: points[-1][1] for tag, points in scalars.items() if tag.startswith("final/")},
        }
    assert_logged(logged, workdir, rel=1e-6, seeds=(1,))  # seed 0 was finished before: skipped, not logged
    assert run_ablate("report", "runs/batchnorm", cwd=workdir).returncode == 0


def wandb_records(path: Path) -> list[dict[str, Any]]:
    """The records of an offline run's .wandb file, as W&B's own reader (`wandb leet inspect --json`) prints them."""
    printed = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(path)],
                             capture_output=True, text=True, timeout=120, check=True).stdout
    return [json.loads(line) for line in printed.splitlines()]


@pytest.mark.slow  # a tracker's store and background threads
def test_wandb_offline_run_files(workdir: Path) -> None:
    pytest.importorskip("wandb")

    train(workdir, "logger=wandb")
    logged = {}
    for path in sorted(workdir.glob("wandb/offline-run-*/run-*.wandb")):
        records = wandb_records(path)
        run = next(r["run"] for r in records if r["type"] == "run")
        assert run["project"] == "batchnorm" and run["run_group"] == run["display_name"].split("/seed=")[0]
        assert [r["exit"]["exit_code"] for r in records if r["type"] == "exit"] == [0]
        curves: dict[str, list] = {}
        for history in (r["history"] for r in records if r["type"] == "history"):
            for key, value in history["item"].items():
                if not key.startswith("_"):
                    curves.setdefault(key, []).append((int(history["step"]["num"]), value))
        final = {}
        for summary in (r["summary"] for r in records if r["type"] == "summary"):
            final.update({key: value for key, value in summary.get("update", {}).items() if key.startswith("final/")})
        tags = dict(tag.split("=", 1) for tag in run["tags"])
        logged[run["display_name"]] = {"tags": {key: tags[key] for key in IDENTITY}, "curves": curves, "final": final}
    assert_logged(logged, workdir, rel=1e-12)


def test_missing_tracker_package_is_refused_before_training(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without mlflow installed (Python refuses `import mlflow` when sys.modules holds None for it), logger=mlflow
    is one line naming the logger and the pip extra, exit 2, and nothing trained."""
    monkeypatch.setitem(sys.modules, "mlflow", None)
    result = run_ablate("run", *TINY, "logger=mlflow", cwd=workdir)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "ablate: error: logger=mlflow needs the mlflow package, which cannot be imported "
        "(import of mlflow halted; None in sys.modules); install it with: pip install 'ablate-cnn[mlflow]'"
    ]
    assert not (workdir / "runs").exists()


@pytest.mark.slow  # a tracker's store and background threads
def test_tracker_failure_keeps_the_results(workdir: Path) -> None:
    """An MLflow store that cannot be opened (its folder is a file) is a warning; every run is finished on disk."""
    pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    (workdir / "blocker").write_text("not a folder\n")
    result = run_ablate("run", *TINY, "seeds=[0,1]", "study=kept", "logger=mlflow", "logger.tracking_uri=sqlite:///blocker/mlruns.db",
                        cwd=workdir, process=True)
    assert result.returncode == 0, result.stderr[-3000:]
    for seed in (0, 1):
        assert f"kept/baseline/seed={seed}: not logged to mlflow (" in result.stdout
        assert json.loads((workdir / "runs" / "kept" / "baseline" / f"seed={seed}" / "metrics.json").read_text())["status"] == "ok"
