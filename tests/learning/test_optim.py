"""``learning.optim.Optimizer`` is bit-identical to ``torch.optim.SGD`` / ``Adam`` (CPU,
single-tensor path), step after step, with parameter groups, weight decay, momentum and
parameters that have no gradient on some steps."""

from __future__ import annotations

import pickle

import pytest
import torch

from learning.optim import Optimizer


def _params(seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=gen).requires_grad_(True) for shape in ((5, 3), (3,), (2, 2, 2))]


def _groups(params: list[torch.Tensor]) -> list[dict]:
    return [{"params": params[:2], "weight_decay": 0.01}, {"params": params[2:], "lr": 0.3, "weight_decay": 0.0}]


@pytest.mark.parametrize("kind,kwargs", [
    ("sgd", {"lr": 0.05, "momentum": 0.9}),
    ("sgd", {"lr": 0.1, "momentum": 0.0, "weight_decay": 1e-3}),
    ("adam", {"lr": 1e-2}),
    ("adam", {"lr": 3e-3, "weight_decay": 1e-4}),
])
@pytest.mark.parametrize("grouped", [False, True])
def test_optimizer_equals_torch_optim_bitwise(kind: str, kwargs: dict, grouped: bool) -> None:
    ours, theirs = _params(0), _params(0)
    mine = Optimizer(kind, _groups(ours) if grouped else ours, **kwargs)
    ref_cls = torch.optim.SGD if kind == "sgd" else torch.optim.Adam
    ref = ref_cls(_groups(theirs) if grouped else theirs, **kwargs)
    gen = torch.Generator().manual_seed(1)
    for step in range(7):
        target = [torch.randn(p.shape, generator=gen) for p in ours]
        for opt, params in ((mine, ours), (ref, theirs)):
            opt.zero_grad(set_to_none=True)
            # the last tensor has no gradient on odd steps (torch skips it, state untouched)
            used = params if step % 2 == 0 else params[:2]
            loss = sum(((p - t) ** 2 * (1 + i)).sum() for i, (p, t) in enumerate(zip(used, target)))
            loss.backward()
            opt.step()
        for a, b in zip(ours, theirs):
            assert torch.equal(a, b), f"{kind} {kwargs} step {step}"


def test_optimizer_zero_grad_and_pickle() -> None:
    params = _params(2)
    opt = Optimizer("sgd", params, lr=0.1, momentum=0.9)
    sum((p**2).sum() for p in params).backward()
    opt.step()
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in params)
    opt.zero_grad()
    assert all(p.grad is None for p in params)
    # a pickled optimizer keeps its momentum buffers bound to its (pickled) parameters
    params2, opt2 = pickle.loads(pickle.dumps((params, opt)))
    assert all(torch.equal(opt2.state[p]["momentum_buffer"], opt.state[q]["momentum_buffer"])
               for p, q in zip(params2, params))
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        Optimizer("rmsprop", params, lr=0.1)


def test_training_does_not_import_torch_optim_machinery() -> None:
    # Building and stepping our optimizer must not pull in torch._dynamo (seconds of start-up).
    import subprocess
    import sys

    code = ("import sys, torch; from learning.optim import Optimizer; p = torch.zeros(3, requires_grad=True); "
            "o = Optimizer('adam', [p], lr=0.1); (p - 1).pow(2).sum().backward(); o.step(); o.zero_grad(); "
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
