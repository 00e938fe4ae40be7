"""Algorithm contract (every registered algorithm), FedAvg maths, determinism and learning."""

from __future__ import annotations

import math
import pickle
import re

import pytest
import torch

from learning.algorithms import (
    ALGORITHMS,
    Algorithm,
    FedAvg,
    LocalResult,
    TrainParams,
    make_algorithm,
    train_local,
    weighted_average,
)
from learning.flops import vit_flops_per_sample
from learning.models import build_model
from learning.payload import Payload
from tiny_data import TinyData

MODEL = {"patch_size": 7, "dim": 16, "depth": 1, "heads": 2, "mlp_ratio": 2.0}
FAST = {"lr": 3e-3, "local_epochs": 2.0, "batch_size": 16}


def run_rounds(alg: Algorithm, rounds: int, devices: list[int]) -> list[LocalResult]:
    """A plain synchronous FL loop (no engine); returns the last round's results."""
    client = alg.client()
    results: list[LocalResult] = []
    for r in range(rounds):
        results = [client.local_update(d, alg.device_state(d), alg.downlink(d, r), 1000 * r + d) for d in devices]
        for res in results:
            alg.commit(res)
        alg.aggregate({res.device: (res.uplink, res.samples) for res in results if res.uplink is not None}, r)
    return results


@pytest.fixture(scope="module")
def data() -> TinyData:
    return TinyData()


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_conformance_check(name: str) -> None:
    """The reusable plugin check (``cosim.checks``) holds for every built-in algorithm."""
    from cosim.checks import check_algorithm

    check_algorithm(ALGORITHMS[name])


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_numeric_parameters_refuse_what_is_not_a_number(name: str) -> None:
    # YAML reads `lr: inf` or `lr: nan` as strings: named, not a TypeError from a comparison
    cls = ALGORITHMS[name]
    numeric = [k for k, v in cls.default_params().items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    assert "lr" in numeric
    for key in numeric:
        for bad in ("inf", True, None, [1.0]):
            with pytest.raises(ValueError, match=rf"^{key}={re.escape(repr(bad))} is not a number \({name}'s default"):
                cls.resolve_params({key: bad})


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_contract(name: str, data: TinyData) -> None:
    cls = ALGORITHMS[name]
    assert cls.name == name and isinstance(cls.communicates, bool) and isinstance(cls.personalized, bool)
    with pytest.raises(ValueError, match="unknown .*'learning_rate'.*allowed keys.*'lr'"):
        make_algorithm(name, data, MODEL, {"learning_rate": 0.1}, seed=0)
    with pytest.raises(ValueError, match="allowed"):
        make_algorithm("nope", data, MODEL, {}, seed=0)
    alg = make_algorithm(name, data, MODEL, FAST, seed=0)
    assert alg.client() is alg.client()
    client = pickle.loads(pickle.dumps(alg.client()))
    res = client.local_update(1, alg.device_state(1), alg.downlink(1, 5), seed=11)
    assert res.device == 1 and res.samples == data.num_train(1)
    # Algorithms may train more than one pass (ditto trains two models, fedrep adds head
    # epochs): the cost model counts what is executed, densely.
    assert res.metrics["samples_processed"] >= 2 * data.num_train(1)
    dense_flops = vit_flops_per_sample(MODEL, (1, 28, 28), 4) * 2 * data.num_train(1)
    cost = cls.cost_model(MODEL, FAST, (1, 28, 28), 4)
    cost_flops = cost.flops_per_sample * res.samples * cost.epochs
    assert cost_flops >= dense_flops
    # Pruning algorithms report fewer FLOPs than the dense cost model; the others exactly it.
    assert 0 < res.flops <= cost_flops * (1 + 1e-12)
    if name in ("fedavg", "local"):
        assert res.flops == cost_flops == dense_flops
    assert set(res.metrics) >= {"train_loss", "train_accuracy"}
    down = alg.downlink(1, 5)
    assert (down is not None) == (res.uplink is not None) == cls.communicates
    if cls.communicates:
        assert down.config["round"] == 5 and res.uplink.config["round"] == 5
        assert cost.downlink_bytes == down.wire_bytes and cost.uplink_bytes == res.uplink.wire_bytes
    else:
        assert cost.downlink_bytes == cost.uplink_bytes == 0
    pickle.dumps(res)
    ev = alg.evaluate([0, 2])
    assert set(ev.per_device_accuracy) == {0, 2}
    assert ev.mean_accuracy == pytest.approx(sum(ev.per_device_accuracy.values()) / 2)
    assert (ev.global_accuracy is not None) == (not cls.personalized)


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_local_update_is_deterministic_per_seed(name: str, data: TinyData) -> None:
    alg = make_algorithm(name, data, MODEL, FAST, seed=0)
    client = alg.client()
    args = (2, alg.device_state(2), alg.downlink(2, 0))
    a, b, c = (client.local_update(*args, seed=s) for s in (5, 5, 6))
    model_a = _flat(a.state if a.uplink is None else a.uplink.tensors)
    model_b = _flat(b.state if b.uplink is None else b.uplink.tensors)
    model_c = _flat(c.state if c.uplink is None else c.uplink.tensors)
    assert all(torch.equal(model_a[k], model_b[k]) for k in model_a)
    assert a.metrics == b.metrics
    assert not all(torch.equal(model_a[k], model_c[k]) for k in model_a)
    # Same algorithm seed -> same initial models; another seed -> different ones.
    again = make_algorithm(name, data, MODEL, FAST, seed=0)
    other = make_algorithm(name, data, MODEL, FAST, seed=1)
    # The initial model: a personal device state, or what the server sends (global or generated).
    first = lambda alg: _flat(alg.device_state(2) if alg.personalized and alg.device_state(2) is not None  # noqa: E731
                              else alg.downlink(2, 0).tensors)
    assert all(torch.equal(first(alg)[k], first(again)[k]) for k in first(alg))
    assert not all(torch.equal(first(alg)[k], first(other)[k]) for k in first(alg))


def _flat(state, prefix: str = "") -> dict:
    """Tensors of a (possibly nested) state dict keyed by dotted path."""
    if isinstance(state, torch.Tensor):
        return {prefix: state}
    out = {}
    for key, value in state.items():
        if isinstance(value, (dict, torch.Tensor)):
            out.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def test_weighted_average_exact_numbers() -> None:
    states = [{"w": torch.tensor([1.0, 2.0]), "b": torch.tensor(0.0)},
              {"w": torch.tensor([4.0, 8.0]), "b": torch.tensor(1.0)},
              {"w": torch.tensor([-2.0, 0.5]), "b": torch.tensor(-1.0)}]
    out = weighted_average(states, [1, 3, 4])
    # (1*1 + 3*4 + 4*-2)/8 = 0.625 ; (1*2 + 3*8 + 4*0.5)/8 = 3.5 ; (0 + 3 - 4)/8 = -0.125
    torch.testing.assert_close(out["w"], torch.tensor([0.625, 3.5]), rtol=0, atol=0)
    torch.testing.assert_close(out["b"], torch.tensor(-0.125), rtol=0, atol=0)
    with pytest.raises(ValueError):
        weighted_average(states, [0, 0, 0])


def test_fedavg_aggregate_is_sample_weighted(data: TinyData) -> None:
    alg = FedAvg(data, MODEL, {}, seed=0)
    names = list(alg.global_state)
    ups = {
        3: (Payload({k: torch.full_like(v, 2.0) for k, v in alg.global_state.items()}, config={"round": 0}), 10),
        7: (Payload({k: torch.full_like(v, -1.0) for k, v in alg.global_state.items()}, config={"round": 0}), 30),
        9: (Payload({k: torch.full_like(v, 99.0) for k, v in alg.global_state.items()}, config={"round": 0}), 0),
    }
    alg.aggregate(ups, 0)
    for k in names:  # (10*2 + 30*-1) / 40 = -0.25; the zero-sample device has no weight
        assert torch.equal(alg.global_state[k], torch.full_like(alg.global_state[k], -0.25))
    before = {k: v.clone() for k, v in alg.global_state.items()}
    alg.aggregate({}, 1)
    assert all(torch.equal(before[k], alg.global_state[k]) for k in names)
    assert torch.equal(alg.downlink(0, 2).tensors[names[0]], before[names[0]])


def test_device_state_is_lazy_and_committed(data: TinyData) -> None:
    alg = make_algorithm("local", data, MODEL, FAST, seed=0)
    assert alg._states == {}
    alg.evaluate()  # evaluating untrained devices must not store their states
    assert alg._states == {}
    s0 = alg.device_state(0)
    assert alg.device_state(0) is s0 and list(alg._states) == [0]
    res = alg.client().local_update(0, s0, None, seed=1)
    alg.commit(res)
    assert alg.device_state(0) is res.state
    assert not torch.equal(res.state["head.weight"], s0["head.weight"])


def test_train_local_fractional_epochs_and_rng_isolation() -> None:
    model = build_model(MODEL, (1, 28, 28), 4, seed=0)
    x, y = TinyData(n_devices=1).train(0)
    rng = torch.get_rng_state()
    stats = train_local(model, x, y, TrainParams(local_epochs=1.5, batch_size=10), seed=3)
    assert stats.samples_processed == 96  # round(1.5 * 64)
    assert torch.equal(torch.get_rng_state(), rng)
    assert math.isfinite(stats.loss) and 0 <= stats.accuracy <= 1
    with pytest.raises(ValueError, match="optimizer"):
        TrainParams(optimizer="rmsprop")


def test_fedavg_learns(data: TinyData) -> None:
    alg = make_algorithm("fedavg", data, MODEL, FAST, seed=0)
    before = alg.evaluate().global_accuracy
    run_rounds(alg, 4, list(range(data.n_devices)))
    ev = alg.evaluate()
    assert before < 0.5 and ev.global_accuracy > 0.8, (before, ev)  # chance = 0.25
    assert ev.mean_accuracy > 0.8


def test_local_learns_personal_models() -> None:
    data = TinyData(num_classes=4, classes_per_device=2, seed=1)
    alg = make_algorithm("local", data, MODEL, FAST, seed=0)
    run_rounds(alg, 3, list(range(data.n_devices)))
    ev = alg.evaluate()
    assert ev.global_accuracy is None
    assert ev.mean_accuracy > 0.85, ev  # each device: 2 classes, chance 0.5
    assert min(ev.per_device_accuracy.values()) > 0.7


def test_sgd_full_batch_step_matches_hand_computed_update() -> None:
    x, y = TinyData(n_devices=1, n_train=24).train(0)
    model = build_model(MODEL, (1, 28, 28), 4, seed=2)
    ref = {k: v.clone() for k, v in model.state_dict().items()}
    loss = torch.nn.functional.cross_entropy(model(x), y)
    grads = dict(zip([n for n, _ in model.named_parameters()], torch.autograd.grad(loss, list(model.parameters()))))
    hp = TrainParams(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=0.01, local_epochs=1.0, batch_size=24)
    stats = train_local(model, x, y, hp, seed=0)  # one full-batch step; momentum buffer starts at the gradient
    assert stats.samples_processed == 24 and stats.loss == pytest.approx(float(loss.detach()), rel=1e-5)
    for name, p in model.named_parameters():
        expected = ref[name] - 0.1 * (grads[name] + 0.01 * ref[name])
        torch.testing.assert_close(p.detach(), expected, rtol=1e-5, atol=1e-6)
