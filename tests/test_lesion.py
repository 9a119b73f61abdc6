"""`ablate lesion`: units knocked out of trained networks by hooks, checked against networks whose answer is known,
the stored test accuracy, chance, and weights edited by hand; cached so a re-run or a killed lesion computes only
what is missing."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import TINY, run_ablate
from torch import nn

from ablate.config import ModelConfig
from ablate.data.datasets import load_dataset
from ablate.lesion import compute
from ablate.inspect.viz import load_model
from ablate.networks.network import LesionSite, NotLesionable, OwnNetwork, create_network
from ablate.store import lesions, results

STUDY = [*TINY, "data.train_size=64", "data.test_size=64", "train.batch_size=32", "model.depth=2", "model.width=4", "model.hidden=8", "precision=fp32"]
COLUMNS = ["variant", "seed", "layer", "mode", "fraction", "order", "test_acc", "test_loss"]


def test_single_unit_lesion_finds_the_channel_that_carries_the_signal():
    # Class 1 images are bright, class 0 dark; of conv1's 4 channels only channel 2 sees brightness, and the head reads
    # only it: knocking it out must cost class 1 everything, class 0 nothing, and the other channels nothing at all.
    torch.manual_seed(0)
    model = nn.Sequential(OrderedDict(conv1=nn.Conv2d(1, 4, 1), relu1=nn.ReLU(), pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(),
                                      fc=nn.Linear(4, 2))).eval()
    with torch.no_grad():
        model.conv1.weight.zero_(), model.conv1.bias.zero_()
        model.conv1.weight[2] = 1.0
        model.fc.weight.zero_()
        model.fc.weight[1, 2] = 10.0
        model.fc.bias.copy_(torch.tensor([2.5, 0.0]))
    y = torch.tensor([0, 1] * 20)
    x = (y.float() * 0.5 + 0.05 * torch.rand(40)).view(40, 1, 1, 1).expand(40, 1, 4, 4).contiguous()
    evaluator = compute.Evaluator(model, x, y, 2, "fp32")
    single = evaluator.masked(LesionSite("conv1", "conv1", "relu1"), 1.0 - torch.eye(4))
    assert single["acc"] == [1.0, 1.0, 0.5, 1.0]
    assert single["class_acc"][2] == [1.0, 0.0]
    assert compute.importance_order(single)[0] == 2


def test_lesion_of_a_trained_study_matches_its_stored_numbers_chance_and_weights_edited_by_hand(workdir: Path, monkeypatch: pytest.MonkeyPatch):
    assert run_ablate("run", "-m", "model.batchnorm=false,true", "seeds=[0]", *STUDY, "study=tiny", cwd=workdir).returncode == 0
    done = run_ablate("lesion", "runs/tiny", "--orders", "2", cwd=workdir)
    assert done.returncode == 0, done.stdout + done.stderr
    frame = pd.read_csv(workdir / "reports/tiny/lesion.csv", dtype={"order": str})
    assert list(frame.columns) == COLUMNS
    assert set(frame["mode"]) == {"single", "cumulative", "whole"} and set(frame["layer"]) == {"conv1", "conv2", "fc1"}
    for folder, record in results.finished_runs(workdir / "runs/tiny"):  # fraction 0: the intact network, as trained
        run = frame[(frame["variant"] == results.variant_of(folder.parent)) & (frame["seed"] == record["seed"])]
        assert set(run.loc[run["fraction"] == 0, "test_acc"]) == {record["test_acc"]}
    config, model = load_model(workdir / "runs/tiny/baseline/seed=0")
    data = load_dataset(config.data)
    shares = {round(float((data.test_y == c).float().mean()), 6) for c in range(10)}
    last = frame[(frame["mode"] == "whole") & (frame["layer"] == "conv2")]  # conv2 is 8 channels from 4: zeroed, not skipped
    assert set(last["order"]) == {"zero"}
    assert {round(v, 6) for v in last["test_acc"]} <= shares  # a constant answer: one class's share, chance
    # conv2's channel 1 zeroed after its ReLU is the same network as its kernel and bias set to 0 by hand
    with torch.no_grad():
        model.conv2.weight[1] = 0.0
        model.conv2.bias[1] = 0.0
        by_hand = float((model(data.test_x).argmax(1) == data.test_y).float().mean())
    single = frame[(frame["variant"] == "baseline") & (frame["seed"] == 0) & (frame["layer"] == "conv2") & (frame["order"] == "unit:1")]
    assert single["test_acc"].item() == pytest.approx(by_hand, abs=1e-9)
    page = (workdir / "reports/tiny/index.html").read_text()
    assert "Lesions of the trained networks" in page and "Area under each curve" in page
    assert run_ablate("report", "runs/tiny", cwd=workdir).returncode == 0  # the report keeps the lesion section
    assert "Lesions of the trained networks" in (workdir / "reports/tiny/index.html").read_text()

    def never(*args, **kwargs):
        raise AssertionError("a cached lesion was computed again")

    monkeypatch.setattr(compute.Evaluator, "run", never)
    again = run_ablate("lesion", "runs/tiny", "--orders", "2", cwd=workdir)
    assert again.returncode == 0, again.stdout + again.stderr
    pd.testing.assert_frame_equal(pd.read_csv(workdir / "reports/tiny/lesion.csv", dtype={"order": str}), frame)


def test_a_killed_lesion_resumes_and_a_missing_run_is_named(workdir: Path, monkeypatch: pytest.MonkeyPatch):
    assert run_ablate("run", "seeds=[0,1]", *STUDY, "study=small", cwd=workdir).returncode == 0
    variant = next((workdir / "runs/small").iterdir())  # the one-off variant its model.* keys make
    (variant / "seed=1" / results.METRICS_FILE).unlink()  # as if killed before it finished
    plain, calls = compute.Evaluator.masked, []

    def killed_at_the_third(self, site, masks):
        calls.append(site.name)
        if len(calls) == 3:
            raise RuntimeError("killed")
        return plain(self, site, masks)

    monkeypatch.setattr(compute.Evaluator, "masked", killed_at_the_third)
    assert run_ablate("lesion", "runs/small", cwd=workdir).returncode == 1
    run = variant / "seed=0"
    kept = lesions.read_pieces(run, compute.run_key(run, compute.Settings()))
    assert list(kept) == ["intact", "single/conv1", "cumulative/conv1"]
    monkeypatch.setattr(compute.Evaluator, "masked", plain)
    written, write = [], lesions.write_pieces
    monkeypatch.setattr(lesions, "write_pieces", lambda path, key, settings, pieces: (written.append(list(pieces)[-1]), write(path, key, settings, pieces)))
    resumed = run_ablate("lesion", "runs/small", cwd=workdir)
    assert resumed.returncode == 1 and f"{results.variant_of(variant)}/seed=1: not finished" in resumed.stdout
    assert written == ["whole/conv1", "single/conv2", "cumulative/conv2", "whole/conv2", "single/fc1", "cumulative/fc1", "whole/fc1"]
    assert set(pd.read_csv(workdir / "reports/small/lesion.csv")["seed"]) == {0}


def test_a_folder_that_is_not_a_study_is_one_line_and_status_2(workdir: Path):
    (workdir / "empty").mkdir()
    refused = run_ablate("lesion", "empty", cwd=workdir)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "not a study" in refused.stderr


def test_own_networks_are_lesioned_where_they_name_layers_or_refused_with_the_reason():
    network = OwnNetwork(ModelConfig(_target_="mynet.Net"), (1, 8, 8), 2)
    model = nn.Sequential(OrderedDict(block1=nn.Conv2d(1, 2, 3), head=nn.Flatten()))
    with pytest.raises(NotLesionable, match="names no `lesion_layers`"):
        network.lesion_sites(model)
    model.lesion_layers = ["block1"]
    assert [site.exit for site in network.lesion_sites(model)] == ["block1"]
    resnet = create_network(ModelConfig(arch="resnet18"), (1, 28, 28), 10)
    assert [site.name for site in resnet.lesion_sites(resnet.build())] == ["layer1", "layer2", "layer3", "layer4"]
