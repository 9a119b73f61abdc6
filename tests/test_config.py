"""Bad values are refused before any training, with one line that names the key and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import TINY, checked, run_ablate

from ablate.config import ConfigError
from ablate.study.preflight import one_line

BAD_VALUES = [
    ("model.depth=0", "model.depth", ">= 1"),
    ("model.width=0", "model.width", ">= 1"),
    ("model.kernel_size=4", "model.kernel_size", "odd"),
    ("model.dilation=0", "model.dilation", ">= 1"),
    ("model.pool=median", "model.pool", "max, avg, strided"),
    ("model.head=mlp", "model.head", "flatten, gap"),
    ("model.batchnorm=maybe", "model.batchnorm", "true or false"),
    ("model.depth=deep", "model.depth", "an integer"),
    ("data.train_size=lots", "data.train_size", "an integer or null"),
    ("seeds=[a]", "seeds", "list of integer"),
    ("model.dept=3", "model.dept", "depth, width, kernel_size"),
    ("train.epochs=0", "train.epochs", ">= 1"),
    ("train.optimizer=rmsprop", "train.optimizer", "adam, adamw, sgd"),
    ("model.dropout=1.0", "model.dropout", "[0, 1)"),
    ("model.dropout=-0.1", "model.dropout", "[0, 1)"),
    ("model.dropout=half", "model.dropout", "a number"),
    ("model.activation=tanh", "model.activation", "relu, gelu, silu"),
    ("train.augment=flip", "train.augment", "none, shift"),
    ("train.augment_pixels=0", "train.augment_pixels", ">= 1"),
    ("model.arch=resnet18 model.dropout=0.5", "model.dropout", "ablate's own CNN"),
    ("train.strategy=fast", "train.strategy", "auto, eager, vectorized"),
    ("train.seeds_per_group=0", "train.seeds_per_group", ">= 1"),
    ("seeds=[]", "seeds", "at least one seed"),
    ("seeds=[1,1]", "seeds", "only once"),
    ("data.name=imagenet", "data.name", "fashion_mnist, kmnist, cifar10, folder"),
    ("precision=fp8", "precision", "auto, fp32, bf16, fp16"),
    ("+sweep=nosuch", "sweep", "depth"),
]


@pytest.mark.parametrize(("override", "key", "allowed"), BAD_VALUES)
def test_bad_value_is_refused_naming_key_and_allowed_values(override: str, key: str, allowed: str) -> None:
    with pytest.raises(Exception) as caught:
        checked(override.split())
    message = one_line(caught.value)
    assert key in message and allowed in message and "\n" not in message


@pytest.mark.parametrize("visible", [False, True])
def test_cuda_is_refused_where_no_gpu_is_visible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, visible: bool) -> None:
    """Both sides on any machine: torch's answer to "is a GPU visible" decides, not the machine the test runs on."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: visible)
    command = ["device=cuda", "data=synthetic", f"runs_dir={tmp_path}"]
    if not visible:
        with pytest.raises(ConfigError, match="device=cuda is not allowed here: no CUDA GPU is visible"):
            checked(command)
        return
    planned = checked(command)  # accepted where a GPU exists, and trained there in bf16 by default
    assert {(v.resolved.device, v.resolved.precision) for v in planned.variants} == {("cuda", "bf16")}
    assert all(v.identity["device"] == "cuda" for v in planned.variants)


def test_a_sweep_refuses_one_value_for_its_own_factor_and_a_glob_as_values() -> None:
    with pytest.raises(ConfigError, match="model.depth is a factor this study varies; drop model.depth=3, or list it as model.depth=a,b"):
        checked(["+sweep=depth", "model.depth=3"])
    with pytest.raises(ConfigError, match="a factor lists its values"):
        checked(["model.pool=glob(*)"])
    with pytest.raises(ConfigError, match="model.nosuch: no such key"):
        checked(["model.nosuch=1,2"])


def test_bad_variant_in_a_sweep_is_refused_before_the_baseline_trains(workdir: Path) -> None:
    # kernel 7 is fine, but a max_width below the width makes the width sweep's widest variants impossible.
    result = run_ablate("run", "+sweep=width", "model.max_width=64", *TINY, cwd=workdir)
    assert result.returncode == 2
    assert "model.max_width" in result.stderr and "Traceback" not in result.stderr
    assert not (workdir / "runs").exists()


@pytest.mark.parametrize("override", ["model.depth=0", "model.pool=median", "model.kernel_size=4", "seeds=[]"])
def test_cli_exits_non_zero_with_one_line_and_trains_nothing(workdir: Path, override: str) -> None:
    result = run_ablate("run", override, *TINY, cwd=workdir)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ablate: error: ") and override.split("=")[0] in lines[0]
    assert not (workdir / "runs").exists()


def test_debug_shows_the_traceback_that_the_one_line_error_hides(workdir: Path) -> None:
    result = run_ablate("run", "model.depth=0", "--debug", *TINY, cwd=workdir)
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "ConfigError: model.depth=0 is not allowed" in result.stderr


CONF = Path(__file__).resolve().parents[1] / "conf"


def test_every_default_lives_in_the_dataclasses_and_no_yaml_repeats_one():
    """A YAML option holds only what differs from the schema's defaults, and conf/config.yaml sets no key, so a
    default is changed in one place (ablate/config.py) and the composed config still holds every key."""
    from omegaconf import OmegaConf

    from ablate.config import AblateConfig, flatten_config
    from ablate.study.plan import compose_config

    defaults = flatten_config(OmegaConf.to_container(OmegaConf.structured(AblateConfig)))
    top = OmegaConf.load(CONF / "config.yaml")
    assert set(top.keys()) == {"defaults", "hydra"}, "conf/config.yaml sets a key whose default belongs in ablate/config.py"
    repeated = []
    for group in ("model", "data", "train", "logger"):
        for option in sorted((CONF / group).glob("*.yaml")):
            for key, value in flatten_config(OmegaConf.to_container(OmegaConf.load(option)), f"{group}.").items():
                if key in defaults and defaults[key] == value and key != f"{group}.name":
                    repeated.append(f"{option.relative_to(CONF)}: {key}={value}")
    assert not repeated, "YAML options repeating a schema default:\n" + "\n".join(repeated)
    composed = flatten_config(OmegaConf.to_container(compose_config(["data=synthetic"]), resolve=False))
    shared = [key for key in defaults if not key.startswith("data.") and key not in ("model._target_", "model.params")]
    assert {key: composed[key] for key in shared} == {key: defaults[key] for key in shared}
    assert (composed["data.name"], composed["data.train_size"], composed["data.image_size"]) == ("synthetic", 2000, 28)
