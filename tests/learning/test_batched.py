"""Batched executor: functional optimizers equal torch.optim step by step; batched local
updates equal the sequential ones (ragged data, FedAvg / local / PFL-TPS); fallbacks."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from learning.algorithms import make_algorithm
from learning.algorithms.base import LocalResult
from learning.algorithms.fedavg import FedAvgClient
from learning.algorithms.pfl_tps.client import PFLTPSClient
from learning.execution.batched import BatchedExecutor, StackedOptimizer, adam_step_, batched_plan, sgd_step_
from learning.algorithms.training import TrainParams
from learning.execution import SequentialExecutor, make_executor
from batched_setup import DEVICES, MODEL, data  # noqa: F401 (fixture: used by name)
from batched_setup import assert_close_results as _close
from batched_setup import tasks as _tasks


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_functional_optimizers_equal_torch_optim_step_by_step(weight_decay: float) -> None:
    gen = torch.Generator().manual_seed(0)
    for kind in ("adam", "sgd"):
        ref = [torch.randn(4, 3, generator=gen), torch.randn(5, generator=gen)]
        mine = [p.clone() for p in ref]
        params = [torch.nn.Parameter(p) for p in ref]
        opt = (torch.optim.Adam(params, lr=1e-2, weight_decay=weight_decay) if kind == "adam"
               else torch.optim.SGD(params, lr=1e-2, momentum=0.9, weight_decay=weight_decay))
        m = [torch.zeros_like(p) for p in mine]
        v = [torch.zeros_like(p) for p in mine]
        bufs: list[Any] = [None, None]
        for step in range(1, 6):
            grads = [torch.randn(p.shape, generator=gen) for p in mine]
            for p, g in zip(params, grads):
                p.grad = g.clone()
            opt.step()
            for i, (p, g) in enumerate(zip(mine, grads)):
                if kind == "adam":
                    adam_step_(p, g, m[i], v[i], step, 1e-2, weight_decay)
                else:
                    bufs[i] = sgd_step_(p, g, bufs[i], 1e-2, 0.9, weight_decay)
            for p, q in zip(params, mine):
                assert torch.equal(p.detach(), q), (kind, step)


def test_stacked_optimizer_prefix_steps_leave_finished_devices_untouched() -> None:
    gen = torch.Generator().manual_seed(1)
    steps = [4, 2, 1]  # device d trains steps[d] steps (sorted longest first)
    for kind in ("adam", "sgd"):
        hp = TrainParams(lr=1e-2, optimizer=kind, weight_decay=1e-3)
        init = torch.randn(3, 6, generator=gen)
        stacked = {"w": init.clone()}
        opt = StackedOptimizer(stacked, {"w": (hp.lr, hp.weight_decay)}, hp)
        grads = torch.randn(4, 3, 6, generator=gen)
        for k in range(4):
            m = sum(1 for s in steps if s > k)
            before = {"w": stacked["w"][m:].clone()}
            state_before = [t[m:].clone() for t in (opt.exp_avg["w"], opt.exp_avg_sq["w"])] if kind == "adam" else []
            opt.step(k + 1, m, {"w": grads[k, :m]})
            assert torch.equal(stacked["w"][m:], before["w"])  # finished devices: exact no-op
            if kind == "adam":
                assert all(torch.equal(t[m:], s) for t, s in zip((opt.exp_avg["w"], opt.exp_avg_sq["w"]), state_before))
        for d, n in enumerate(steps):
            p = torch.nn.Parameter(init[d].clone())
            ref = (torch.optim.Adam([p], lr=1e-2, weight_decay=1e-3) if kind == "adam"
                   else torch.optim.SGD([p], lr=1e-2, momentum=0.9, weight_decay=1e-3))
            for k in range(n):
                p.grad = grads[k, d].clone()
                ref.step()
            assert torch.equal(p.detach(), stacked["w"][d]), (kind, d)


@pytest.mark.parametrize("name", ["fedavg", "local"])
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_plain_models_batched_equal_sequential(data: Any, name: str, optimizer: str) -> None:
    params = {"local_epochs": 1.5, "batch_size": 16, "optimizer": optimizer, "weight_decay": 1e-3}
    alg = make_algorithm(name, data, MODEL, params, seed=4)
    tasks = _tasks(alg, DEVICES, 1)
    want = SequentialExecutor().run(alg.client(), tasks)
    with make_executor("batched") as ex:
        assert isinstance(ex, BatchedExecutor)
        got = ex.run(alg.client(), tasks)
    assert [r.device for r in got] == DEVICES
    assert len({r.metrics["samples_processed"] for r in got}) > 2  # really ragged
    for a, b in zip(want, got):
        _close(a, b, adam_sal=optimizer == "adam")


def test_fedavg_plan_keeps_the_uplink_encoding(data: Any) -> None:
    # FedAvg's client replies in uplink_encoding (fp16: rounded values, half the bytes).
    alg = make_algorithm("fedavg", data, MODEL, {"batch_size": 16, "uplink_encoding": "fp16"}, seed=4)
    tasks = _tasks(alg, [3, 0], 0)
    want, got = SequentialExecutor().run(alg.client(), tasks), BatchedExecutor().run(alg.client(), tasks)
    for a, b in zip(want, got):
        assert a.uplink.encoding == "fp16"
        _close(a, b, atol=1e-4)  # fp16-rounded: a float difference may cross one rounding step


@pytest.mark.parametrize("extra", [
    {},  # linear SAL (embedding and personal residual trained), Adam
    {"sal_residual": False},  # linear SAL, only the embedding trained
    {"sal_update": "delta", "optimizer": "sgd"},  # SAL trained directly
    {"hypernetwork_enabled": False, "prune_lambda": 0.05, "prune_reset_density": 0.9},  # forces resets
    {"hypernetwork_enabled": False, "prune_gradient": "ste", "prune_clamp": True},  # the former rules
    {"hypernetwork_enabled": False, "prune_lambda": 0.0},  # thresholds go below 0 (no clamp)
    {"hypernetwork_enabled": False, "prune_lambda": 0.05, "pruning_flops": "rows"},  # FLOPs of kept rows
    {"hypernetwork_enabled": False, "pruning_flops": "dense"},  # FLOPs of a dense kernel
])
def test_pfl_tps_batched_equals_sequential_over_rounds(data: Any, extra: dict[str, Any]) -> None:
    alg = make_algorithm("pfl_tps", data, MODEL, {"local_epochs": 1.5, "batch_size": 16, **extra}, seed=4)
    seq, bat = SequentialExecutor(), BatchedExecutor()
    resets = 0.0
    for r in range(2):  # round 1 starts from trained, averaged (non-zero) thresholds
        tasks = _tasks(alg, [3, 0, 2, 1, 4], r)
        want, got = seq.run(alg.client(), tasks), bat.run(alg.client(), tasks)
        for a, b in zip(want, got):
            _close(a, b, adam_sal=not alg.cfg.hypernetwork_enabled)
            resets += a.metrics["threshold_resets"]
        for res in want:
            alg.commit(res)
        alg.aggregate({res.device: (res.uplink, res.samples) for res in want}, r)
    if extra.get("prune_lambda") == 0.0:
        assert min(float(t.min()) for t in got[0].state["thresholds"].values()) < 0.0
    if "prune_reset_density" in extra:
        assert resets > 0  # the reset path was exercised


class _CustomMetricClient(FedAvgClient):
    def local_update(self, device: int, state: Any, payload: Any, seed: int) -> LocalResult:
        result = super().local_update(device, state, payload, seed)
        result.metrics["custom"] = 1.0
        return result


def test_fallbacks_are_sequential(data: Any) -> None:
    # A client without a plan: a subclass of FedAvg's client with its own update (plans are
    # looked up by exact type, so it is not batched as plain FedAvg).
    alg = make_algorithm("fedavg", data, MODEL, {"batch_size": 16}, seed=1)
    client = _CustomMetricClient(alg.data, alg.model_config, {**alg.params, "lr": alg.params["lr"] / 2})
    assert batched_plan(client) is None
    tasks = _tasks(alg, [1, 0], 0)
    want, got = SequentialExecutor().run(client, tasks), BatchedExecutor().run(client, tasks)
    assert all(r.metrics.get("custom") == 1.0 for r in got)
    for a, b in zip(want, got):
        _close(a, b, atol=0)
    # Dropout cannot be reproduced per device under vmap: sequential.
    drop = make_algorithm("fedavg", data, {**MODEL, "dropout": 0.1}, {"batch_size": 16}, seed=1)
    assert batched_plan(drop.client()) is None
    pfl = make_algorithm("pfl_tps", data, MODEL, {}, seed=1)
    assert batched_plan(pfl.client()) is not None
    # A subclass of PFL-TPS's client may change the update: not batched unless it brings a plan.
    sub = type("SubPFLTPSClient", (PFLTPSClient,), {})(pfl.data, pfl.model_config, pfl.params)
    assert batched_plan(sub) is None


PLAN_MODULES = ("learning.algorithms.pfl_tps.batched", "learning.algorithms.pfedhn_batched",
                "learning.algorithms.fedtp_batched")


@pytest.mark.parametrize("first", [*PLAN_MODULES, "learning.execution.batched", "learning.execution.plain_plan"])
def test_execution_and_algorithm_plans_import_without_cycle(first: str) -> None:
    # Each side imports on its own, in a fresh interpreter; the executor (and the plain plan
    # the algorithms' plans build on) never imports an algorithm's plan module (it asks the
    # client, which imports its plan lazily), so no cycle exists.
    import subprocess
    import sys

    code = (f"import sys, importlib; importlib.import_module({first!r}); "
            f"print(sorted(m for m in {PLAN_MODULES!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str([first] if first in PLAN_MODULES else [])


@pytest.mark.parametrize("name", ["fedavg", "pfl_tps"])
def test_stacked_vit_forward_equals_vmapped_forward_and_gradients(data: Any, name: str) -> None:
    model = {**MODEL, "depth": 2, "heads": 2}
    alg = make_algorithm(name, data, model, {"batch_size": 8}, seed=3)
    plan = batched_plan(alg.client())
    assert plan is not None and plan.stacked
    inits = [plan.prepare(t) for t in _tasks(alg, [0, 1, 2], 0)]
    gen = torch.Generator().manual_seed(0)
    # Different values per device (so a mix-up between devices shows), thresholds > 0.
    params = {n: torch.stack([i.params[n] + 0.05 * torch.randn(i.params[n].shape, generator=gen) for i in inits])
              for n in inits[0].params}
    params = {n: (p.abs() * 0.5 if n.endswith(".threshold") else p).requires_grad_(True) for n, p in params.items()}
    consts = {n: torch.stack([i.consts[n] for i in inits]) for n in inits[0].consts}
    x = torch.stack([i.x[:8] for i in inits])
    want = torch.func.vmap(plan.forward, randomness="same")(params, consts, x)
    got = plan.forward_stacked(params, consts, x)
    assert got.shape == (3, 8, data.num_classes)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    probe = torch.randn(got.shape, generator=gen)
    g_want = torch.autograd.grad((want * probe).sum(), list(params.values()))
    g_got = torch.autograd.grad((got * probe).sum(), list(params.values()))
    for n, a, b in zip(params, g_want, g_got):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6, msg=lambda m, n=n: f"{n}: {m}")


def test_tasks_split_into_near_equal_stacks_give_the_same_results(data: Any) -> None:
    alg = make_algorithm("local", data, MODEL, {"batch_size": 16}, seed=2)
    tasks = _tasks(alg, DEVICES, 0)  # 6 tasks: stacks of 2 with max_devices=2, 3+3 with 4
    whole = BatchedExecutor().run(alg.client(), tasks)
    for cap in (2, 4):
        for a, b in zip(whole, BatchedExecutor(max_devices=cap).run(alg.client(), tasks)):
            _close(a, b)


@pytest.mark.parametrize("residual", [True, False])
def test_pfl_tps_linear_theta_equals_received_jacobian_product(data: Any, residual: bool) -> None:
    # The plan keeps J transposed; θ0 + J (e − ê) [+ r] must still be the product with the
    # Jacobian as received, per device and stacked (distinct embeddings and residuals per device).
    alg = make_algorithm("pfl_tps", data, MODEL, {"sal_residual": residual}, seed=5)
    plan = batched_plan(alg.client())
    assert plan is not None and plan.linear and plan.residual == residual
    tasks = _tasks(alg, [0, 1, 2], 0)
    inits = [plan.prepare(t) for t in tasks]
    gen = torch.Generator().manual_seed(0)
    for init in inits:
        for name in [n for n in ("_embedding", "_sal_residual") if n in init.params]:
            init.params[name] = init.params[name] + torch.randn(init.params[name].shape, generator=gen)
    stacked = plan.linear_theta({n: torch.stack([i.params[n] for i in inits]) for n in inits[0].params},
                                {n: torch.stack([i.consts[n] for i in inits]) for n in inits[0].consts})
    for j, ((_, _, payload, _), init) in enumerate(zip(tasks, inits)):
        got = plan.linear_theta(init.params, init.consts)
        t = {k: v.double() for k, v in payload.tensors.items()}
        want = t["sal_theta"] + t["sal_jacobian"] @ (init.params["_embedding"].double() - t["embedding_anchor"])
        if residual:
            want = want + init.params["_sal_residual"].double()
        assert float((want - t["sal_theta"]).abs().max()) > 1e-3  # the product is not negligible
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(stacked[j].double(), want, rtol=1e-5, atol=1e-5)
