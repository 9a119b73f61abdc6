"""Seeds trained together (vectorized) compute what each seed trained alone computes; groups split by memory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import TINY, checked, run_ablate, train

from ablate.config import AblateConfig, ConfigError, DataConfig, ModelConfig, TrainConfig
from ablate.data.datasets import Dataset, load_dataset
from ablate.networks.network import build_model, create_network
from ablate.store import results
from ablate.training.engine import plan_groups, seed_groups, train_seed, train_seeds, train_vectorized
from ablate.training.loop import SeedResult, evaluate
from ablate.training.strategies import EagerTrainer, VectorizedTrainer

CPU = torch.device("cpu")
requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; none is visible")
SEEDS = [0, 1, 2]
# fp32 on the CPU: vmap turns K convolutions into one grouped convolution, so sums run in another order. Without
# BatchNorm the 8 per-step losses agree to a few ulps (measured <= 5e-7). BatchNorm divides by each channel's batch
# std, which magnifies those differences (measured <= 5e-5 on the losses, 2e-4 on the test loss after an epoch).
# A wrong init or batch order moves the very first loss by ~1e-2, shared BatchNorm statistics the test loss by more.
TIGHT = {"rtol": 1e-5, "atol": 1e-6}
WITH_BATCHNORM = {"rtol": 1e-4, "atol": 1e-4}


def tiny() -> Dataset:
    return load_dataset(DataConfig(name="synthetic", train_size=256, test_size=128, image_size=16))


def losses_of(run) -> tuple[torch.Tensor, list[SeedResult]]:  # noqa: ANN001 - a training call taking an on_step hook
    steps: list[torch.Tensor] = []
    outcome = run(lambda epoch, losses: steps.append(losses.clone()))
    return torch.stack(steps), outcome if isinstance(outcome, list) else [outcome]


@pytest.mark.parametrize("model", [
    ModelConfig(), ModelConfig(batchnorm=True), ModelConfig(pool="avg"), ModelConfig(pool="strided"),
    ModelConfig(head="gap"), ModelConfig(head="gap", batchnorm=True, pool="strided"),
], ids=["baseline", "batchnorm", "avg", "strided", "gap", "gap-bn-strided"])
def test_vectorized_seeds_match_seeds_trained_alone_step_by_step(model: ModelConfig) -> None:
    data, train = tiny(), TrainConfig(epochs=1, batch_size=32)
    tolerance = WITH_BATCHNORM if model.batchnorm else TIGHT
    together, results = losses_of(lambda hook: train_vectorized(model, train, data, SEEDS, CPU, "fp32", hook))
    assert together.shape == (256 // 32, len(SEEDS))
    for i, seed in enumerate(SEEDS):
        alone, (plain,) = losses_of(lambda hook: train_seed(model, train, data, seed, CPU, "fp32", hook))
        torch.testing.assert_close(together[:, i], alone[:, 0], **tolerance)
        assert results[i].seed == seed and results[i].strategy == "vectorized" and plain.strategy == "eager"
        (mine,), (theirs,) = results[i].history, plain.history  # the test loss uses BatchNorm's running statistics
        assert mine["test_loss"] == pytest.approx(theirs["test_loss"], rel=10 * tolerance["rtol"])
        # Accuracies count argmaxes: a loss difference at the tolerance can flip one near-tied image (seen with one
        # CPU thread, batchnorm case: 77 vs 78 of 128 test images), never more.
        assert mine["train_acc"] == pytest.approx(theirs["train_acc"], abs=1 / 256)
        assert mine["test_acc"] == pytest.approx(theirs["test_acc"], abs=1 / 128)
    assert not torch.allclose(together[:, 0], together[:, 1])  # different seeds: different inits and batches


def test_a_seeds_dropout_masks_are_its_own_alone_or_beside_any_other_seed() -> None:
    data, train, dropped = tiny(), TrainConfig(epochs=1, batch_size=32), ModelConfig(dropout=0.5)
    alone, _ = losses_of(lambda hook: train_seed(dropped, train, data, 1, CPU, "fp32", hook))
    beside_0, _ = losses_of(lambda hook: train_vectorized(dropped, train, data, [0, 1], CPU, "fp32", hook))
    beside_2, _ = losses_of(lambda hook: train_vectorized(dropped, train, data, [1, 2], CPU, "fp32", hook))
    torch.testing.assert_close(beside_0[:, 1], alone[:, 0], **TIGHT)  # the same masks eager and vectorized,
    torch.testing.assert_close(beside_2[:, 0], alone[:, 0], **TIGHT)  # whichever seed trains beside it
    undropped, _ = losses_of(lambda hook: train_seed(ModelConfig(), train, data, 1, CPU, "fp32", hook))
    assert not torch.allclose(alone[1:], undropped[1:], rtol=0, atol=1e-3)  # same init and batches: the masks act


def test_vectorized_sgd_with_momentum_and_weight_decay_matches_plain_sgd() -> None:
    data, train = tiny(), TrainConfig(epochs=1, batch_size=32, optimizer="sgd", lr=0.05, weight_decay=1e-3)
    together, _ = losses_of(lambda hook: train_vectorized(ModelConfig(batchnorm=True), train, data, SEEDS, CPU, "fp32", hook))
    for i, seed in enumerate(SEEDS):
        alone, _ = losses_of(lambda hook: train_seed(ModelConfig(batchnorm=True), train, data, seed, CPU, "fp32", hook))
        torch.testing.assert_close(together[:, i], alone[:, 0], **WITH_BATCHNORM)


def test_bf16_autocast_applies_under_the_vectorized_path() -> None:
    data, train = tiny(), TrainConfig(epochs=1, batch_size=32)
    fp32, _ = losses_of(lambda hook: train_vectorized(ModelConfig(), train, data, SEEDS, CPU, "fp32", hook))
    bf16, _ = losses_of(lambda hook: train_vectorized(ModelConfig(), train, data, SEEDS, CPU, "bf16", hook))
    assert not torch.allclose(bf16, fp32, rtol=0, atol=1e-4)  # autocast took effect
    for i, seed in enumerate(SEEDS):  # and computes what the plain loop computes in bf16, to bf16's precision
        alone, _ = losses_of(lambda hook: train_seed(ModelConfig(), train, data, seed, CPU, "bf16", hook))
        torch.testing.assert_close(bf16[:, i], alone[:, 0], rtol=0.05, atol=0.05)


@pytest.mark.gpu
@requires_cuda
@pytest.mark.parametrize("model", [ModelConfig(), ModelConfig(batchnorm=True)], ids=["baseline", "batchnorm"])
def test_on_cuda_vectorized_seeds_match_seeds_trained_alone(model: ModelConfig) -> None:
    cuda, data, train = torch.device("cuda"), tiny(), TrainConfig(epochs=1, batch_size=32)
    torch.backends.cudnn.allow_tf32 = False  # TF32 (cuDNN's default) rounds to 10 bits: compare fp32 with fp32
    try:
        together, _ = losses_of(lambda hook: train_vectorized(model, train, data, SEEDS, cuda, "fp32", hook))
        for i, seed in enumerate(SEEDS):
            alone, _ = losses_of(lambda hook: train_seed(model, train, data, seed, cuda, "fp32", hook))
            torch.testing.assert_close(together[:, i].cpu(), alone[:, 0].cpu(), rtol=1e-3, atol=1e-3)
    finally:
        torch.backends.cudnn.allow_tf32 = True


@pytest.mark.gpu
@requires_cuda
def test_vectorized_with_fp16_is_refused() -> None:
    with pytest.raises(ConfigError, match="train.strategy=vectorized is not allowed with precision=fp16"):
        checked(["device=cuda", "precision=fp16", "train.strategy=vectorized"])


def test_vectorized_with_bf16_is_refused_and_auto_trains_a_group_in_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    from ablate.study import machine

    with pytest.raises(ConfigError, match=r"not allowed with precision=bf16 \(a seed's numbers would depend on the seeds trained beside it\).*precision=fp32"):
        checked(["device=cpu", "precision=bf16", "train.strategy=vectorized"])
    monkeypatch.setattr(machine, "cpu_has_native_bf16", lambda: True)  # where auto means bf16 for one seed at a time
    assert checked(["device=cpu", "train.strategy=vectorized"]).study.resolved.precision == "fp32"
    assert checked(["device=cpu", "train.strategy=eager"]).study.resolved.precision == "bf16"


@pytest.mark.parametrize("strategy", ["eager", "vectorized"])
def test_a_diverging_group_is_marked_diverged_with_its_epoch(strategy: str) -> None:
    data = load_dataset(DataConfig(name="synthetic", train_size=64, test_size=32, image_size=12))
    train = TrainConfig(epochs=4, lr=1e12, optimizer="sgd", strategy=strategy)
    for result in train_seeds(ModelConfig(), train, data, [0, 1], CPU, "fp32", progress=False):
        assert result.status == "diverged" and result.strategy == strategy and "training loss became" in result.error
        assert len(result.history) == result.metrics["diverged_epoch"] - 1


def test_a_failing_vectorized_group_is_recorded_failed_never_retrained_another_way(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self, x, y):  # noqa: ANN001, ANN202
        raise RuntimeError("vmap cannot batch this")

    monkeypatch.setattr(VectorizedTrainer, "step", broken)
    outcomes = train_seeds(ModelConfig(), TrainConfig(epochs=1, strategy="vectorized"), tiny(), [0, 1], CPU, "fp32", progress=False)
    assert [(r.seed, r.status, r.strategy) for r in outcomes] == [(0, "failed", "vectorized"), (1, "failed", "vectorized")]
    assert all("RuntimeError: vmap cannot batch this" in r.error for r in outcomes)


def test_a_vectorized_group_out_of_memory_is_retried_in_smaller_vectorized_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    real, sizes = VectorizedTrainer.step, []

    def fits_two(self, x, y):  # noqa: ANN001, ANN202
        sizes.append(self.seeds)
        if self.seeds > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, x, y)

    monkeypatch.setattr(VectorizedTrainer, "step", fits_two)
    seeds = [0, 1, 2, 3, 4]
    outcomes = train_seeds(ModelConfig(), TrainConfig(epochs=1, strategy="vectorized"), tiny(), seeds, CPU, "fp32", progress=False)
    assert [(r.seed, r.status, r.strategy) for r in outcomes] == [(s, "ok", "vectorized") for s in seeds]
    assert sizes[0] == 5 and sorted(set(sizes)) == [1, 2, 3, 5]  # 5 fails; 3 fails, its 2 + 1 train; then the other 2
    alone = train_seeds(ModelConfig(), TrainConfig(epochs=1, strategy="vectorized"), tiny(), [3, 4], CPU, "fp32", progress=False)
    assert [r.metrics["test_acc"] for r in alone] == [r.metrics["test_acc"] for r in outcomes[3:]]


def test_groups_split_by_memory_and_limit_evenly_keeping_every_seed_once() -> None:
    seeds = list(range(36))
    groups = plan_groups(seeds, per_seed_bytes=100, available_bytes=1650, limit=None)  # 16 fit
    assert [len(g) for g in groups] == [12, 12, 12] and sum(groups, []) == seeds
    assert plan_groups(seeds, 100, None, None) == [seeds]
    assert [len(g) for g in plan_groups(seeds, 100, None, 10)] == [9, 9, 9, 9]
    assert [len(g) for g in plan_groups(seeds, 100, 1650, 5)] == [5] * 4 + [4] * 4
    assert plan_groups([3, 4], 100, 50, None) == [[3], [4]]  # not even one fits: one at a time (OOM is reported per seed)
    assert plan_groups([7], 100, 10**9, None) == [[7]]
    assert plan_groups([], 100, 1650, 4) == []


def test_cpu_groups_follow_seeds_per_group() -> None:
    data = tiny()
    described = create_network(ModelConfig(), data.input_shape, data.num_classes).describe()
    assert seed_groups(described, TrainConfig(), data, [0, 1, 2, 3, 4], CPU) == [[0, 1, 2, 3, 4]]
    assert seed_groups(described, TrainConfig(seeds_per_group=2), data, [0, 1, 2, 3, 4], CPU) == [[0, 1], [2, 3], [4]]


def test_every_run_records_the_strategy_it_used_and_it_changes_the_identity(tmp_path: Path) -> None:
    data = DataConfig(name="synthetic", train_size=128, test_size=64, image_size=12)
    records = {}
    for strategy in ("eager", "vectorized"):
        cfg = AblateConfig(data=data, train=TrainConfig(epochs=1, strategy=strategy), seeds=[0, 1], device="cpu",
                           runs_dir=str(tmp_path / strategy), study="s")
        train(cfg)
        records[strategy] = [json.loads((tmp_path / strategy / "s" / "baseline" / f"seed={s}" / "metrics.json").read_text()) for s in (0, 1)]
    for strategy, runs in records.items():
        assert [r["strategy"] for r in runs] == [strategy, strategy] and all(r["status"] == "ok" for r in runs)
        assert runs[0]["identity_hash"] == runs[1]["identity_hash"] and runs[0]["strategy_note"] is None
        assert runs[0]["identity"]["train.strategy"] == strategy
    assert records["eager"][0]["identity_hash"] != records["vectorized"][0]["identity_hash"]
    assert records["eager"][0]["test_acc"] == pytest.approx(records["vectorized"][0]["test_acc"], abs=0.02)


def test_each_vectorized_seeds_model_pt_reproduces_its_own_test_accuracy_in_a_fresh_model(tmp_path: Path) -> None:
    data_cfg = DataConfig(name="mnist", train_size=500, test_size=300)
    cfg = AblateConfig(model=ModelConfig(batchnorm=True), data=data_cfg, train=TrainConfig(epochs=1, strategy="vectorized"),
                       seeds=SEEDS, device="cpu", precision="fp32", runs_dir=str(tmp_path), study="s")
    train(cfg)
    data, losses = load_dataset(data_cfg), []
    for seed in SEEDS:
        run = results.run_dir(tmp_path, "s", "baseline", seed)
        record = results.read_metrics(run)
        config, state = results.load_trained(run)
        assert all(t.untyped_storage().nbytes() == t.nbytes for t in state.values())  # its own weights, not the stack
        model = build_model(config.model, data.input_shape, data.num_classes)
        model.load_state_dict(state)  # strict: every parameter and BatchNorm statistic of one plain network
        (loss,), (acc,) = evaluate(EagerTrainer(model, config.train, CPU, "fp32", steps_per_epoch=1), data.test_x, data.test_y)
        assert record["strategy"] == "vectorized" and record["test_acc"] > 0.4  # chance is 0.1
        assert acc == record["test_acc"] and loss == pytest.approx(record["test_loss"], rel=1e-5)
        losses.append(loss)
    assert len({round(loss, 4) for loss in losses}) == len(SEEDS)  # three seeds, three different networks


def test_a_group_split_by_another_process_agrees_with_one_group_to_float_rounding(tmp_path: Path) -> None:
    """Two processes with overlapping seeds split a group ([0] and [1, 2]); the study agrees with one trained as one
    group to float rounding (fp32, what precision=auto trains a vectorized group in), as docs/guide/identity.md says."""
    command = ["run", "seeds=[0,1,2]", *TINY, "data.train_size=128", "data.test_size=64", "train.strategy=vectorized"]
    for where in ("whole", "split"):
        (tmp_path / where).mkdir()
    assert run_ablate(*command, cwd=tmp_path / "whole").returncode == 0
    lock = results.RunLock(results.run_dir(tmp_path / "split" / "runs", "default", "baseline", 0))
    assert lock.acquire()  # the other process, training seed 0 alone
    try:
        assert run_ablate(*command, cwd=tmp_path / "split").returncode == 1  # [1, 2] as a group, seed 0 in progress elsewhere
    finally:
        lock.release()
    assert run_ablate(*command, cwd=tmp_path / "split").returncode == 0  # [0] alone
    for seed in SEEDS:
        whole, split = (results.read_metrics(results.run_dir(tmp_path / where / "runs", "default", "baseline", seed))
                        for where in ("whole", "split"))
        assert (split["strategy"], split["precision"]) == ("vectorized", "fp32")
        for key in ("train_loss", "train_acc", "test_loss", "test_acc"):
            assert split[key] == pytest.approx(whole[key], rel=1e-6), (seed, key)
