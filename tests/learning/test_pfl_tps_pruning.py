"""PFL-TPS pruning: surrogate and masked-layer gradients by hand, the reset and clamp rules,
the prune_gradient switch and the sparsity regulariser's effect on density and FLOPs."""

from __future__ import annotations

import pytest
import torch

from learning.algorithms.pfl_tps import (
    PFLTPS,
    ThresholdMaskedLinear,
    ThresholdMask,
    build_net,
    masked_weight,
    reset_thresholds_,
    step_surrogate_grad,
)
from learning.algorithms.pfl_tps.client import PFLTPSConfig
from pfl_tps_setup import MODEL, TRAIN, _one_thread, fd, run_rounds  # noqa: F401 (fixtures: used by name)


# ----------------------------------------------------------------- pruning maths
def test_surrogate_step_derivative_values() -> None:
    x = torch.tensor([0.0, 0.1, -0.3, 0.4, 0.5, -1.0, 1.2])
    want = torch.tensor([2.0, 1.6, 0.8, 0.4, 0.4, 0.4, 0.0])
    torch.testing.assert_close(step_surrogate_grad(x), want)


# A 2x3 layer worked by hand: x = |W| - t is row0 (0.3, -0.1, 0.1), row1 (0.5, -0.2, 1.1),
# so M = [[1, 0, 1], [1, 0, 1]] and step'(x) = [[0.8, 1.6, 1.6], [0.4, 1.2, 0]].
W_HAND = [[0.5, -0.1, 0.3], [-0.9, 0.2, 1.5]]
T_HAND = [0.2, 0.4]
G_HAND = [[1.0, 2.0, -1.0], [0.5, -1.0, 2.0]]  # upstream dL/d(W⊙M)
STEP_HAND = [[0.8, 1.6, 1.6], [0.4, 1.2, 0.0]]
GRAD_T_HAND = [-(1.0 * 0.5 * 0.8 + 2.0 * -0.1 * 1.6 + -1.0 * 0.3 * 1.6),
               -(0.5 * -0.9 * 0.4 + -1.0 * 0.2 * 1.2 + 2.0 * 1.5 * 0.0)]


def _hand_layer(gradient: str) -> ThresholdMaskedLinear:
    layer = ThresholdMaskedLinear(3, 2, bias=False, gradient=gradient)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(W_HAND))
        layer.threshold.copy_(torch.tensor(T_HAND))
    assert layer.mask().tolist() == [[True, False, True], [True, False, True]]
    assert layer.density() == pytest.approx(4 / 6) and layer.row_density() == 1.0
    masked = layer.masked_weight()
    torch.testing.assert_close(masked.detach(), torch.tensor([[0.5, 0.0, 0.3], [-0.9, 0.0, 1.5]]), rtol=0, atol=0)
    masked.backward(torch.tensor(G_HAND))
    return layer


def test_ste_weight_grad_and_surrogate_threshold_grad_by_hand() -> None:
    layer = _hand_layer("ste")
    torch.testing.assert_close(layer.weight.grad, torch.tensor(G_HAND))  # straight-through: unmasked
    torch.testing.assert_close(layer.threshold.grad, torch.tensor(GRAD_T_HAND))


def test_dst_weight_grad_is_masked_plus_surrogate_by_hand() -> None:
    # DST: dL/dW = g·M + g·W·step'(x)·sign(W) = g·M + g·|W|·step'(x).
    layer = _hand_layer("dst")
    want = [[g * (m + abs(w) * sp) for g, m, w, sp in zip(gr, mr, wr, sr)]
            for gr, mr, wr, sr in zip(G_HAND, [[1, 0, 1], [1, 0, 1]], W_HAND, STEP_HAND)]
    # e.g. the pruned W[0,1] = -0.1: 2.0 · 0.1 · 1.6 = 0.32 (straight-through gave 2.0)
    assert want[0][1] == pytest.approx(0.32)
    torch.testing.assert_close(layer.weight.grad, torch.tensor(want))
    torch.testing.assert_close(layer.threshold.grad, torch.tensor(GRAD_T_HAND))


def test_dst_is_the_default_and_pruned_weights_get_only_the_small_surrogate_gradient() -> None:
    assert ThresholdMaskedLinear(4, 4).gradient == "dst"
    assert PFLTPS.extra_params["prune_gradient"] == "dst" and PFLTPS.extra_params["prune_clamp"] is False
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(64, 48, generator=gen) * 0.05  # ViT-like init scale
    t = torch.full((64,), 0.05)
    g = torch.randn(64, 48, generator=gen)
    grads = {}
    for kind in ("dst", "ste"):
        wk = w.clone().requires_grad_()
        (masked_weight(wk, t, kind) * g).sum().backward()
        grads[kind] = wk.grad
    pruned = w.abs() <= t.unsqueeze(1)
    assert 0.3 < float(pruned.float().mean()) < 0.9
    torch.testing.assert_close(grads["ste"], g)  # every weight gets the full gradient
    dst_pruned, ste_pruned = grads["dst"][pruned].abs().mean(), grads["ste"][pruned].abs().mean()
    assert dst_pruned < ste_pruned / 5  # |W|·step'(x) <= 2·|W| << 1 for pruned (small) weights
    torch.testing.assert_close(grads["dst"][pruned], (g * w.abs() * step_surrogate_grad(w.abs() - 0.05))[pruned])


def test_masked_weight_ste_matches_autograd_function_and_runs_under_vmap() -> None:
    gen = torch.Generator().manual_seed(2)
    w0, t0 = torch.randn(6, 5, generator=gen) * 0.5, torch.rand(6, generator=gen) * 0.5 - 0.1
    up = torch.randn(6, 5, generator=gen)
    got = []
    for fn in (ThresholdMask.apply, lambda w, t: masked_weight(w, t, "ste")):
        w, t = w0.clone().requires_grad_(), t0.clone().requires_grad_()
        out = fn(w, t)
        (out * up).sum().backward()
        got.append((out.detach(), w.grad, t.grad))
    assert torch.equal(got[0][0], got[1][0]) and torch.equal(got[0][1], got[1][1])
    torch.testing.assert_close(got[1][2], got[0][2], rtol=1e-6, atol=1e-7)
    for kind in ("dst", "ste"):
        stacked = torch.func.vmap(lambda w, t: masked_weight(w, t, kind))(w0.expand(3, 6, 5), t0.expand(3, 6))
        assert torch.equal(stacked[2], got[0][0])
    with pytest.raises(ValueError, match="prune_gradient 'dpf'"):
        masked_weight(w0, t0, "dpf")


def test_reset_rule_and_optional_clamp() -> None:
    a, b = ThresholdMaskedLinear(10, 10), ThresholdMaskedLinear(10, 10)
    with torch.no_grad():
        a.weight.fill_(0.5)
        b.weight.fill_(0.5)
        a.threshold.copy_(torch.linspace(-1.0, 0.3, 10))  # negative ones: row kept whole
        b.threshold.fill_(0.6)  # prunes everything -> reset
    before = a.threshold.clone()
    assert reset_thresholds_([a, b], 0.01) == [1]
    assert torch.equal(a.threshold, before) and a.threshold.min() == -1.0  # DST: no clamp
    assert a.density() == 1.0 and torch.equal(b.threshold, torch.zeros(10))
    assert reset_thresholds_([a], 0.01, clamp=True) == []
    assert (a.threshold >= 0).all() and a.threshold[0] == 0 and a.density() == 1.0


def test_thresholds_are_not_clamped_unless_asked(fd) -> None:
    # Without the regulariser nothing pushes thresholds up; Adam moves each by ~lr per step
    # in the direction of its surrogate gradient, so some go below 0 (DST) unless clamped.
    params = {"lr": 1e-2, "local_epochs": 1.0, "prune_lambda": 0.0, "hypernetwork_enabled": False}
    mins = {}
    for clamp in (False, True):
        alg = PFLTPS(fd, MODEL, {**params, "prune_clamp": clamp}, seed=0)
        res = alg.client().local_update(0, alg.device_state(0), alg.downlink(0, 0), seed=1)
        mins[clamp] = min(float(t.min()) for t in res.state["thresholds"].values())
    assert mins[False] < 0.0
    assert mins[True] >= 0.0


def test_received_thresholds_that_empty_a_layer_are_reset_before_training(fd) -> None:
    alg = PFLTPS(fd, MODEL, {**TRAIN, "hypernetwork_enabled": False}, seed=0)
    down = alg.downlink(0, 0)
    names = [k for k in down.tensors if k.endswith(".threshold")]
    full = {k: torch.full_like(down.tensors[k], 10.0) for k in names}  # |W| << 10: every weight pruned
    full[names[1]] = torch.zeros_like(down.tensors[names[1]])  # ... except one layer, left dense
    res = alg.client().local_update(0, alg.device_state(0), type(down)(full, "fp16", {"round": 0}), seed=1)
    assert res.metrics["threshold_resets"] >= len(names) - 1
    assert res.metrics["ffl_density_start"] == 1.0  # DST trains from the reset (dense) layers
    assert 0.0 < res.metrics["ffl_density_mean"] <= 1.0


def test_prune_gradient_validated(fd) -> None:
    with pytest.raises(ValueError, match="prune_gradient 'dpf'.*allowed.*dst.*ste"):
        PFLTPS(fd, MODEL, {"prune_gradient": "dpf"}, seed=0)
    net = build_net(MODEL, (1, 28, 28), 10, PFLTPSConfig.from_params(
        {**PFLTPS.extra_params, "prune_gradient": "ste"}))
    assert {m.gradient for m in net.layers} == {"ste"}


def _density_after(fd, lam: float) -> tuple[float, int]:
    alg = PFLTPS(fd, MODEL, {**TRAIN, "prune_lambda": lam, "hypernetwork_enabled": False}, seed=1)
    res = run_rounds(alg, 2, devices=[0])[0]
    return res.metrics["ffl_density"], res.flops


def test_higher_lambda_gives_lower_density_and_flops(fd) -> None:
    dens = [_density_after(fd, lam) for lam in (0.0, 1e-3, 2e-2)]
    assert dens[0][0] > dens[1][0] > dens[2][0]
    assert dens[2][0] < 0.8  # density falls clearly at the high setting
    assert dens[0][1] > dens[1][1] > dens[2][1]  # reported FLOPs follow the density
