"""Your own network: the class or factory function a model config's `_target_` names, built with the data's class
count and input channels plus the config's own keys (Hydra's instantiate convention), and what ablate measures on it.

The class is imported from the folder `ablate` runs in (which is put on sys.path), so `_target_: mynet.Net` finds
mynet.py there; a library's factory works the same (`torchvision.models.resnet18`, `timm.create_model` with
`model.model_name=...`). The data's sizes are passed by the names the factory takes (`data_keys`); a factory that
takes no input channels (torchvision's) gets its first conv fitted to the data's (`fit_first_conv`). Every mistake (a path that does not import, a key the constructor refuses, a forward that fails on
the data's images) is a ConfigError naming the key, raised when the plan is checked, before any training. The layer
table comes from forward hooks on every leaf module, the FLOPs from torch.utils.flop_counter.FlopCounterMode; the
receptive field only where it is defined (see `receptive_fields`).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

import torch
from torch import Tensor, nn

from ablate.config import ConfigError, ModelConfig, format_value

Shape = tuple[int, ...]
PROBE_BATCH = 2  # images of the forward that checks a network before training (2: BatchNorm needs more than one)
# Leaf modules that keep every pixel where it is (the receptive field passes through them unchanged).
POINTWISE_MODULES = ("torch.nn.modules.activation", "torch.nn.modules.batchnorm", "torch.nn.modules.dropout",
                     "torch.nn.modules.instancenorm", "torch.nn.modules.linear.Identity")
SPATIAL_MODULES = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)
CHANNEL_NAMES = ("in_channels", "in_chans")  # the input channels' keyword, as ablate's convention and timm name it
# The keyword for input channels that a library's factories take through **kwargs, by top-level package: timm's
# in_chans; torchvision's classification models take none (they are built for 3 channels; see fit_first_conv).
LIBRARY_CHANNELS = {"timm": "in_chans", "torchvision": None}


def _importable_here() -> None:
    """The working folder (where `ablate` was typed; Hydra jobs run there too) is importable: `mynet.Net`."""
    here = os.getcwd()
    if here not in sys.path:
        sys.path.insert(0, here)


def network_factory(cfg: ModelConfig) -> Callable[..., nn.Module]:
    """The class or function `model._target_` names, imported from the working folder or any installed package."""
    _importable_here()
    path = str(cfg._target_)
    module_name, _, name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # noqa: BLE001 - a missing module or an error inside it: both are the user's to fix
        where = f"; put {module_name.replace('.', '/')}.py in the folder you run ablate in" if isinstance(error, ModuleNotFoundError) else ""
        raise ConfigError(f"model._target_={path}: cannot import {module_name} ({type(error).__name__}: {error}){where}") from None
    found = getattr(module, name, None)
    if found is None:
        classes = [key for key, value in vars(module).items() if isinstance(value, type) and issubclass(value, nn.Module)
                   and value.__module__ == module.__name__]
        close = difflib.get_close_matches(name, [key for key in dir(module) if not key.startswith("_")], n=3)
        known = (f"; its nn.Module classes: {', '.join(classes)}" if classes else f"; did you mean {', '.join(close)}?" if close
                 else "; give an nn.Module class or a function that returns one")
        raise ConfigError(f"model._target_={path}: {name} does not exist in {module_name}{known}")
    if not callable(found):
        raise ConfigError(f"model._target_={path}: {name} is a {type(found).__name__}, not an nn.Module class or a function "
                          "that returns one")
    return found


def data_keys(factory: Callable[..., nn.Module], in_channels: int, num_classes: int) -> dict[str, int]:
    """The data's class count and input channels by the names `factory` takes: `num_classes` (ablate's, torchvision's
    and timm's name), the input channels as `in_channels` or `in_chans` where its signature names one, else where it
    takes **kwargs as its library's factories do (LIBRARY_CHANNELS; `in_channels` for any other). A factory that takes
    no class count is refused with what to write."""
    parameters = _parameters(factory)
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    named = [key for key in CHANNEL_NAMES if key in parameters]
    library = str(getattr(factory, "__module__", "")).partition(".")[0]
    channels = named[0] if named else (LIBRARY_CHANNELS.get(library, "in_channels") if takes_any else None)
    if "num_classes" not in parameters and not takes_any:
        name = getattr(factory, "__name__", str(factory))
        takes = ", ".join(key for key in parameters if key not in ("args", "kwargs")) or "no arguments"
        raise ConfigError(f"model._target_={factory.__module__}.{name}: {name} takes {takes}, and ablate builds it for the "
                          f"data as {name}(in_channels={in_channels}, num_classes={num_classes}, <your keys>): give it those "
                          "two parameters, e.g. def __init__(self, in_channels, num_classes)")
    return {**({channels: in_channels} if channels else {}), "num_classes": num_classes}


def fit_first_conv(model: nn.Module, in_channels: int) -> nn.Module:
    """A network built for other input channels (torchvision's, for 3) made to take the data's: its first conv
    replaced by a freshly initialised one of the same shape but its input channels."""
    first = next(((name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)
    if first is None or first[1].in_channels == in_channels:
        return model
    name, conv = first
    if conv.groups != 1:
        raise ConfigError(f"{type(model).__name__}'s first conv ({name}) is grouped and cannot take {in_channels} input channels")
    fitted = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                       bias=conv.bias is not None, padding_mode=conv.padding_mode)
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, fitted)
    return model


def _named_key(cfg: ModelConfig, error: BaseException) -> str:
    """`model.KEY=VALUE` for the network's own key that an error message names, else `model._target_=PATH`."""
    text = str(error)
    for key, value in cfg.params.items():
        if re.search(rf"\b{re.escape(key)}\b", text):
            return f"model.{key}={format_value(value)}"
    return f"model._target_={cfg._target_}"


def build(cfg: ModelConfig, in_channels: int, num_classes: int) -> nn.Module:
    """The network `cfg` names, built as `factory(<the data's sizes by the names it takes>, **own keys)`, its first
    conv fitted to the data where it takes no input channels; a key it refuses is a ConfigError naming the key."""
    factory = network_factory(cfg)
    name = getattr(factory, "__name__", str(cfg._target_))
    data = data_keys(factory, in_channels, num_classes)
    keys = {**data, **cfg.params}
    try:
        inspect.signature(factory).bind(**keys)
    except TypeError as error:
        missing = re.search(r"missing a required argument: '(\w+)'", str(error))
        if missing:
            raise ConfigError(f"model.{missing[1]}: {name} needs it; add +model.{missing[1]}=VALUE") from None
        takes = ", ".join(key for key in _parameters(factory) if key not in ("args", "kwargs")) or "no arguments"
        raise ConfigError(f"{_named_key(cfg, error)}: {error}; {name} takes: {takes}") from None
    try:
        model = factory(**keys)
    except Exception as error:  # noqa: BLE001 - the user's constructor: any error is a config error
        raise ConfigError(f"{_named_key(cfg, error)}: {name}({_arguments(keys)}) failed: {type(error).__name__}: "
                          f"{' '.join(str(error).split())}") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model._target_={cfg._target_}: returned a {type(model).__name__}, not an nn.Module")
    return model if any(key in data for key in CHANNEL_NAMES) else fit_first_conv(model, in_channels)


def declared(cfg: ModelConfig, key: str, value: Any) -> Any:
    """`value` of the network's own key `key` as its constructor declares it: an integer where the constructor takes
    a float (annotated `float`, or defaulting to a float) becomes that float, as ablate's schema types its own keys,
    so `model.dropout=0` and `0.0` are one value, one variant and one identity. Anything else is kept as given."""
    parameter = _parameters(network_factory(cfg)).get(key)
    takes_float = parameter is not None and (
        parameter.annotation in (float, "float", Optional[float], "Optional[float]", "float | None")
        or (parameter.annotation is inspect.Parameter.empty and isinstance(parameter.default, float)))
    return float(value) if takes_float and isinstance(value, int) and not isinstance(value, bool) else value


def _parameters(factory: Callable[..., Any]) -> Mapping[str, inspect.Parameter]:
    """The constructor's or function's parameters, with annotations evaluated where they can be (a module with
    `from __future__ import annotations` holds them as text)."""
    try:
        return inspect.signature(factory, eval_str=True).parameters
    except Exception:  # noqa: BLE001 - an annotation that does not evaluate: keep them as text
        return inspect.signature(factory).parameters


def _arguments(keys: dict[str, Any]) -> str:
    return ", ".join(f"{key}={format_value(value)}" for key, value in keys.items())


def check(cfg: ModelConfig, input_shape: Shape, num_classes: int) -> None:
    """Build the network on the CPU and run one forward on a batch of blank images: it must give (batch, num_classes)."""
    model = build(cfg, input_shape[0], num_classes).eval()
    batch = (PROBE_BATCH, *input_shape)
    try:
        with torch.no_grad():
            out = model(torch.zeros(batch))
    except Exception as error:  # noqa: BLE001 - the user's forward
        raise ConfigError(f"model._target_={cfg._target_}: its forward fails on a {batch} batch of this data's images: "
                          f"{type(error).__name__}: {' '.join(str(error).split())}") from None
    if not isinstance(out, Tensor) or tuple(out.shape) != (PROBE_BATCH, num_classes):
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ConfigError(f"model._target_={cfg._target_}: its forward must return logits of shape (batch, num_classes) = "
                          f"{(PROBE_BATCH, num_classes)}, and returned {got}")


def not_vectorizable(cfg: ModelConfig, input_shape: Shape, num_classes: int) -> Optional[str]:
    """Why the network cannot train as one vmapped model of stacked seeds (torch.func.stack_module_state and
    functional_call, as the vectorized engine does; forward and backward tried in training mode on a blank batch), or
    None if it can. A forward that draws random numbers (nn.Dropout) is refused: vmap draws them from torch's global
    generator for the whole group, so a seed's numbers would depend on the seeds trained beside it."""
    models = [build(cfg, input_shape[0], num_classes) for _ in range(2)]
    try:
        params, buffers = torch.func.stack_module_state(models)
        base = models[0].to("meta")

        def forward(p: dict[str, Tensor], b: dict[str, Tensor], x: Tensor) -> Tensor:
            return torch.func.functional_call(base, (p, b), (x,))

        x = torch.zeros(2, PROBE_BATCH, *input_shape)
        torch.vmap(forward, randomness="error")(params, buffers, x).sum().backward()
    except Exception as error:  # noqa: BLE001 - whatever vmap cannot take makes the network eager-only
        if "randomness" in str(error):
            return (f"model._target_={cfg._target_} (its forward draws random numbers, e.g. nn.Dropout, which "
                    "torch.func.vmap cannot draw from each seed's own generator)")
        return f"model._target_={cfg._target_} (it does not run under torch.func.vmap: {type(error).__name__}: {str(error).splitlines()[0]})"
    return None


@dataclass
class Call:
    """One leaf module's forward: its name, module, input and output tensors (kept to follow the chain of maps)."""

    name: str
    module: nn.Module
    input: Optional[Tensor]
    output: Any


def _leaf_calls(model: nn.Module, x: Tensor) -> tuple[list[Call], dict[str, int], int]:
    """Every leaf module's forward on x in call order (first call of each), FLOPs per leaf module as
    FlopCounterMode counts them, and the network's total FLOPs (ops outside any leaf module included)."""
    calls: dict[str, Call] = {}

    def hook(name: str) -> Callable[[nn.Module, tuple, Any], None]:
        def keep(module: nn.Module, inputs: tuple, output: Any) -> None:
            first = inputs[0] if inputs and isinstance(inputs[0], Tensor) else None
            calls.setdefault(name, Call(name, module, first, output))
        return keep

    from torch.utils.flop_counter import FlopCounterMode  # here: it imports triton, 0.2 s that a plan does not need

    leaves = {name: module for name, module in model.named_modules() if name and not list(module.children())}
    handles = [module.register_forward_hook(hook(name)) for name, module in leaves.items()]
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    counts = counter.get_flop_counts()
    root = type(model).__name__
    flops = {name: int(sum(counts.get(f"{root}.{name}", {}).values())) for name in calls}
    return list(calls.values()), flops, int(counter.get_total_flops())


def _spatial(module: nn.Module) -> tuple[int, int, int]:
    """(kernel, stride, dilation) of a conv or pooling module with square kernels and equal strides."""
    def one(value: Any) -> int:
        values = set(value) if isinstance(value, tuple) else {value}
        if len(values) != 1:
            raise ValueError("not square")
        return int(values.pop())
    return one(module.kernel_size), one(module.stride or module.kernel_size), one(getattr(module, "dilation", 1))


def _pointwise(module: nn.Module) -> bool:
    kind = f"{type(module).__module__}.{type(module).__name__}"
    return any(kind == name or type(module).__module__ == name for name in POINTWISE_MODULES)


def receptive_fields(calls: list[Call], x: Tensor) -> dict[str, int]:
    """Receptive field (input pixels, one side) after each layer of the feature maps, by R += (K-1)·D·(product of the
    earlier strides); defined only where the maps pass through one chain of leaf modules, input to last map: each
    takes the previous one's output, each is a square conv or pooling layer or keeps pixels in place, and the next leaf
    module (the head) takes the last map or a view of it. Empty where that does not hold (a skip connection, a
    functional op between modules, a non-square kernel)."""
    maps = [c for c in calls if isinstance(c.output, Tensor) and c.output.dim() == 4
            and not isinstance(c.module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d))]
    fields, field, jump, previous = {}, 1, 1, x
    for call in maps:
        if call.input is not previous:
            return {}
        if isinstance(call.module, SPATIAL_MODULES):
            try:
                kernel, stride, dilation = _spatial(call.module)
            except ValueError:
                return {}
            field += (kernel - 1) * dilation * jump
            jump *= stride
        elif not _pointwise(call.module):
            return {}
        fields[call.name] = field
        previous = call.output
    after = calls[calls.index(maps[-1]) + 1:] if maps else []
    return fields if after and _view_of(after[0].input, previous) else {}  # the head takes the last map itself


def _view_of(tensor: Optional[Tensor], of: Tensor) -> bool:
    """Whether `tensor` is `of` or a reshaped view of it (same storage, same elements), not a new map made from it."""
    return tensor is not None and tensor.numel() == of.numel() and tensor.untyped_storage().data_ptr() == of.untyped_storage().data_ptr()


def _shape(value: Any) -> Optional[Shape]:
    return tuple(value.shape[1:]) if isinstance(value, Tensor) else None


def layer_table(model: nn.Module, input_shape: Shape) -> tuple[list[dict[str, Any]], int]:
    """One row per leaf module, in call order (leaves never called left out): name, class, input and output shape of
    one image, parameters, FLOPs, receptive field (None where not defined); and the network's total FLOPs."""
    x = torch.zeros(1, *input_shape)
    was_training = model.training
    model.eval()
    try:
        calls, flops, total = _leaf_calls(model, x)
    finally:
        model.train(was_training)
    fields = receptive_fields(calls, x)
    rows = [{"layer": call.name, "kind": type(call.module).__name__, "input": _shape(call.input), "output": _shape(call.output),
             "params": sum(p.numel() for p in call.module.parameters()), "receptive_field": fields.get(call.name),
             "flops": flops[call.name]} for call in calls]
    return rows, total


def receptive_field(model: nn.Module, input_shape: Shape) -> Optional[int]:
    """Receptive field of one unit of the network's last feature map, or None where it is not defined."""
    fields = [row["receptive_field"] for row in layer_table(model, input_shape)[0] if row["receptive_field"] is not None]
    return fields[-1] if fields else None
