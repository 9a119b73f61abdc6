"""One interface to every kind of network: ablate's CNN, torchvision's resnet18 and your own (`model._target_`).

Each answers the same questions (build a freshly initialised module, cut it into stages and head for transfer,
describe its layers, parameters, receptive field and FLOPs, say why it cannot train vectorized), so no consumer
asks which kind it holds: `create_network` is the one place that looks at `_target_` and `model.arch`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Optional

from ablate.config import ModelConfig

if TYPE_CHECKING:  # torch is imported where a network is built: planning asks only `check`, a no-op for ablate's own
    from torch import nn

    from ablate.networks.cnn import Parts

Shape = tuple[int, ...]
CNN_FLOPS = ("2 × multiply-accumulates of the conv and linear layers, for one image; "
             "bias, BatchNorm, activations, dropout and pooling not counted (as torch.utils.flop_counter counts)")
HOOKED_FLOPS = "as torch.utils.flop_counter.FlopCounterMode counts them (2 × multiply-accumulates of matmuls and convolutions), for one image"
OUTSIDE_MODULES = "(ops outside modules)"  # FLOPs of the forward's own tensor ops, so the rows add up to torch's total


@dataclass(frozen=True)
class Description:
    """What a network is, without training it: one row per layer (layer, kind, input and output shape of one image,
    params, receptive_field, flops; ablate's CNN adds output_size and params_formula), the parameters in all and those
    that train under model.transfer, the head's layers, the receptive field of the last feature map (None where not
    defined), the FLOPs of one forward pass for one image and how they are counted."""

    layers: list[dict[str, Any]]
    params: int
    trainable_params: int
    head_layers: list[str]
    receptive_field: Optional[int]
    flops: int
    flop_convention: str

    @property
    def head_params(self) -> int:
        """Parameters of the classifier head's layers."""
        return sum(row["params"] for row in self.layers if row["layer"] in self.head_layers)

    @property
    def output_sizes(self) -> list[int]:
        """Elements of each layer's output for one image (what a vectorized group keeps per image for backward)."""
        return [math.prod(row["output"]) for row in self.layers if row["output"]]


@dataclass(frozen=True)
class LesionSite:
    """Where a trained network is lesioned: the unit outputs of `exit` (a module's name; its channels, or its features
    in a flat layer), shown as `name`; `entry` is the module whose input the whole block replaces when it is lesioned
    as the identity (where that input has the output's shape)."""

    name: str
    entry: str
    exit: str
    feeds_forward_only: bool = True  # nothing but the layers after it reads exit's output: lesion masks may widen the batch there


class NotLesionable(ValueError):
    """A network ablate cannot lesion, with the reason."""


class Network:
    """A network for a model config and the data's images (C, H, W) and classes. Subclasses say how it is built,
    cut and described; the defaults below fit any nn.Module (layer table from forward hooks)."""

    def __init__(self, cfg: ModelConfig, input_shape: Shape, num_classes: int) -> None:
        self.cfg, self.input_shape, self.num_classes = cfg, tuple(input_shape), num_classes

    def build(self) -> nn.Module:
        """A freshly initialised module, its weights drawn from torch's global generator (seed it first)."""
        raise NotImplementedError

    def parts(self, model: nn.Module) -> Parts:
        """The module cut into backbone stages (input side first) and classifier head, for model.transfer."""
        from ablate.networks.cnn import Parts

        return Parts([], [model])

    def check(self) -> None:
        """Raise ConfigError, before any training, where the network does not build or run on the data's images;
        the built-in ones need nothing beyond the config's own validation."""

    def declared(self, key: str, value: Any) -> Any:
        """`value` of the model key `key` as the network declares it; ablate's networks: as given (the schema has
        typed their keys already)."""
        return value

    def declared_config(self) -> ModelConfig:
        """The model config with every key of the network's own as the network declares it (`declared`)."""
        return replace(self.cfg, params={key: self.declared(key, value) for key, value in self.cfg.params.items()})

    def not_vectorizable(self) -> Optional[str]:
        """Why this network cannot train as one vmapped group of seeds, or None if it can."""
        return None

    def lesion_sites(self, model: nn.Module) -> list[LesionSite]:
        """Where `ablate lesion` knocks units out: the output of each backbone stage (`parts`), named as the module
        holds it; NotLesionable where the network names no stages."""
        names = {id(module): name for name, module in model.named_modules()}
        stages = self.parts(model).stages
        if not stages:
            raise NotLesionable("the network interface names no stages of it (Network.parts gives it as one head), "
                                "so there is no module whose units to knock out")
        return [LesionSite(names[id(stage[-1])], names[id(stage[0])], names[id(stage[-1])]) for stage in stages]

    def describe(self) -> Description:
        """Layers, parameters, receptive field and FLOPs; here from forward hooks on a module built on the CPU."""
        from ablate.networks import own
        from ablate.networks.cnn import parameter_count

        model = self.build()
        rows, flops = own.layer_table(model, self.input_shape)
        outside = flops - sum(row["flops"] for row in rows)
        if outside:
            rows.append({"layer": OUTSIDE_MODULES, "kind": "", "input": None, "output": None, "params": 0,
                         "receptive_field": None, "flops": outside})
        fields = [row["receptive_field"] for row in rows if row["receptive_field"] is not None]
        return Description(rows, parameter_count(model), self._trainable(model), [], fields[-1] if fields else None,
                           flops, HOOKED_FLOPS)

    def flops(self) -> int:
        """FLOPs of one forward pass for one image (as `describe` counts them); here by describing the network."""
        return self.describe().flops

    def _trainable(self, model: nn.Module) -> int:
        """Parameters of `model` that train under model.transfer (it is changed: requires_grad set as training sets it)."""
        from ablate.networks import transfer
        from ablate.networks.cnn import parameter_count

        transfer.set_trainable(self.parts(model), self.cfg.transfer)
        return parameter_count(model, trainable_only=True)


class CNN(Network):
    """ablate's CNN (model.arch=cnn): built and described from one layer plan, so module, table and receptive field
    never disagree; trains vectorized; its dropout masks come from each seed's own generator."""

    def build(self) -> nn.Module:
        """The plan's layers as an nn.Sequential named by them."""
        from ablate.networks.cnn import build_cnn

        return build_cnn(self.cfg, self.input_shape, self.num_classes)

    def parts(self, model: nn.Module) -> Parts:
        """One stage per conv block, and the plan's head layers."""
        from ablate.networks.cnn import cnn_parts
        from ablate.networks.layer_plan import plan_layers

        return cnn_parts(model, plan_layers(self.cfg, self.input_shape, self.num_classes))

    def lesion_sites(self, model: nn.Module) -> list[LesionSite]:
        """Each conv block at its activation (`conv1` is conv1 → BatchNorm → relu1) and the flatten head's hidden layer
        (`fc1`, at its activation); downsampling is not a block of its own."""
        from ablate.networks.layer_plan import plan_layers

        layers = plan_layers(self.cfg, self.input_shape, self.num_classes)
        act = self.cfg.activation
        sites = [LesionSite(layer.name, layer.name, f"{act}{layer.name.removeprefix('conv')}") for layer in layers if layer.kind == "conv"]
        return sites + [LesionSite("fc1", "fc1", f"{act}_fc") for layer in layers if layer.name == "fc1"]

    def flops(self) -> int:
        """FLOPs of one forward pass for one image, from the layer plan alone (no torch)."""
        from ablate.networks.layer_plan import plan_layers

        return sum(layer.flops() for layer in plan_layers(self.cfg, self.input_shape, self.num_classes))

    def describe(self) -> Description:
        """Every number from the layer plan, with its formula; the counts from a module built on the meta device (no
        memory, no init)."""
        import torch

        from ablate.networks.cnn import parameter_count
        from ablate.networks.layer_plan import plan_layers, receptive_fields

        layers = plan_layers(self.cfg, self.input_shape, self.num_classes)
        rows = []
        for layer, field in zip(layers, receptive_fields(layers)):
            params, formula = layer.parameters()
            rows.append({"layer": layer.name, "kind": layer.kind, "input": layer.in_shape, "output": layer.out_shape,
                         "output_size": layer.size_formula(), "params": params, "params_formula": formula,
                         "receptive_field": None if layer.head else field, "flops": layer.flops()})
        with torch.device("meta"):
            model = self.build()
        body = [row["receptive_field"] for row in rows if row["receptive_field"] is not None]
        return Description(rows, parameter_count(model), self._trainable(model), [layer.name for layer in layers if layer.head],
                           body[-1], sum(row["flops"] for row in rows), CNN_FLOPS)


class ResNet18(Network):
    """torchvision's resnet18 (model.arch=resnet18), for transfer learning; trains eagerly only."""

    def build(self) -> nn.Module:
        """torchvision's module, taking the data's images (see cnn.build_resnet18)."""
        from ablate.networks.cnn import build_resnet18

        return build_resnet18(self.input_shape, self.num_classes)

    def parts(self, model: nn.Module) -> Parts:
        """The stem, layer1 to layer4, and fc."""
        from ablate.networks.cnn import Parts

        return Parts([[model.conv1, model.bn1], [model.layer1], [model.layer2], [model.layer3], [model.layer4]], [model.fc])

    def lesion_sites(self, model: nn.Module) -> list[LesionSite]:
        """Its four stages, layer1 to layer4 (the stem is no stage of residual blocks)."""
        return [LesionSite(name, name, name) for name in ("layer1", "layer2", "layer3", "layer4")]

    def not_vectorizable(self) -> Optional[str]:
        """Always a reason: its BatchNorm and grey-to-RGB hook were never checked under vmap."""
        return "model.arch=resnet18"


class OwnNetwork(Network):
    """Your own network (model._target_), imported and built by ablate/networks/own.py; all head (it trains from
    scratch, as a whole); vectorized only where vmap runs it and its forward draws no random numbers."""

    def build(self) -> nn.Module:
        """`Class(in_channels=..., num_classes=..., **own keys)`."""
        from ablate.networks import own

        return own.build(self.cfg, self.input_shape[0], self.num_classes)

    def declared(self, key: str, value: Any) -> Any:
        """As the constructor declares it: `0` where it takes a float is 0.0 (see own.declared)."""
        from ablate.networks import own

        return own.declared(self.cfg, key, value)

    def check(self) -> None:
        """It imports, builds and runs a batch of blank images to logits of the right shape (see own.check)."""
        from ablate.networks import own

        own.check(self.cfg, self.input_shape, self.num_classes)

    def not_vectorizable(self) -> Optional[str]:
        """Tried on the CPU: a vmapped forward and backward of two stacked copies (see own.not_vectorizable)."""
        from ablate.networks import own

        return own.not_vectorizable(self.cfg, self.input_shape, self.num_classes)

    def lesion_sites(self, model: nn.Module) -> list[LesionSite]:
        """The submodules your class names in `lesion_layers` (a list of names, e.g. ["block1", "block2"]), each
        lesioned at its output; NotLesionable where it names none or a name is not one of its modules."""
        named = getattr(model, "lesion_layers", None)
        if not named:
            raise NotLesionable(f"model._target_={self.cfg._target_}: {type(model).__name__} names no `lesion_layers` "
                                "(a list of its submodules' names whose outputs to knock out, e.g. lesion_layers = [\"block1\"])")
        modules = dict(model.named_modules())
        unknown = [name for name in named if name not in modules]
        if unknown:
            raise NotLesionable(f"model._target_={self.cfg._target_}: lesion_layers names {', '.join(unknown)}, not modules of "
                                f"{type(model).__name__}; its modules: {', '.join(n for n in modules if n)}")
        return [LesionSite(name, name, name, feeds_forward_only=False) for name in named]


def create_network(cfg: ModelConfig, input_shape: Shape, num_classes: int) -> Network:
    """The network a model config names, for images of `input_shape` (C, H, W) and `num_classes` classes."""
    if cfg._target_:
        return OwnNetwork(cfg, input_shape, num_classes)
    if cfg.arch == "resnet18":
        return ResNet18(cfg, input_shape, num_classes)
    return CNN(cfg, input_shape, num_classes)


def build_model(cfg: ModelConfig, input_shape: Shape, num_classes: int) -> nn.Module:
    """A freshly initialised module for `cfg`: `create_network(...).build()`."""
    return create_network(cfg, input_shape, num_classes).build()
