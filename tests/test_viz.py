"""`ablate viz` on a tiny trained run: valid PNGs next to the run; hooks gone afterwards, the model untouched."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import run_ablate
from PIL import Image, ImageStat

from ablate.cli import main
from ablate.inspect.viz import capture_activations, conv_layers, load_model, saliency
from ablate.store import results

PICTURES = ("filters.png", "activations_image5.png", "saliency_image5.png")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run of the baseline on 16x16 synthetic images, trained for one epoch by `ablate run`."""
    root = tmp_path_factory.mktemp("viz")
    trained = run_ablate("run", "data=synthetic", "data.train_size=256", "data.test_size=64", "data.image_size=16", "train.epochs=1",
                         "seeds=[0]", "device=cpu", f"runs_dir={root / 'runs'}", cwd=root)
    assert trained.returncode == 0, trained.stderr
    return root / "runs" / "default" / "baseline" / "seed=0"


def test_viz_writes_three_pngs_of_sensible_size_next_to_the_run(trained_run: Path) -> None:
    shown = run_ablate("viz", str(trained_run), "--image", "5", cwd=trained_run)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split() == [str(trained_run / name) for name in PICTURES]
    for name in PICTURES:
        with Image.open(trained_run / name) as image:
            assert image.format == "PNG" and image.size[0] >= 400 and image.size[1] >= 250, (name, image.size)
            assert max(ImageStat.Stat(image.convert("L")).stddev) > 20, f"{name} is nearly blank"


def test_hooks_are_removed_and_a_second_forward_adds_nothing_and_saliency_leaves_the_weights_alone(trained_run: Path) -> None:
    config, model = load_model(trained_run)
    names = conv_layers(config)
    assert names == ["conv1", "conv2"]
    first, second = torch.randn(2, 1, 1, 16, 16)
    captured = capture_activations(model, names, first)
    assert {name: tuple(t.shape) for name, t in captured.items()} == {"conv1": (1, 32, 16, 16), "conv2": (1, 64, 8, 8)}
    assert all(not module._forward_hooks for module in model.modules())
    before = {name: t.clone() for name, t in captured.items()}
    model(second)
    assert captured.keys() == before.keys() and all(torch.equal(captured[n], before[n]) for n in before)
    salient, probabilities = saliency(model, first[0], label=3)
    assert salient.shape == (16, 16) and (salient >= 0).all() and salient.sum() > 0
    assert abs(float(probabilities.sum()) - 1) < 1e-6 and all(p.grad is None for p in model.parameters())


def test_viz_refuses_a_run_without_weights_and_an_image_out_of_range(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results.write_run(tmp_path / "failed", "seeds: [0]\n", [], {"status": "failed"})
    assert main(["viz", str(tmp_path / "failed")]) == 2
    assert "has no model.pt" in capsys.readouterr().err
    assert main(["viz", str(trained_run), "--image", "64"]) == 2
    assert "--image 64 is not one of this run's 64 test images; use 0..63" in capsys.readouterr().err
