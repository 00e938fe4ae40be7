"""Algorithm.apply_updates: FedAsync mixing and FedBuff deltas, re-derived by hand."""

from __future__ import annotations

import copy

import pytest
import torch

from learning.algorithms import make_algorithm
from learning.algorithms.base import StaleUpdate
from tiny_data import TinyData

MODEL = {"patch_size": 7, "dim": 16, "depth": 1, "heads": 2, "mlp_ratio": 2.0}
FAST = {"lr": 3e-3, "local_epochs": 1.0, "batch_size": 16}


@pytest.fixture(scope="module")
def data() -> TinyData:
    return TinyData()


def train(alg, device: int, version_payload, seed: int):
    return alg.client().local_update(device, alg.device_state(device), version_payload, seed)


@pytest.mark.parametrize("name", ["fedavg", "fedprox"])
def test_fedasync_mix_and_fedbuff_delta_with_stale_models(name, data):
    alg = make_algorithm(name, data, MODEL, FAST, seed=0)
    x0 = alg.downlink(0, 0)  # version 0, sent to device 0
    r0 = train(alg, 0, x0, 1)
    x1 = alg.downlink(1, 0)
    r1 = train(alg, 1, x1, 2)
    # FedAsync: device 1 arrives first (staleness 0), then device 0 (trained on version 0).
    mixed = copy.deepcopy(alg)
    mixed.apply_updates([StaleUpdate(1, r1.uplink, x1, r1.samples, 0, 0.6)], "mix")
    after_first = {k: v.clone() for k, v in mixed.global_state.items()}
    w = 0.6 * (1 + 1) ** -0.5
    mixed.apply_updates([StaleUpdate(0, r0.uplink, x0, r0.samples, 1, w)], "mix")
    for k, x in x0.tensors.items():
        first = 0.4 * x.double() + 0.6 * r1.uplink.tensors[k].double()
        torch.testing.assert_close(after_first[k].double(), first, rtol=0, atol=1e-6)
        second = (1 - w) * after_first[k].double() + w * r0.uplink.tensors[k].double()
        torch.testing.assert_close(mixed.global_state[k].double(), second, rtol=0, atol=1e-6)
    # FedBuff: x <- x + eta * sum_i w_i (y_i - x_sent_i), with a server model that moved on.
    buf = copy.deepcopy(alg)
    buf.global_state = {k: v + 0.01 for k, v in alg.global_state.items()}  # version 1 != what was sent
    eta, w0, w1 = 0.5, 0.3, 0.45
    buf.apply_updates([StaleUpdate(0, r0.uplink, x0, r0.samples, 1, w0),
                       StaleUpdate(1, r1.uplink, x1, r1.samples, 1, w1)], "delta", server_lr=eta)
    for k, x in x0.tensors.items():
        expect = (x.double() + 0.01) + eta * (w0 * (r0.uplink.tensors[k].double() - x.double())
                                              + w1 * (r1.uplink.tensors[k].double() - x1.tensors[k].double()))
        torch.testing.assert_close(buf.global_state[k].double(), expect, rtol=0, atol=1e-6)


def test_fresh_fedbuff_step_is_fedavg_bit_for_bit(data):
    alg = make_algorithm("fedavg", data, MODEL, FAST, seed=0)
    sync = copy.deepcopy(alg)
    sent = {d: alg.downlink(d, 0) for d in range(3)}
    results = {d: train(alg, d, sent[d], 10 + d) for d in range(3)}
    sync.aggregate({d: (r.uplink, r.samples) for d, r in results.items()}, 0)
    total = sum(r.samples for r in results.values())
    alg.apply_updates([StaleUpdate(d, r.uplink, sent[d], r.samples, 0, r.samples / total)
                       for d, r in reversed(list(results.items()))], "delta")
    for k, v in sync.global_state.items():
        assert torch.equal(alg.global_state[k], v), k


def test_pfl_tps_stale_thresholds_and_hypernetwork_step(data):
    alg = make_algorithm("pfl_tps", data, MODEL, FAST, seed=0)
    sent = {d: alg.downlink(d, 0) for d in (0, 1)}
    results = {d: train(alg, d, sent[d], 5 + d) for d in (0, 1)}
    before_thr = {k: v.clone() for k, v in alg.threshold_mean.items()}
    before_hn = [p.detach().clone() for p in alg.hn.parameters()]
    w = {0: 0.25, 1: 0.35}
    alg.apply_updates([StaleUpdate(d, r.uplink, sent[d], r.samples, 2, w[d]) for d, r in results.items()],
                      "delta", server_lr=1.0)
    for name, t in alg.threshold_mean.items():
        key = f"{name}.threshold"
        expect = before_thr[name].double() + sum(w[d] * (results[d].uplink.tensors[key].double()
                                                         - before_thr[name].double()) for d in (0, 1))
        torch.testing.assert_close(t.double(), expect, rtol=0, atol=1e-6)
    assert any(not torch.equal(p, q) for p, q in zip(alg.hn.parameters(), before_hn)), "the hypernetwork moved"
    for d in (0, 1):  # the server's embedding copies take the uploaded ones
        assert torch.equal(alg.embeddings[d], results[d].uplink.tensors["embedding"].float())
    assert [g["lr"] for g in alg.hn_opt.param_groups] == [alg.cfg.hn_lr]  # restored after the scaled step


@pytest.mark.parametrize("name", ["ditto", "fedper", "fedtp", "fedavg_topk", "pfedhn", "local"])
def test_algorithms_without_a_stale_rule_say_so(name, data):
    alg = make_algorithm(name, data, MODEL, FAST, seed=0)
    assert not alg.stale_updates
    with pytest.raises(NotImplementedError, match=f"{name} has no stale-update rule"):
        alg.apply_updates([], "mix")


def test_bad_rule_or_weight_is_rejected(data):
    alg = make_algorithm("fedavg", data, MODEL, FAST, seed=0)
    with pytest.raises(ValueError, match="rule 'nope'"):
        alg.apply_updates([], "nope")
    x = alg.downlink(0, 0)
    with pytest.raises(ValueError, match="weights must be >= 0"):
        alg.apply_updates([StaleUpdate(0, x, x, 1, 0, -0.1)], "mix")
