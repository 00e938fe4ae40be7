"""fedavg_ft (FedAvg + local fine-tuning) and local_pruned (local training with PFL-TPS pruning)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from learning.algorithms import make_algorithm
from learning.algorithms.training import clone_state, derive_seed, train_local
from learning.data import build_federated_data, make_synthetic
from learning.execution import SequentialExecutor
from learning.execution.batched import BatchedExecutor
from learning.flops import vit_flops_per_sample

MODEL = {"patch_size": 14, "dim": 16, "depth": 1, "heads": 2, "mlp_ratio": 2.0}
FAST = {"lr": 3e-3, "local_epochs": 1.0, "batch_size": 16}


@pytest.fixture(scope="module")
def data():
    return build_federated_data(make_synthetic(240, 80, num_classes=4, seed=0), 4, "pathological",
                                {"classes_per_device": 2}, seed=0, validation_fraction=0.1)


def _equal_states(a: dict, b: dict) -> bool:
    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------- fedavg_ft
def test_fedavg_ft_uplink_is_fedavgs_and_personal_model_is_the_finetuned_received_one(data) -> None:
    ft = make_algorithm("fedavg_ft", data, MODEL, {**FAST, "finetune_epochs": 2.0}, seed=3)
    avg = make_algorithm("fedavg", data, MODEL, FAST, seed=3)
    down = ft.downlink(1, 0)
    assert _equal_states(down.tensors, avg.downlink(1, 0).tensors)
    res = ft.client().local_update(1, ft.device_state(1), down, seed=9)
    ref = avg.client().local_update(1, avg.device_state(1), avg.downlink(1, 0), seed=9)
    assert _equal_states(res.uplink.tensors, ref.uplink.tensors)  # the federation is FedAvg's, bit for bit
    # The personal model: the received model trained finetune_epochs with its own seed stream.
    model = ft.new_model()
    model.load_state_dict(down.tensors)
    hp = dataclasses.replace(ft.train_params, local_epochs=2.0)
    stats = train_local(model, *data.train(1), hp, derive_seed(9, 1))
    assert _equal_states(res.state, clone_state(model))
    # Both trainings ran on the device: FLOPs and samples count 1 + 2 epochs.
    n = data.num_train(1)
    assert stats.samples_processed == 2 * n and res.metrics["samples_processed"] == 3 * n
    assert res.flops == vit_flops_per_sample(MODEL, (1, 28, 28), 4) * 3 * n == ref.flops * 3
    assert res.metrics["finetune_loss"] == pytest.approx(stats.loss)
    cost = type(ft).cost_model(MODEL, {**FAST, "finetune_epochs": 2.0}, (1, 28, 28), 4)
    assert cost.epochs == 3.0 and cost.uplink_bytes == res.uplink.wire_bytes


def test_fedavg_ft_evaluates_personal_models_and_the_global_model_before_first_update(data) -> None:
    ft = make_algorithm("fedavg_ft", data, MODEL, FAST, seed=3)
    res = ft.client().local_update(0, ft.device_state(0), ft.downlink(0, 0), seed=1)
    ft.commit(res)
    ft.aggregate({0: (res.uplink, res.samples)}, 0)
    assert _equal_states(clone_state(ft.device_model(0)), res.state)
    assert _equal_states(clone_state(ft.device_model(2)), ft.global_state)  # never took part
    ft.device_state(1)  # an update started (the engine reads the state) but never arrived
    assert _equal_states(clone_state(ft.device_model(1)), ft.global_state)
    ev = ft.evaluate()
    assert ev.global_accuracy is None and set(ev.per_device_val_accuracy) == {0, 1, 2, 3}
    zero = make_algorithm("fedavg_ft", data, MODEL, {**FAST, "finetune_epochs": 0}, seed=3)
    down = zero.downlink(0, 0)
    res0 = zero.client().local_update(0, None, down, seed=1)
    assert _equal_states(res0.state, down.tensors) and "finetune_loss" not in res0.metrics
    with pytest.raises(ValueError, match="finetune_epochs must be a number >= 0"):
        make_algorithm("fedavg_ft", data, MODEL, {"finetune_epochs": -1}, seed=0)
    for bad in ("one", True):
        with pytest.raises(ValueError, match="finetune_epochs=.* is not a number"):
            make_algorithm("fedavg_ft", data, MODEL, {"finetune_epochs": bad}, seed=0)


def test_fedavg_ft_at_evaluation_trains_as_fedavg_and_finetunes_the_current_global_model(data) -> None:
    params = {**FAST, "finetune_at": "evaluation", "finetune_epochs": 2.0}
    ft = make_algorithm("fedavg_ft", data, MODEL, params, seed=3)
    avg = make_algorithm("fedavg", data, MODEL, FAST, seed=3)
    res = ft.client().local_update(1, ft.device_state(1), ft.downlink(1, 0), seed=9)
    ref = avg.client().local_update(1, avg.device_state(1), avg.downlink(1, 0), seed=9)
    # the update is FedAvg's in every field that costs time or energy
    assert _equal_states(res.uplink.tensors, ref.uplink.tensors) and res.state is None
    assert res.flops == ref.flops and "finetune_loss" not in res.metrics
    assert type(ft).cost_model(MODEL, params, (1, 28, 28), 4) == type(avg).cost_model(MODEL, FAST, (1, 28, 28), 4)
    ft.commit(res)
    ft.aggregate({1: (res.uplink, res.samples)}, 0)
    # every device, taken part or not, is evaluated with the global model after this round,
    # fine-tuned now on its own training split (its stream 3), twice the same
    expected = ft.new_model()
    expected.load_state_dict(ft.global_state)
    train_local(expected, *data.train(2), dataclasses.replace(ft.train_params, local_epochs=2.0),
                derive_seed(3, 2, 3))
    assert _equal_states(clone_state(ft.device_model(2)), clone_state(expected))
    assert _equal_states(clone_state(ft.device_model(2)), clone_state(expected))
    assert not _equal_states(clone_state(ft.device_model(2)), ft.global_state)
    first, again = ft.evaluate(), ft.evaluate()
    assert first.per_device_accuracy == again.per_device_accuracy and first.global_accuracy is None
    global_state = {k: v.clone() for k, v in ft.global_state.items()}
    ft.evaluate()
    assert _equal_states(ft.global_state, global_state)  # fine-tuning copies, never moves the global model
    with pytest.raises(ValueError, match="finetune_at must be one of update, evaluation, got 'end'"):
        make_algorithm("fedavg_ft", data, MODEL, {"finetune_at": "end"}, seed=0)


# ----------------------------------------------------------------- local_pruned
def test_local_pruned_sends_nothing_and_keeps_its_own_thresholds(data) -> None:
    alg = make_algorithm("local_pruned", data, MODEL, {**FAST, "prune_lambda": 0.05}, seed=2)
    assert not alg.communicates and alg.downlink(0, 0) is None and alg.hn is None
    cost = type(alg).cost_model(MODEL, {}, (1, 28, 28), 4)
    assert cost.downlink_bytes == cost.uplink_bytes == 0
    client = alg.client()
    first = client.local_update(0, alg.device_state(0), None, seed=1)
    assert first.uplink is None and first.metrics["ffl_density"] < 1.0
    assert first.flops < vit_flops_per_sample(MODEL, (1, 28, 28), 4) * first.metrics["samples_processed"]
    alg.commit(first)
    alg.aggregate({}, 0)
    # The next update starts from the device's own thresholds (no server mean exists).
    second = client.local_update(0, alg.device_state(0), None, seed=2)
    assert second.metrics["ffl_density_start"] == pytest.approx(first.metrics["ffl_density"])
    assert "blocks.0.sal.qkv.weight" in second.state["params"]  # the SAL is personal too
    with pytest.raises(ValueError, match="unknown local_pruned parameter 'hn_lr'"):
        make_algorithm("local_pruned", data, MODEL, {"hn_lr": 0.1}, seed=0)
    assert set(type(alg).default_params()) >= {"prune_lambda", "prune_gradient", "prune_clamp", "lr"}


def test_local_pruned_batched_equals_sequential(data) -> None:
    alg = make_algorithm("local_pruned", data, MODEL, {**FAST, "local_epochs": 1.5}, seed=2)
    tasks = [(d, alg.device_state(d), None, 10 + d) for d in (2, 0, 3)]
    want = SequentialExecutor().run(alg.client(), tasks)
    got = BatchedExecutor().run(alg.client(), tasks)
    for a, b in zip(want, got):
        assert (a.device, a.flops, a.uplink, b.uplink) == (b.device, b.flops, None, None)
        assert list(a.metrics) == list(b.metrics)
        for k, v in a.state["thresholds"].items():
            torch.testing.assert_close(b.state["thresholds"][k], v, rtol=0, atol=1e-5)
