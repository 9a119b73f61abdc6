"""Issue 20's numbered cases, each as a user meets it: values typed before they are compared and named, folders safe
for any value, normalisation from the images trained on, data and weights known by their content, locks deciding
who trains. Each test failed on main before its fix."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY, image_folder, train
from omegaconf import OmegaConf
from PIL import Image

from ablate.cli import main
from ablate.config import AblateConfig, DataConfig, TrainConfig
from ablate.data.datasets import load_dataset
from ablate.store import checkpoints, results
from ablate.study import plan

TINY_RUN = [*TINY, "data.train_size=64", "data.test_size=32", "data.image_size=8", "train.batch_size=32", "seeds=[0]", "precision=fp32"]


# case 5: values compared as strings


def test_a_value_typed_as_an_integer_is_the_baseline_not_a_second_variant() -> None:
    planned = plan.build([*TINY_RUN, "model.dropout=0,0.5", "train.lr=0.001,1e-3,0.01"])
    assert [v.variant.name for v in planned.variants] == ["baseline", "model.dropout=0.5", "train.lr=0.01"]


def test_model_weights_varied_over_two_run_folders_makes_one_folder_per_variant_that_the_report_reads(workdir: Path) -> None:
    for source in ("a", "b"):
        assert main(["run", *TINY_RUN, f"study={source}", "runs_dir=sources"]) == 0
    conf = workdir / "myconf" / "model"
    conf.mkdir(parents=True)
    (conf / "frozen.yaml").write_text("transfer: frozen\nweights: sources/a/baseline\n")
    assert main(["run", "--config-dir", "myconf", "model=frozen", "model.weights=sources/a/baseline,sources/b/baseline",
                 *TINY_RUN, "study=weights"]) == 0
    folders = sorted(p.name for p in (workdir / "runs" / "weights").iterdir() if not p.name.startswith("."))
    assert folders == ["baseline", "model.weights=sources%2Fb%2Fbaseline"]
    record = json.loads((workdir / "runs/weights/model.weights=sources%2Fb%2Fbaseline/seed=0/metrics.json").read_text())
    assert record["variant"] == "model.weights=sources/b/baseline" and record["value"] == "sources/b/baseline"
    assert sorted(results.load_runs(workdir / "runs" / "weights")["variant"]) == ["baseline", "model.weights=sources/b/baseline"]
    assert main(["report", "runs/weights"]) == 0
    assert "sources/b/baseline" in (workdir / "reports" / "weights" / "summary.md").read_text()


# case 8: normalisation statistics computed before the hold-out and the class selection


def test_normalisation_comes_from_the_images_trained_on_and_is_recorded(workdir: Path) -> None:
    root = image_folder(workdir / "images", 0, train=6, test=2)
    cfg = AblateConfig(data=DataConfig(name="folder", root=str(root), image_size=8, classes=[2, 0], validation_size=3),
                       train=TrainConfig(epochs=1, batch_size=8, strategy="eager"), seeds=[0], device="cpu", precision="fp32")
    # written out here: ImageFolder order (class, file name), classes 2 and 0 kept, then 3 of them held out by subset_seed
    files = [root / "train" / str(label) / f"{n}.png" for label in (0, 2) for n in range(6)]
    held = set(torch.randperm(len(files), generator=torch.Generator().manual_seed(0))[:3].tolist())
    trained = np.stack([np.asarray(Image.open(f), dtype=np.float64) / 255 for i, f in enumerate(files) if i not in held])
    assert train(cfg).trained == 1
    record = json.loads((workdir / "runs/default/baseline/seed=0/metrics.json").read_text())
    assert record["normalisation"]["from"] == "training images"
    assert record["normalisation"]["mean"] == pytest.approx([trained.mean()], abs=1e-6)
    assert record["normalisation"]["std"] == pytest.approx([trained.std(ddof=1)], abs=1e-5)
    data = load_dataset(cfg.data)
    assert abs(data.train_x.mean().item()) < 1e-5 and abs(data.train_x.std().item() - 1) < 1e-4
    mnist = load_dataset(DataConfig(name="mnist", train_size=64, test_size=32))
    assert mnist.normalisation == {"from": "published statistics", "mean": [0.1307], "std": [0.3081]}


# case 7: a resumed vectorized group trains seeds another process holds


def test_a_resumed_group_trains_only_the_seeds_this_process_holds(workdir: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    cfg = AblateConfig(data=DataConfig(name="synthetic", train_size=64, test_size=32, image_size=8),
                       train=TrainConfig(epochs=2, batch_size=32, strategy="vectorized", checkpoint_every=1),
                       seeds=[0, 1], device="cpu", precision="fp32")
    with monkeypatch.context() as keep:  # the group's checkpoints after epoch 1 stay, as after a kill in epoch 2
        keep.setattr(checkpoints, "remove", lambda folder: None)
        assert train(cfg).trained == 2
    folders = [results.run_dir("runs", "default", "baseline", seed) for seed in (0, 1)]
    for folder in folders:
        (folder / results.METRICS_FILE).unlink()
    other = results.RunLock(folders[1])
    assert other.acquire()  # another process trains seed 1
    try:
        with caplog.at_level("INFO", logger="ablate"):
            summary = train(cfg)
    finally:
        other.release()
    assert (summary.trained, summary.failed) == (1, 0)
    assert "resuming seed 0 of variant default/baseline at epoch 2/2" in caplog.text
    assert results.is_finished(folders[0]) and not results.is_finished(folders[1])
    assert (folders[1] / checkpoints.CHECKPOINT_FILE).is_file()  # left to its holder


# case 4: the report's pooling check was weaker than the run-time one


@pytest.mark.parametrize(("sweep", "variant", "key", "value"), [
    ("train.optimizer=adam,sgd", "train.optimizer=sgd", "train.momentum", 0.5),
    ("train.augment=none,shift", "train.augment=shift", "train.augment_pixels", 1),
])
def test_run_and_report_refuse_the_same_seeds_of_one_variant_that_differ(
        workdir: Path, capsys: pytest.CaptureFixture, sweep: str, variant: str, key: str, value: float) -> None:
    study = [*TINY_RUN, "seeds=[0,1]", sweep, "study=s"]
    assert main(["run", *study]) == 0
    stale = workdir / "runs" / "s" / variant / "seed=1" / results.CONFIG_FILE
    config = OmegaConf.load(stale)
    OmegaConf.update(config, key, value)  # seed 1 trained with another value of a key its variant makes matter
    OmegaConf.save(config, stale)
    capsys.readouterr()
    assert main(["run", *study]) == 2
    assert f"{key}: {value} -> " in capsys.readouterr().err
    assert main(["report", "runs/s"]) == 2
    assert f"differ in {key}: " in capsys.readouterr().err and not (workdir / "reports" / "s" / "summary.md").exists()


# item 5: every job checks its variant where it runs, before it trains


def test_a_job_whose_settings_conflict_with_stored_runs_trains_nothing_and_names_the_key(
        workdir: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = AblateConfig(data=DataConfig(name="synthetic", train_size=64, test_size=32, image_size=8),
                       train=TrainConfig(epochs=1, batch_size=32, strategy="eager"), seeds=[0], device="cpu", precision="fp32")
    assert train(cfg).trained == 1
    other = replace(cfg, seeds=[1], train=replace(cfg.train, lr=0.01))  # a job that resolved or was given another setting
    with caplog.at_level("ERROR", logger="ablate"):
        summary = train(other)
    assert (summary.trained, summary.failed) == (0, 1)
    assert "train.lr: 0.001 -> 0.01" in caplog.text
    assert not results.run_dir("runs", "default", "baseline", 1).exists() or not results.is_finished(results.run_dir("runs", "default", "baseline", 1))
