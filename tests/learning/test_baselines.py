"""Baselines (fedprox, fedper, fedrep, ditto, pfedhn, pfedhn_pc, fedtp, fedavg_topk): maths, payloads, learning."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from learning.algorithms import ALGORITHMS, Algorithm, FedAvgClient, LocalResult, make_algorithm
from learning.algorithms.fedavg_topk import UPDATE_KEY, flatten, topk_count
from learning.algorithms.fedprox import proximal_loss
from learning.algorithms.fedrep import fedrep_pass_flops
from learning.algorithms.fedtp import DELTA_PREFIX
from learning.flops import count_flops, vit_flops_per_sample
from learning.models import build_model, param_groups
from learning.payload import Payload
from tiny_data import TinyData

torch.set_num_threads(1)

MODEL = {"patch_size": 7, "dim": 16, "depth": 1, "heads": 2, "mlp_ratio": 2.0}
FAST = {"lr": 3e-3, "local_epochs": 2.0, "batch_size": 16}
SHAPE, CLASSES = (1, 28, 28), 4
BASELINES = ("fedprox", "fedper", "fedrep", "ditto", "pfedhn", "pfedhn_pc", "fedtp", "fedavg_topk")


def run_rounds(alg: Algorithm, rounds: int) -> list[LocalResult]:
    """Synchronous FL loop over all devices; returns the last round's results."""
    client, results = alg.client(), []
    for r in range(rounds):
        results = [client.local_update(d, alg.device_state(d), alg.downlink(d, r), 1000 * r + d)
                   for d in range(alg.data.n_devices)]
        for res in results:
            alg.commit(res)
        alg.aggregate({res.device: (res.uplink, res.samples) for res in results}, r)
    return results


@pytest.fixture(scope="module")
def data() -> TinyData:
    return TinyData()


@pytest.fixture(scope="module")
def noniid() -> TinyData:
    return TinyData(classes_per_device=2, seed=1)


def _names() -> tuple[set[str], dict[str, list[str]]]:
    model = build_model(MODEL, SHAPE, CLASSES, seed=0)
    return set(model.state_dict()), param_groups(model)


def _dist(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return math.sqrt(sum(float((a[k] - b[k]).pow(2).sum()) for k in a))


# ------------------------------------------------------------------ contract-style checks
@pytest.mark.parametrize("name", BASELINES)
def test_bytes_and_flops_match_cost_model(name: str, data: TinyData) -> None:
    """Real payloads: wire_bytes == len(encode()) == cost model; FLOPs == the cost model's count."""
    alg = make_algorithm(name, data, MODEL, FAST, seed=0)
    down = alg.downlink(1, 3)
    res = alg.client().local_update(1, alg.device_state(1), down, seed=4)
    cost = ALGORITHMS[name].cost_model(MODEL, FAST, SHAPE, CLASSES)
    for payload, expected in ((down, cost.downlink_bytes), (res.uplink, cost.uplink_bytes)):
        assert payload.config["round"] == 3
        assert payload.wire_bytes == len(payload.encode()) == expected
    assert res.flops == pytest.approx(cost.flops_per_sample * res.samples * cost.epochs, rel=1e-12, abs=0)
    dense = vit_flops_per_sample(MODEL, SHAPE, CLASSES) * 2 * data.num_train(1)
    factor = {"ditto": 2.0}.get(name, 1.0)
    if name == "fedrep":
        assert dense < res.flops < 3 * dense  # nine cheap head epochs on top of two body epochs
    else:
        assert res.flops == factor * dense


# ------------------------------------------------------------------ fedprox
def test_fedprox_with_mu_zero_equals_fedavg_bit_for_bit(data: TinyData) -> None:
    avg = make_algorithm("fedavg", data, MODEL, FAST, seed=0)
    prox0 = make_algorithm("fedprox", data, MODEL, {**FAST, "mu": 0.0}, seed=0)
    prox = make_algorithm("fedprox", data, MODEL, {**FAST, "mu": 1.0}, seed=0)
    outs = [alg.client().local_update(2, None, alg.downlink(2, 0), seed=9).uplink.tensors for alg in (avg, prox0, prox)]
    assert all(torch.equal(outs[0][k], outs[1][k]) for k in outs[0])
    assert not all(torch.equal(outs[0][k], outs[2][k]) for k in outs[0])
    assert _dist(outs[2], avg.global_state) < _dist(outs[0], avg.global_state)  # pulled towards w_global


def test_proximal_loss_value_and_gradient() -> None:
    model = torch.nn.Linear(3, 2)
    anchor = {k: torch.ones_like(v) for k, v in model.state_dict().items()}
    loss = proximal_loss(model, anchor, mu=0.3)()
    expected = 0.15 * sum(float((p.detach() - 1).pow(2).sum()) for p in model.parameters())
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-6)
    loss.backward()
    for p in model.parameters():
        torch.testing.assert_close(p.grad, 0.3 * (p.detach() - 1))
    with pytest.raises(ValueError, match="mu"):
        make_algorithm("fedprox", TinyData(n_devices=1), MODEL, {"mu": -1.0}, seed=0)


# ------------------------------------------------------------------ fedper / fedrep
@pytest.mark.parametrize("name", ["fedper", "fedrep", "pfedhn_pc"])
def test_personal_head_never_sent(name: str, data: TinyData) -> None:
    names, groups = _names()
    alg = make_algorithm(name, data, MODEL, FAST, seed=0)
    down = alg.downlink(0, 0)
    res = alg.client().local_update(0, alg.device_state(0), down, seed=1)
    shared = names - set(groups["head"])
    assert set(down.tensors) == set(res.uplink.tensors) == set(Payload.decode(res.uplink.encode()).tensors) == shared
    assert set(res.state) == set(groups["head"])
    assert not torch.equal(res.state["head.weight"], alg.device_state(0)["head.weight"])


def test_fedrep_trains_head_then_body_and_counts_flops_as_executed(data: TinyData) -> None:
    alg = make_algorithm("fedrep", data, MODEL, {**FAST, "head_epochs": 1.0}, seed=0)
    client = alg.client()
    down, head0 = alg.downlink(0, 0), alg.device_state(0)
    res = client.local_update(0, head0, down, seed=1)
    n = data.num_train(0)
    f_head, f_body = fedrep_pass_flops(MODEL, SHAPE, CLASSES)
    assert res.flops == f_head * n + f_body * 2 * n
    assert res.metrics["samples_processed"] == 3 * n
    assert all(p.requires_grad for p in client.model().parameters())  # working model restored
    # The two pass costs equal what FlopCounterMode measures with the same parameters frozen.
    model = build_model(MODEL, SHAPE, CLASSES, seed=0)
    for trainable, expected in (({"head.weight", "head.bias"}, f_head), (None, f_body)):
        for name, p in model.named_parameters():
            p.requires_grad_((name.startswith("head.")) == (trainable is not None))
        assert count_flops(model, SHAPE) == expected


# ------------------------------------------------------------------ ditto
def test_ditto_uplink_is_fedavg_and_large_lambda_keeps_personal_near_global(data: TinyData) -> None:
    sgd = {**FAST, "optimizer": "sgd", "lr": 0.01, "momentum": 0.0}
    avg = make_algorithm("fedavg", data, MODEL, sgd, seed=0)
    w = avg.downlink(3, 0)
    ref = FedAvgClient(data, MODEL, sgd).local_update(3, None, w, seed=5).uplink.tensors
    dists = {}
    for lam in (0.0, 50.0):
        alg = make_algorithm("ditto", data, MODEL, {**sgd, "lam": lam}, seed=0)
        res = alg.client().local_update(3, alg.device_state(3), alg.downlink(3, 0), seed=5)
        assert all(torch.equal(res.uplink.tensors[k], ref[k]) for k in ref)  # global part = FedAvg's
        dists[lam] = _dist(res.state, w.tensors)
        assert res.metrics["samples_processed"] == 4 * data.num_train(3)  # two models, two epochs
    start = _dist(make_algorithm("ditto", data, MODEL, sgd, seed=0).device_state(3), w.tensors)
    assert dists[50.0] < 0.1 * dists[0.0] and dists[50.0] < 0.1 * start, (dists, start)


# ------------------------------------------------------------------ hypernetwork servers
@pytest.mark.parametrize("name", ["pfedhn", "pfedhn_pc", "fedtp"])
def test_hypernetwork_step_is_the_vjp_sgd_step_and_approaches_target(name: str, data: TinyData) -> None:
    alg = make_algorithm(name, data, MODEL, FAST, seed=0)
    srv = alg.server
    gen = torch.Generator().manual_seed(0)
    sent = srv.generate(1)
    target = {k: v + 0.01 * torch.randn(v.shape, generator=gen) for k, v in sent.items()}
    delta = {k: sent[k] - target[k] for k in sent}  # θ_sent − θ_trained
    # Expected: one SGD step (first momentum step = gradient) on 1/2‖HN(e_1) − target‖².
    hn, emb = copy.deepcopy(srv.hn), srv.embeddings.detach().clone().requires_grad_(True)
    loss = 0.5 * (hn(emb[1]) - srv.spec.flatten(target)).pow(2).sum()
    grads = torch.autograd.grad(loss, [*hn.parameters(), emb])
    norm = math.sqrt(sum(float(g.pow(2).sum()) for g in grads))
    scale = min(1.0, 50.0 / (norm + 1e-6))
    expected = [p.detach() - 1e-2 * (g * scale + 1e-3 * p.detach()) for p, g in zip([*hn.parameters(), emb], grads)]
    if name in ("pfedhn", "pfedhn_pc"):
        up = Payload(delta, "fp32", {"round": 0})
    else:
        up = Payload({**alg.global_state, **{DELTA_PREFIX + k: v for k, v in delta.items()}}, "fp32", {"round": 0})
    alg.aggregate({1: (up, 64)}, 0)
    for p, e in zip([*srv.hn.parameters(), srv.embeddings], expected):
        torch.testing.assert_close(p.detach(), e, rtol=1e-5, atol=1e-7)
    after = srv.generate(1)
    assert _dist(after, target) < _dist(sent, target)


def test_fedtp_payloads_and_rest_is_fedavg(data: TinyData) -> None:
    names, groups = _names()
    # As the reference ViTHyper: only each block's QKV weight is generated; the QKV bias and
    # the output projection are FedAvg'd like the rest. Embedding width 128.
    sal = {k for k in groups["sal"] if k.endswith("qkv.weight")}
    assert sal == {"blocks.0.sal.qkv.weight"} and "blocks.0.sal.proj.weight" in set(groups["sal"]) - sal
    alg = make_algorithm("fedtp", data, MODEL, FAST, seed=0)
    assert alg.server.embeddings.shape[1] == 128 and list(alg.server.spec.names) == sorted(sal)
    d0, d1 = alg.downlink(0, 0), alg.downlink(1, 0)
    assert set(d0.tensors) == names
    assert not torch.equal(d0.tensors["blocks.0.sal.qkv.weight"], d1.tensors["blocks.0.sal.qkv.weight"])
    assert all(torch.equal(d0.tensors[k], d1.tensors[k]) for k in names - sal)
    res = alg.client().local_update(0, None, d0, seed=2)
    assert set(res.uplink.tensors) == (names - sal) | {DELTA_PREFIX + k for k in sal}
    model = alg.client().model()  # holds the trained parameters after the update
    for k in sal:
        torch.testing.assert_close(res.uplink.tensors[DELTA_PREFIX + k], d0.tensors[k] - model.state_dict()[k])
    rest = {k: torch.full_like(v, 1.0) for k, v in alg.global_state.items()}
    ups = {0: (Payload({**rest, **{DELTA_PREFIX + k: torch.zeros_like(d0.tensors[k]) for k in sal}}), 10),
           2: (Payload({**{k: -v for k, v in rest.items()}, **{DELTA_PREFIX + k: torch.zeros_like(d0.tensors[k])
                                                              for k in sal}}), 30)}
    alg.aggregate(ups, 0)
    for k, v in alg.global_state.items():  # (10·1 + 30·−1) / 40
        assert torch.equal(v, torch.full_like(v, -0.5))


# ------------------------------------------------------------------ top-k with error feedback
def test_topk_sends_k_values_and_keeps_the_residual(data: TinyData) -> None:
    params = {**FAST, "k_fraction": 0.05}
    alg = make_algorithm("fedavg_topk", data, MODEL, params, seed=0)
    assert alg.device_state(0) is None  # lazily created
    client = alg.client()
    w = alg.downlink(0, 0)
    p = sum(v.numel() for v in w.tensors.values())
    k = topk_count(p, 0.05)
    assert k == math.ceil(0.05 * p)
    residual = torch.zeros(p)
    for r in range(2):
        trained = FedAvgClient(data, MODEL, params).local_update(0, None, w, seed=r).uplink.tensors
        acc = flatten(trained) - flatten(w.tensors) + residual
        res = client.local_update(0, residual if r else None, w, seed=r)
        sent = res.uplink.tensors[UPDATE_KEY]
        wire = res.uplink.encode()
        assert len(wire) == res.uplink.wire_bytes == 11 + (2 + 5 + 1 + 8) + (2 + len(UPDATE_KEY) + 2 + 4) + 4 + 8 * k
        assert int(torch.count_nonzero(Payload.decode(wire).tensors[UPDATE_KEY])) == k
        torch.testing.assert_close(sent + res.state, acc, rtol=0, atol=0)  # residual = update − sent
        assert torch.all(res.state[sent != 0] == 0)
        assert float(sent.abs()[sent != 0].min()) >= float(res.state.abs().max())  # the largest k were sent
        residual = res.state
    before = flatten(alg.global_state)
    u = torch.zeros(p)
    u[:3] = torch.tensor([1.0, 2.0, 4.0])
    ups = {0: (Payload({UPDATE_KEY: u}, "index_sparse"), 10), 1: (Payload({UPDATE_KEY: -u}, "index_sparse"), 30)}
    alg.aggregate(ups, 0)  # w + (10·u − 30·u) / 40
    torch.testing.assert_close(flatten(alg.global_state), before - 0.5 * u)


# ------------------------------------------------------------------ learning
@pytest.mark.parametrize("name,params,rounds", [
    ("fedprox", {}, 4),
    ("fedavg_topk", {"k_fraction": 0.2}, 4),
])
def test_global_baselines_learn(name: str, params: dict, rounds: int, data: TinyData) -> None:
    alg = make_algorithm(name, data, MODEL, {**FAST, **params}, seed=0)
    before = alg.evaluate().global_accuracy
    run_rounds(alg, rounds)
    ev = alg.evaluate()
    assert before < 0.5 and ev.global_accuracy > 0.8, (before, ev)  # chance 0.25


@pytest.mark.parametrize("name,params,rounds", [
    ("fedper", {}, 3),
    ("fedrep", {}, 3),
    ("ditto", {}, 3),
    # a faster server step than pFedHN's 1e-2 and Adam inside (its reference SGD 5e-3 needs
    # hundreds of rounds) for a 5-round test of the machinery
    ("pfedhn", {"hn_lr": 0.1, "optimizer": "adam"}, 5),
    ("pfedhn_pc", {"hn_lr": 0.1, "optimizer": "adam"}, 5),
    ("fedtp", {"hn_lr": 0.1}, 4),
])
def test_personalized_baselines_learn(name: str, params: dict, rounds: int, noniid: TinyData) -> None:
    alg = make_algorithm(name, noniid, MODEL, {**FAST, **params}, seed=0)
    before = alg.evaluate().mean_accuracy
    run_rounds(alg, rounds)
    ev = alg.evaluate()
    assert ev.global_accuracy is None
    assert before < 0.7 and ev.mean_accuracy > 0.85, (before, ev)  # each device: 2 classes, chance 0.5


def test_pfedhn_inner_optimizer_defaults_are_the_reference_trainers() -> None:
    # AvivSham/pFedHN experiments/pfedhn/trainer.py: inner SGD(lr=5e-3, momentum=.9,
    # weight_decay=5e-5), batch 64; server SGD lr 1e-2, momentum 0.9, weight decay 1e-3.
    from learning.algorithms import ALGORITHMS
    from learning.algorithms.training import TrainParams
    resolved = ALGORITHMS["pfedhn"].resolve_params({})
    hp = TrainParams.from_params(resolved)
    assert (hp.optimizer, hp.lr, hp.momentum, hp.weight_decay, hp.batch_size) == ("sgd", 5e-3, 0.9, 5e-5, 64)
    assert (resolved["hn_lr"], resolved["hn_momentum"], resolved["hn_weight_decay"]) == (1e-2, 0.9, 1e-3)
    assert TrainParams.from_params(ALGORITHMS["pfedhn"].resolve_params({"lr": 1e-3, "optimizer": "adam"})).optimizer \
        == "adam"  # still overridable


def test_fedrep_head_epochs_default_is_the_reference_split() -> None:
    # lgcollins/FedRep: local_ep 10 with local_rep_ep 1 -> 9 head-only epochs, then 1 body epoch.
    from learning.algorithms import ALGORITHMS
    resolved = ALGORITHMS["fedrep"].resolve_params({})
    assert resolved["head_epochs"] == 9.0 and resolved["local_epochs"] == 1.0


# ------------------------------------------------------------------ pfedhn_pc
def test_pfedhn_pc_generates_the_body_and_evaluates_with_the_devices_own_head(data: TinyData) -> None:
    names, groups = _names()
    alg = make_algorithm("pfedhn_pc", data, MODEL, FAST, seed=0)
    assert set(alg.server.spec.names) == names - set(groups["head"])  # the HN makes no head
    d0, d1 = alg.downlink(0, 0), alg.downlink(1, 0)
    assert any(not torch.equal(d0.tensors[k], d1.tensors[k]) for k in d0.tensors)  # generated per device
    res = alg.client().local_update(0, alg.device_state(0), d0, seed=3)
    model = alg.client().model()
    for k in d0.tensors:  # Δbody = sent − trained, as pFedHN's
        torch.testing.assert_close(res.uplink.tensors[k], d0.tensors[k] - model.state_dict()[k])
    alg.commit(res)
    evaluated = alg.device_model(0).state_dict()
    assert torch.equal(evaluated["head.weight"], res.state["head.weight"])
    assert torch.equal(evaluated["blocks.0.sal.qkv.weight"], alg.server.generate(0)["blocks.0.sal.qkv.weight"])
    # pFedHN's own heads differ between devices only through HN; pFedHN-PC's initial heads by device seed.
    assert not torch.equal(alg.device_state(1)["head.weight"], alg.device_state(2)["head.weight"])

