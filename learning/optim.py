"""Adam and SGD without ``torch.optim``: the same arithmetic, none of its start-up cost.

``torch.optim``'s optimizers import ``torch._dynamo`` (and with it sympy and pandas) the
first time one is built or stepped: 1.5-3 s of a short run's start-up on a 2-core
machine, before a single sample is trained. ``Optimizer`` here does exactly the
operations of ``torch.optim.SGD`` / ``torch.optim.Adam``'s single-tensor path (the path
torch takes for CPU tensors: no foreach/fused kernels on CPU), so parameters after every
step are bit-identical to torch's (pinned by a test), and it keeps the small surface the
learning core uses: ``param_groups`` (list of dicts with ``params``, ``lr``,
``weight_decay``, ...), ``state``, ``zero_grad(set_to_none)`` and ``step()``.

``adam_step_`` / ``sgd_step_`` are the per-tensor updates, also used on stacked
per-device tensors by the batched executor (``learning.execution.batched``).
"""

from __future__ import annotations

from typing import Any, Iterable

import torch

__all__ = ["ADAM_BETAS", "ADAM_EPS", "Optimizer", "adam_step_", "sgd_step_"]

ADAM_BETAS: tuple[float, float] = (0.9, 0.999)  # torch.optim.Adam defaults
ADAM_EPS: float = 1e-8
KINDS = ("adam", "sgd")


@torch.no_grad()
def adam_step_(param: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
               step: int, lr: float, weight_decay: float = 0.0, betas: tuple[float, float] = ADAM_BETAS,
               eps: float = ADAM_EPS) -> None:
    """One Adam step in place, the same operations as ``torch.optim.Adam``'s single-tensor
    path (L2 weight decay, no amsgrad); ``step`` counts this step (1 on the first)."""
    beta1, beta2 = betas
    if weight_decay != 0:
        grad = grad.add(param, alpha=weight_decay)
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    step_size = lr / (1 - beta1**step)
    denom = (exp_avg_sq.sqrt() / (1 - beta2**step) ** 0.5).add_(eps)
    param.addcdiv_(exp_avg, denom, value=-step_size)


@torch.no_grad()
def sgd_step_(param: torch.Tensor, grad: torch.Tensor, buf: torch.Tensor | None, lr: float, momentum: float = 0.0,
              weight_decay: float = 0.0) -> torch.Tensor | None:
    """One SGD step in place as ``torch.optim.SGD`` (no dampening, no Nesterov); returns the
    momentum buffer (created from the gradient on the first step, None without momentum)."""
    if weight_decay != 0:
        grad = grad.add(param, alpha=weight_decay)
    if momentum != 0:
        if buf is None:
            buf = grad.detach().clone()
        else:
            buf.mul_(momentum).add_(grad)
        grad = buf
    param.add_(grad, alpha=-lr)
    return buf


class Optimizer:
    """``torch.optim.SGD`` (``kind="sgd"``) or ``torch.optim.Adam`` (``kind="adam"``), same results.

    Args:
        kind: ``"sgd"`` or ``"adam"``.
        params: tensors, or parameter groups (dicts with ``params`` and optional ``lr``,
            ``weight_decay``, ``momentum`` overriding the defaults below).
        lr: learning rate (default of every group).
        momentum: SGD momentum (ignored by Adam).
        weight_decay: L2 penalty added to the gradient (as torch's ``weight_decay``).
        betas, eps: Adam's coefficients (torch's defaults).
    """

    def __init__(self, kind: str, params: Iterable[Any], lr: float, momentum: float = 0.0,
                 weight_decay: float = 0.0, betas: tuple[float, float] = ADAM_BETAS, eps: float = ADAM_EPS) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown optimizer {kind!r}; allowed: {list(KINDS)}")
        if not lr >= 0:
            raise ValueError(f"optimizer lr must be >= 0, got {lr}")
        self.kind = kind
        self.defaults = {"lr": float(lr), "momentum": float(momentum), "weight_decay": float(weight_decay),
                         "betas": tuple(betas), "eps": float(eps)}
        items = list(params)
        groups = items if items and isinstance(items[0], dict) else [{"params": items}]
        self.param_groups: list[dict[str, Any]] = []
        for group in groups:
            full = {**self.defaults, **group}
            full["params"] = list(group["params"])
            self.param_groups.append(full)
        self.state: dict[torch.Tensor, dict[str, Any]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop (``set_to_none``) or zero every parameter's gradient, as torch does."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    if p.grad.grad_fn is not None:
                        p.grad.detach_()
                    else:
                        p.grad.requires_grad_(False)
                    p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient (in group order)."""
        for group in self.param_groups:
            lr, wd = group["lr"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state.setdefault(p, {})
                if self.kind == "sgd":
                    buf = sgd_step_(p, p.grad, state.get("momentum_buffer"), lr, group["momentum"], wd)
                    if buf is not None:
                        state["momentum_buffer"] = buf
                    continue
                if not state:
                    state.update(step=0, exp_avg=torch.zeros_like(p, memory_format=torch.preserve_format),
                                 exp_avg_sq=torch.zeros_like(p, memory_format=torch.preserve_format))
                state["step"] += 1
                adam_step_(p, p.grad, state["exp_avg"], state["exp_avg_sq"], state["step"], lr, wd,
                           group["betas"], group["eps"])
