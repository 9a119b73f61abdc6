"""Where a transfer's starting weights come from (`model.weights`): a state_dict file, an ablate run or variant
folder, or torchvision's resnet18 weights by name. Each is read to a state_dict on the CPU and checked against
the network before any training.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ablate.config import ConfigError, ModelConfig
from ablate.data.fingerprint import file_digest
from ablate.networks.network import create_network
from ablate.store import results

if TYPE_CHECKING:  # torch is imported where weights are read: a plan needs only their identity
    from torch import Tensor

TORCHVISION_WEIGHTS = "ResNet18_Weights"


def _torchvision_weights(name: str) -> dict[str, Tensor]:
    """resnet18 weights by torchvision's name, from the torch hub cache or downloaded there when the network allows."""
    from torchvision.models import get_weight

    try:
        weights = get_weight(f"{TORCHVISION_WEIGHTS}.{name}")
    except (KeyError, ValueError, AttributeError):
        from torchvision.models import ResNet18_Weights

        names = ", ".join(["DEFAULT", *(w.name for w in ResNet18_Weights)])
        raise ConfigError(
            f"model.weights={name}: no such file or folder, and not a torchvision resnet18 weights name ({names})"
        ) from None
    try:
        return weights.get_state_dict(progress=False)
    except OSError as error:  # URLError included: no network and nothing in the cache
        import torch

        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        raise ConfigError(
            f"model.weights={name}: cannot load {weights.url} ({error}); put the file at {cached} or give a local state_dict file"
        ) from None


def load_weights(spec: str, seed: int, arch: str) -> dict[str, Tensor]:
    """The state_dict named by model.weights: a .pt/.pth file, an ablate run folder, an ablate variant folder (its
    run of the same seed), or a torchvision weights name such as DEFAULT (model.arch=resnet18)."""
    path = Path(spec)
    if path.is_dir():
        run = path if results.is_finished(path) else results.seed_folder(path, seed)
        try:
            return results.load_trained(run)[1]
        except FileNotFoundError as error:
            raise ConfigError(f"model.weights={spec}: {error}") from None
    if path.is_file():
        import torch

        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ConfigError(f"model.weights={spec}: not a state_dict (a dict of tensors saved with torch.save)")
        return state
    if arch == "resnet18" and "/" not in spec and not path.suffix:
        return _torchvision_weights(spec)
    raise ConfigError(
        f"model.weights={spec}: no such file or folder; give a .pt state_dict, an ablate run folder, 'pretrain', or "
        "with model.arch=resnet18 a torchvision weights name such as DEFAULT"
    )


def weights_identity(spec: str, arch: str) -> str:
    """What model.weights decides by content, never by path: a state_dict file its SHA-256, an ablate run its identity
    hash and seed, a variant folder its runs' identity hash, a torchvision name its name and torchvision's version;
    `pretrain` (its pretrain.* keys are identity) and a path that does not exist (preflight refuses it) as written."""
    path = Path(spec)
    if spec == "pretrain":
        return spec
    if path.is_file():
        return f"file sha256 {file_digest(path)[:16]}"
    if path.is_dir():
        runs = [path] if results.is_finished(path) else sorted(p for p in path.glob("seed=*") if results.is_finished(p))
        records = [results.read_metrics(run) or {} for run in runs]
        hashes = sorted({str(record.get("identity_hash")) for record in records})
        return f"ablate run {hashes[0]} seed={records[0].get('seed')}" if path in runs else f"ablate variant {','.join(hashes)}"
    if arch == "resnet18" and "/" not in spec and not path.suffix:
        import torchvision

        return f"torchvision {TORCHVISION_WEIGHTS}.{spec} {torchvision.__version__}"
    return spec


def check_weights(model_cfg: ModelConfig, seeds: list[int], input_shape: tuple[int, int, int], num_classes: int) -> None:
    """Load model.weights for every seed that may read a different file, and fit it to the network, before any
    training; raises ConfigError naming the file and the first tensor that does not fit."""
    from ablate.networks.transfer import load_backbone

    spec = model_cfg.weights or ""
    per_seed = Path(spec).is_dir() and not results.is_finished(Path(spec))  # a variant folder: one run per seed
    network = create_network(model_cfg, input_shape, num_classes)
    model = network.build()
    parts = network.parts(model)
    for seed in seeds if per_seed else seeds[:1]:
        load_backbone(model, parts, load_weights(spec, seed, model_cfg.arch), spec)
