"""The results store keeps a run's final weights: written before metrics.json, loaded back with the run's config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from ablate.config import AblateConfig, DataConfig, ModelConfig
from ablate.networks.network import build_model
from ablate.store import files, results


def test_a_run_loads_back_with_its_config_and_weights(tmp_path: Path) -> None:
    config = AblateConfig(model=ModelConfig(depth=3, dilation=2), data=DataConfig(name="synthetic", image_size=16), seeds=[4])
    weights = build_model(config.model, (1, 16, 16), 10).state_dict()
    run = results.run_dir(tmp_path, "study", "model.depth=3", 4)
    results.write_run(run, OmegaConf.to_yaml(OmegaConf.structured(config)), [], {"status": "ok"}, weights)
    loaded, state = results.load_trained(run)
    assert loaded == config
    assert state.keys() == weights.keys() and all(torch.equal(state[k], weights[k]) for k in weights)


def test_a_crash_while_saving_weights_leaves_the_run_unfinished(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write = files.write_atomically

    def full_disk(path: Path, data: str | bytes) -> None:
        if path.name == results.MODEL_FILE:
            raise OSError("No space left on device")
        write(path, data)

    monkeypatch.setattr(files, "write_atomically", full_disk)
    with pytest.raises(OSError):
        results.write_run(tmp_path / "run", "seeds: [0]\n", [], {"status": "ok"}, {"w": torch.ones(3)})
    assert not results.is_finished(tmp_path / "run")


def test_a_run_without_weights_is_refused_with_the_reason(tmp_path: Path) -> None:
    results.write_run(tmp_path / "run", "seeds: [0]\n", [], {"status": "diverged"})
    assert not (tmp_path / "run" / results.MODEL_FILE).exists()
    with pytest.raises(FileNotFoundError, match="has no model.pt: the run failed or diverged"):
        results.load_trained(tmp_path / "run")
    with pytest.raises(FileNotFoundError, match="is not a finished run"):
        results.load_trained(tmp_path)


def test_stored_configs_read_as_omegaconf_reads_them(tmp_path: Path) -> None:
    """The report's fast YAML reader (libyaml with OmegaConf's rules) gives what OmegaConf.load gives, on the values
    where YAML readers differ: exponents without a dot, dates, yes/no, octal-looking and quoted numbers."""
    import yaml
    from omegaconf import OmegaConf

    text = ("lr: 1e-3\nmomentum: 9.0E-1\nstudy: 2026-12-02\nflag: yes\nnone: null\ncode: 0o17\nquoted: '1.5'\n"
            "seeds:\n- 0\n- 1\nnested:\n  inf: .inf\n  when: 2026-12-02 07:00:00\n  word: 'on'\n")
    (tmp_path / "config.yaml").write_text(text)
    expected = OmegaConf.to_container(OmegaConf.load(tmp_path / "config.yaml"))
    assert yaml.load(text, Loader=results._yaml_loader()) == expected
    assert expected["lr"] == 0.001 and expected["study"] == "2026-12-02"  # the cases that make the rules matter


def test_run_files_get_the_mode_the_umask_gives_like_any_other_file(tmp_path: Path) -> None:
    """Written atomically through a temporary file, yet readable by a group as `open` would make them (not 0600)."""
    import os
    import stat

    previous = os.umask(0o027)
    try:
        run = results.run_dir(tmp_path, "study", "baseline", 0)
        results.write_run(run, "seeds: [0]\n", [{"epoch": 1, "test_acc": 0.5}], {"status": "ok"}, {"w": torch.zeros(2)})
        (tmp_path / "plain.txt").write_text("x")
    finally:
        os.umask(previous)
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in run.iterdir()}
    assert set(modes) >= {"config.yaml", "metrics.json", "history.csv", "model.pt"}
    assert set(modes.values()) == {stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)} == {0o640}
