"""Pictures of one trained run, as PNG files in its folder: the first conv layer's filters, the activation maps of
every conv layer and a saliency map |d loss / d input| for one test image.

The model is rebuilt from the run's config.yaml and model.pt; activations are captured with forward hooks that are
removed again, so the model is left as it was.
"""

from __future__ import annotations

import io
import math
from functools import partial
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch import nn  # noqa: E402
from torchvision.utils import make_grid  # noqa: E402

from ablate.config import AblateConfig  # noqa: E402
from ablate.data.catalog import input_spec  # noqa: E402
from ablate.data.datasets import load_dataset  # noqa: E402
from ablate.networks.network import build_model  # noqa: E402
from ablate.store import results  # noqa: E402

DPI = 120
WEIGHTS_CMAP = plt.get_cmap("RdBu_r").with_extremes(bad="0.7")  # red positive, blue negative; grey between filters
MAPS_CMAP = plt.get_cmap("viridis").with_extremes(bad="white")


def load_model(run_path: str | Path) -> tuple[AblateConfig, nn.Sequential]:
    """A run's config and its trained network, rebuilt from config.yaml and model.pt, in eval mode on the CPU."""
    config, state = results.load_trained(run_path)
    model = build_model(config.model, *input_spec(config.data))
    model.load_state_dict(state)
    return config, model.eval()


def conv_layers(config: AblateConfig) -> list[str]:
    """Names of the network's Conv2d modules (the CNN's conv blocks and strided downsampling convs, in forward order;
    your own network's in the order it registers them)."""
    model = build_model(config.model, *input_spec(config.data))
    return [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]


def _keep(captured: dict[str, torch.Tensor], name: str, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
    captured[name] = output.detach()


def capture_activations(model: nn.Module, names: Sequence[str], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Outputs of the named submodules for input x, captured by forward hooks that are removed before returning."""
    captured: dict[str, torch.Tensor] = {}
    handles = [model.get_submodule(name).register_forward_hook(partial(_keep, captured, name)) for name in names]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return captured


def saliency(model: nn.Module, image: torch.Tensor, label: int) -> tuple[torch.Tensor, torch.Tensor]:
    """|d loss / d input| of one image (C, H, W), the largest over its channels, and the model's class probabilities."""
    x = image.unsqueeze(0).requires_grad_(True)
    logits = model(x)
    (gradient,) = torch.autograd.grad(F.cross_entropy(logits, torch.tensor([label])), x)  # leaves the weights' .grad alone
    return gradient[0].abs().amax(dim=0), logits.detach().softmax(dim=1)[0]


def _grid(maps: torch.Tensor, columns: int) -> torch.Tensor:
    """Maps (N, H, W) side by side, `columns` to a row, NaN (drawn as the colormap's 'bad' colour) between them."""
    return make_grid(maps.unsqueeze(1), nrow=columns, padding=1, pad_value=float("nan"))[0]


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def filters_figure(weight: torch.Tensor, name: str) -> Figure:
    """The kernels of a conv layer's weight (C_out, C_in, K, K) as a grid on one colour scale centred at zero."""
    c_out, c_in, k, _ = weight.shape
    columns = c_in if c_in > 1 else 8
    grid = _grid(weight.reshape(c_out * c_in, k, k), columns)
    limit = float(weight.abs().max())
    figure, axes = plt.subplots(figsize=(1.0 + 0.6 * columns, 0.6 * math.ceil(c_out * c_in / columns) + 1.0))
    shown = axes.imshow(grid, cmap=WEIGHTS_CMAP, vmin=-limit, vmax=limit, interpolation="nearest")
    figure.colorbar(shown, ax=axes, label="weight")
    layout = "one per cell" if c_in == 1 else "one row per filter, one column per input channel"
    axes.set_title(f"{name}: {c_out} filters of {k}×{k} ({layout})")
    axes.axis("off")
    return figure


def activations_figure(captured: dict[str, torch.Tensor], title: str) -> Figure:
    """One panel per layer: every channel's map for one image, each layer on its own colour scale."""
    columns = min(len(captured), 3)
    rows = math.ceil(len(captured) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5.0 * columns, 5.0 * rows), squeeze=False)
    for panel, (name, output) in zip(axes.flat, captured.items()):
        maps = output[0]
        shown = panel.imshow(_grid(maps, math.ceil(math.sqrt(len(maps)))), cmap=MAPS_CMAP, interpolation="nearest")
        figure.colorbar(shown, ax=panel, fraction=0.046, pad=0.02)
        panel.set_title(f"{name}: {maps.shape[0]} maps of {maps.shape[1]}×{maps.shape[2]}")
    for panel in axes.flat:
        panel.axis("off")
    figure.suptitle(title)
    return figure


def saliency_figure(image: torch.Tensor, salient: torch.Tensor, title: str) -> Figure:
    """The image (channel mean if it has several) beside its saliency map."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(9.0, 4.5))
    left.imshow(image.mean(dim=0), cmap="gray", interpolation="nearest")
    left.set_title("input" + (f" (mean of {image.shape[0]} channels)" if image.shape[0] > 1 else ""))
    shown = right.imshow(salient, cmap="magma", interpolation="nearest")
    figure.colorbar(shown, ax=right, fraction=0.046, pad=0.02)
    right.set_title("saliency |∂ loss / ∂ input|")
    for panel in (left, right):
        panel.axis("off")
    figure.suptitle(title)
    return figure


def write_pictures(run_path: str | Path, image_index: int = 0) -> list[Path]:
    """filters.png, activations_image<N>.png and saliency_image<N>.png for test image N, written in the run's folder."""
    config, model = load_model(run_path)
    data = load_dataset(config.data)
    if not 0 <= image_index < len(data.test_y):
        raise ValueError(f"--image {image_index} is not one of this run's {len(data.test_y)} test images; use 0..{len(data.test_y) - 1}")
    image, label = data.test_x[image_index], int(data.test_y[image_index])
    names = conv_layers(config)
    salient, probabilities = saliency(model, image, label)
    predicted = int(probabilities.argmax())
    about = f"test image {image_index}: label {label}, predicted {predicted} ({100 * float(probabilities[predicted]):.0f}%)"
    figures = {f"saliency_image{image_index}.png": saliency_figure(image, salient, about)}
    if names:  # a network without conv layers has no filters or maps to draw
        activations = capture_activations(model, names, image.unsqueeze(0))
        figures = {
            "filters.png": filters_figure(model.get_submodule(names[0]).weight.detach(), names[0]),
            f"activations_image{image_index}.png": activations_figure(activations, f"Conv layer outputs, {about}"),
            **figures,
        }
    return [results.write_file(run_path, name, _png(figure)) for name, figure in figures.items()]
