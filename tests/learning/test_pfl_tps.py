"""PFL-TPS: threshold averaging, hypernetwork maths, payloads, runs (pruning: ``test_pfl_tps_pruning.py``)."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from learning.algorithms.pfl_tps import (
    PFLTPS,
    HyperNetwork,
    SalSpec,
    ThresholdMaskedLinear,
    build_net,
    ffl_densities,
    hn_vjp,
)
from learning.algorithms.pfl_tps.client import PFLTPSConfig
from learning.flops import vit_flops_per_sample
from learning.models import build_model, param_groups
from pfl_tps_setup import MODEL, TRAIN, _one_thread, fd, run_rounds  # noqa: F401 (fixtures: used by name)


# ----------------------------------------------------------------- aggregation
def test_weighted_threshold_average_exact(fd) -> None:
    alg = PFLTPS(fd, MODEL, {"hypernetwork_enabled": False}, seed=0)
    up0 = alg.downlink(0, 0)
    names = [k for k in up0.tensors if k.endswith(".threshold")]
    assert len(names) == 4 and all(float(up0.tensors[k].abs().sum()) == 0 for k in names)
    mk = lambda v: type(up0)({k: torch.full_like(up0.tensors[k], v) for k in names}, "fp32")  # noqa: E731
    alg.aggregate({0: (mk(1.0), 30), 1: (mk(3.0), 10), 2: (mk(100.0), 0)}, 0)
    down = alg.downlink(5, 1)
    for k in names:
        torch.testing.assert_close(down.tensors[k], torch.full_like(up0.tensors[k], 1.5))  # (30+30)/40


# ----------------------------------------------------------------- hypernetwork
def _hn(model, d: int = 4, dtype=torch.float32) -> HyperNetwork:
    return HyperNetwork(SalSpec.from_model(model), d, 12, 2, torch.Generator().manual_seed(0)).to(dtype)


def test_hn_outputs_match_sal_parameters() -> None:
    model = build_model(MODEL, (1, 28, 28), 10)
    hn = _hn(model)
    out = hn.generate(torch.randn(4))
    params = dict(model.named_parameters())
    assert list(out) == param_groups(model)["sal"] and len(out) == 8  # qkv/proj weight/bias x 2 blocks
    assert all(out[n].shape == params[n].shape for n in out)
    assert hn.jacobian(torch.randn(4)).shape == (hn.spec.total, 4)
    model.load_state_dict(out, strict=False)  # loadable as the model's SAL


@pytest.mark.parametrize("d, hidden, layers, dtype", [(4, 12, 2, torch.float32), (16, 100, 2, torch.float32),
                                                      (8, 50, 1, torch.float32), (13, 64, 3, torch.float64)])
def test_closed_form_jacobian_is_jacfwd_bit_for_bit(d, hidden, layers, dtype) -> None:
    # the runs' downlinks (and so their results) are those of the earlier jacfwd code
    spec = SalSpec.from_model(build_model(MODEL, (1, 28, 28), 10))
    for seed in range(3):
        hn = HyperNetwork(spec, d, hidden, layers, torch.Generator().manual_seed(seed)).to(dtype)
        e = torch.randn(d, dtype=dtype, generator=torch.Generator().manual_seed(seed + 10))
        params = {k: v.detach() for k, v in hn.named_parameters()}
        want = torch.func.jacfwd(lambda x: torch.func.functional_call(hn, params, (x,)))(e)
        got = hn.jacobian(e)
        assert torch.equal(got, want) and got.stride() == want.stride() and got.dtype == dtype


def test_jacobian_does_not_import_dynamo() -> None:
    code = ("import sys, torch; from learning.models import build_model; "
            "from learning.algorithms.pfl_tps.hypernetwork import HyperNetwork, SalSpec; "
            f"m = build_model({MODEL!r}, (1, 28, 28), 10); "
            "hn = HyperNetwork(SalSpec.from_model(m), 4, 12, 2, torch.Generator().manual_seed(0)); "
            "hn.jacobian(torch.randn(4)); print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "False"


def test_linearised_sal_matches_finite_differences() -> None:
    hn = _hn(build_model(MODEL, (1, 28, 28), 10), dtype=torch.float64)
    e = torch.randn(4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    jac = hn.jacobian(e)
    eps = 1e-6
    fd_jac = torch.stack([(hn(e + eps * v) - hn(e - eps * v)) / (2 * eps) for v in torch.eye(4, dtype=e.dtype)], 1)
    torch.testing.assert_close(jac, fd_jac, rtol=1e-6, atol=1e-9)
    # the device's linearised SAL θ0 + J (e' - e) in float32, with autograd into e'
    cfg = PFLTPSConfig.from_params({**PFLTPS.default_params(), "embedding_dim": 4})
    net = build_net(MODEL, (1, 28, 28), 10, cfg)
    step = 1e-3 * torch.randn(4, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        net.theta0.copy_(hn(e).float())
        net.jac.copy_(jac.float())
        net.anchor.copy_(e.float())
        net.embedding.copy_(e.float() + step)
    theta = net.sal_theta()
    torch.testing.assert_close(theta.double(), hn(e + step.double()), rtol=0, atol=1e-6)
    net(torch.randn(3, 1, 28, 28)).sum().backward()
    assert net.embedding.grad is not None and float(net.embedding.grad.abs().sum()) > 0


def test_hn_vjp_is_grad_of_half_squared_distance() -> None:
    hn = _hn(build_model(MODEL, (1, 28, 28), 10), dtype=torch.float64)
    e = torch.randn(4, dtype=torch.float64)
    delta = 1e-2 * torch.randn(hn.spec.total, dtype=torch.float64)
    grads, grad_e = hn_vjp(hn, e, delta, wrt_embedding=True)
    target = (hn(e) + delta).detach()
    e2 = e.clone().requires_grad_(True)
    loss = 0.5 * (hn(e2) - target).pow(2).sum()
    want = torch.autograd.grad(loss, list(hn.parameters()) + [e2])
    for g, w in zip(grads + [grad_e], want):
        torch.testing.assert_close(g, w)
    # Bit for bit the VJP with grad_outputs (float32 and float64).
    for dtype in (torch.float32, torch.float64):
        hn = _hn(build_model(MODEL, (1, 28, 28), 10), dtype=dtype)
        e = torch.randn(4, dtype=dtype)
        delta = 1e-2 * torch.randn(hn.spec.total, dtype=dtype)
        e2 = e.clone().requires_grad_(True)
        ref = torch.autograd.grad(hn(e2), list(hn.parameters()) + [e2], grad_outputs=-delta)
        grads, grad_e = hn_vjp(hn, e, delta, wrt_embedding=True)
        assert all(torch.equal(g, r) for g, r in zip(grads + [grad_e], ref)), dtype


def test_server_update_moves_hn_toward_trained_sal(fd) -> None:
    alg = PFLTPS(fd, MODEL, TRAIN, seed=0)
    e = alg.server_embedding(2).clone()
    down = alg.downlink(2, 0)
    res = alg.client().local_update(2, alg.device_state(2), down, seed=7)
    e_new = res.uplink.tensors["embedding"]
    assert not torch.equal(e_new, e)
    with torch.no_grad():
        theta = alg.hn(e)
    target = theta + down.tensors["sal_jacobian"] @ (e_new - e)
    before = float((theta - target).norm())
    alg.commit(res)
    alg.aggregate({2: (res.uplink, res.samples)}, 0)
    with torch.no_grad():
        after = float((alg.hn(e) - target).norm())
    assert before > 0 and after < before
    assert torch.equal(alg.server_embedding(2), e_new)  # the server stores the uploaded e'


# ----------------------------------------------------------------- payloads and FLOPs
def _tensor_bytes(name: str, t: torch.Tensor, per_value: int) -> int:
    return 2 + len(name.encode()) + 2 + 4 * t.dim() + per_value * t.numel()


def test_payload_bytes_exact_and_match_cost_model(fd) -> None:
    alg = PFLTPS(fd, MODEL, TRAIN, seed=0)
    down = alg.downlink(0, 3)
    res = alg.client().local_update(0, alg.device_state(0), down, seed=1)
    up = res.uplink
    assert up.encoding == "fp32" and sorted(up.tensors) == sorted(
        ["embedding"] + [f"blocks.{b}.ffl.fc{i}.threshold" for b in (0, 1) for i in (1, 2)])
    expected = 11 + (2 + 5 + 1 + 8) + sum(_tensor_bytes(k, t, 4) for k, t in up.tensors.items())
    n_values = 2 * (32 + 16) + 16  # thresholds of fc1 (32 rows) and fc2 (16 rows) per block + e
    assert up.num_elements == n_values
    assert up.wire_bytes == len(up.encode()) == expected
    assert down.encoding == "fp16" and down.wire_bytes == len(down.encode())
    n_sal = alg.spec.total
    assert down.tensors["sal_jacobian"].shape == (n_sal, 16) and down.tensors["sal_theta"].shape == (n_sal,)
    cost = PFLTPS.cost_model(MODEL, TRAIN, (1, 28, 28), 10)
    assert (cost.uplink_bytes, cost.downlink_bytes) == (up.wire_bytes, down.wire_bytes)
    assert cost.flops_per_sample == vit_flops_per_sample(MODEL, (1, 28, 28), 10) and cost.epochs == 2.0


def test_reported_flops_follow_density_modes(fd) -> None:
    cfg = PFLTPSConfig.from_params(PFLTPS.default_params())
    net = build_net(MODEL, (1, 28, 28), 10, cfg)
    dense = vit_flops_per_sample(MODEL, (1, 28, 28), 10)
    assert net.flops_per_sample(net) == dense
    with torch.no_grad():
        net.layers[0].threshold.fill_(0.02)  # prunes part of block0.fc1
        net.layers[3].threshold[:4] = 1.0  # prunes 4 whole rows of block1.fc2
    dens = ffl_densities(net.layers, "density")
    rows = ffl_densities(net.layers, "rows")
    assert dens[0] < 1 and rows[0] == 1.0 and rows[3] == pytest.approx(12 / 16) == pytest.approx(dens[3])
    pruned = net.flops_per_sample(net)
    assert pruned == vit_flops_per_sample(MODEL, (1, 28, 28), 10, ffl_density=dens) < dense
    rows_cfg = PFLTPSConfig.from_params({**PFLTPS.default_params(), "pruning_flops": "rows"})
    rows_flops = build_net(MODEL, (1, 28, 28), 10, rows_cfg).flops_per_sample(net)
    assert rows_flops == vit_flops_per_sample(MODEL, (1, 28, 28), 10, ffl_density=rows)
    assert pruned < rows_flops < dense  # only the 4 empty rows count as saved
    dense_cfg = PFLTPSConfig.from_params({**PFLTPS.default_params(), "pruning_flops": "dense"})
    assert ffl_densities(net.layers, "dense") == [1.0] * len(net.layers)
    assert build_net(MODEL, (1, 28, 28), 10, dense_cfg).flops_per_sample(net) == dense  # no kernel saving
    # a training forward counts batch x per-sample FLOPs at the current density
    net.train()
    net.flops_count = 0
    net(torch.zeros(5, 1, 28, 28))
    assert net.flops_count == 5 * pruned


# ----------------------------------------------------------------- runs
def test_short_run_learns_and_reports_personal_accuracy(fd) -> None:
    alg = PFLTPS(fd, MODEL, TRAIN, seed=0)
    start = alg.evaluate()
    results = run_rounds(alg, 8)
    ev = alg.evaluate()
    assert ev.global_accuracy is None and len(ev.per_device_accuracy) == 8
    assert ev.mean_accuracy > 0.75 and ev.mean_accuracy > start.mean_accuracy + 0.2  # 2 classes/device: chance 0.5
    assert all(r.metrics["ffl_density"] < 0.5 for r in results)  # FFLs pruned clearly
    dense = vit_flops_per_sample(MODEL, (1, 28, 28), 10)
    assert all(r.flops < dense * r.metrics["samples_processed"] for r in results)


def test_delta_mode_runs_with_larger_uplink(fd) -> None:
    emb = PFLTPS(fd, MODEL, TRAIN, seed=0)
    delta = PFLTPS(fd, MODEL, {**TRAIN, "sal_update": "delta"}, seed=0)
    e0 = delta.server_embedding(1).clone()
    res = run_rounds(delta, 2, devices=[1, 3])
    assert res[0].uplink.tensors["sal_delta"].shape == (delta.spec.total,)
    assert "sal_jacobian" not in delta.downlink(1, 2).tensors
    assert not torch.equal(delta.server_embedding(1), e0)  # chain-rule update of e on the server
    emb_up = run_rounds(emb, 1, devices=[1])[0].uplink.wire_bytes
    assert res[0].uplink.wire_bytes > 10 * emb_up
    cost = PFLTPS.cost_model(MODEL, {"sal_update": "delta"}, (1, 28, 28), 10)
    assert cost.uplink_bytes == res[0].uplink.wire_bytes
    assert delta.evaluate([1, 3]).mean_accuracy > 0.5


def test_ablation_switches(fd) -> None:
    no_hn = PFLTPS(fd, MODEL, {**TRAIN, "hypernetwork_enabled": False}, seed=0)
    res = run_rounds(no_hn, 1, devices=[0])[0]
    assert not any(k.startswith("sal") or k.startswith("embedding") for k in no_hn.downlink(0, 1).tensors)
    assert all(k.endswith(".threshold") for k in res.uplink.tensors)
    assert "blocks.0.sal.qkv.weight" in res.state["params"] and no_hn.hn is None
    no_prune = PFLTPS(fd, MODEL, {**TRAIN, "pruning_enabled": False}, seed=0)
    res = run_rounds(no_prune, 1, devices=[0])[0]
    assert list(res.uplink.tensors) == ["embedding"] and res.state["thresholds"] == {}
    assert not any(isinstance(m, ThresholdMaskedLinear) for m in no_prune.client().model().modules())
    assert res.flops == vit_flops_per_sample(MODEL, (1, 28, 28), 10) * int(res.metrics["samples_processed"])
    with pytest.raises(ValueError, match="sal_update"):
        PFLTPS(fd, MODEL, {"sal_update": "both"}, seed=0)
    with pytest.raises(ValueError, match="unknown pfl_tps parameter"):
        PFLTPS(fd, MODEL, {"prune_lamda": 1.0}, seed=0)


def test_sal_residual_is_personal_and_added_to_the_linearised_sal(fd) -> None:
    alg = PFLTPS(fd, MODEL, TRAIN, seed=0)  # sal_residual on by default
    plain = PFLTPS(fd, MODEL, {**TRAIN, "sal_residual": False}, seed=0)
    assert "sal_residual" not in plain.device_state(2)
    assert torch.equal(alg.device_state(2)["sal_residual"], torch.zeros(alg.spec.total))
    down = alg.downlink(2, 0)
    res = alg.client().local_update(2, alg.device_state(2), down, seed=3)
    r, e = res.state["sal_residual"], res.state["embedding"]
    assert r.abs().max() > 0  # trained
    t = down.tensors
    assert torch.allclose(res.state["sal"], t["sal_theta"] + t["sal_jacobian"] @ (e - t["embedding_anchor"]) + r)
    # Never sent: the uplink is the plain method's, byte for byte in size and keys.
    base = plain.client().local_update(2, plain.device_state(2), plain.downlink(2, 0), seed=3)
    assert list(res.uplink.tensors) == list(base.uplink.tensors)
    assert res.uplink.wire_bytes == base.uplink.wire_bytes
    assert PFLTPS.cost_model(MODEL, {"sal_residual": False}, (1, 28, 28), 10) == \
        PFLTPS.cost_model(MODEL, {}, (1, 28, 28), 10)
    # The next update continues from the kept residual.
    alg.commit(res)
    alg.aggregate({2: (res.uplink, res.samples)}, 0)
    again = alg.client().local_update(2, alg.device_state(2), alg.downlink(2, 1), seed=4)
    assert not torch.equal(again.state["sal_residual"], r)
    for direct in ({"sal_update": "delta"}, {"hypernetwork_enabled": False}):  # SAL itself is trained
        assert "sal_residual" not in PFLTPS(fd, MODEL, {"sal_residual": True, **direct}, seed=0).device_state(2)


def test_determinism_and_purity(fd) -> None:
    runs = []
    for _ in range(2):
        alg = PFLTPS(fd, MODEL, TRAIN, seed=5)
        res = run_rounds(alg, 2, devices=[0, 4])
        runs.append((alg.evaluate([0, 4]).per_device_accuracy, res, alg))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1]):
        assert a.flops == b.flops and a.uplink.encode() == b.uplink.encode()
    for pa, pb in zip(runs[0][2].hn.parameters(), runs[1][2].hn.parameters()):
        assert torch.equal(pa, pb)
    alg = runs[0][2]
    client = pickle.loads(pickle.dumps(alg.client()))  # picklable client half, model rebuilt lazily
    state, down = alg.device_state(4), alg.downlink(4, 2)
    r1 = client.local_update(4, state, down, seed=9)
    r2 = alg.client().local_update(4, state, down, seed=9)
    assert r1.uplink.encode() == r2.uplink.encode() and r1.flops == r2.flops
    assert all(torch.equal(r1.state["params"][k], v) for k, v in r2.state["params"].items())
