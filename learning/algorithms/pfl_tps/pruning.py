"""FFL adaptive pruning with trainable thresholds (Dynamic Sparse Training, Liu et al. ICLR 2020).

Every FFL linear layer gets one trainable threshold per output row, ``t`` (init 0). The
forward pass uses ``W ⊙ M`` with ``M_ij = step(x_ij)``, ``x_ij = |W_ij| − t_i``,
``step(x) = 1[x > 0]``. The step's derivative is replaced by DST's long-tailed surrogate::

    step'(x) = 2 − 4|x|  for |x| <= 0.4,   0.4  for 0.4 < |x| <= 1,   0 otherwise

Two gradients for the weights (``prune_gradient``), with ``g = ∂L/∂(W⊙M)``:

* ``"dst"`` (default) — DST's trainable masked layer: autograd through ``W · step(|W| − t)``,
  so ``∂L/∂W = g ⊙ M + g ⊙ W ⊙ step'(x) ⊙ sign(W)``. A pruned weight gets only the
  surrogate term (it still moves, and can come back), a kept one both terms.
* ``"ste"`` — straight-through, ``∂L/∂W = g`` for every weight, pruned or not: the dense
  feedback of Dynamic Pruning with Feedback (DPF, Lin et al. ICLR 2020). This was cosim's
  only variant before DST's gradient was added.

Both give the thresholds the surrogate gradient ``∂L/∂t_i = −Σ_j g_ij · W_ij · step'(x_ij)``
and both are trained with the sparsity regulariser ``λ Σ exp(−t)`` (``sparsity_penalty``).
As in DST the thresholds are not clamped (a negative threshold keeps every weight of its
row); ``prune_clamp: true`` clamps them to ``t >= 0`` after every optimizer step (cosim's
former rule). A layer keeping at most ``prune_reset_density`` (1 %) of its weights has its
thresholds reset to 0 (DST checks this at every forward; cosim checks it when a device
loads its thresholds and after every optimizer step, i.e. before every forward that trains).
Reference: github.com/junjieliu2910/DynamicSparseTraining, ``BinaryStep`` and ``MaskedMLP``.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from learning.models import ffl_linear_names

__all__ = [
    "DENSITY_MODES",
    "GRADIENTS",
    "step_surrogate_grad",
    "masked_weight",
    "ThresholdMask",
    "ThresholdMaskedLinear",
    "replace_ffl_linears",
    "masked_layers",
    "sparsity_penalty",
    "reset_thresholds_",
    "ffl_densities",
]

#: how FLOP savings are counted: every pruned weight, or only fully pruned rows.
DENSITY_MODES: tuple[str, ...] = ("density", "rows", "dense")
#: weight gradients of a masked layer: DST's (default) or straight-through (DPF-style).
GRADIENTS: tuple[str, ...] = ("dst", "ste")


def step_surrogate_grad(x: torch.Tensor) -> torch.Tensor:
    """Long-tailed surrogate derivative of the unit step (DST), elementwise, same shape as x."""
    ax = x.abs()
    return torch.where(ax <= 0.4, 2.0 - 4.0 * ax, torch.where(ax <= 1.0, torch.full_like(ax, 0.4),
                                                              torch.zeros_like(ax)))


def masked_weight(weight: torch.Tensor, threshold: torch.Tensor, gradient: str = "dst") -> torch.Tensor:
    """``W ⊙ 1[|W| > t]`` for weight (..., out, in) and threshold (..., out), with the
    gradients of ``gradient`` (``"dst"`` or ``"ste"``, see the module docstring).

    Written with plain differentiable operations (no ``autograd.Function``) so that it runs
    under ``torch.func.vmap``; the value is exactly ``W ⊙ M`` (every added term is a product
    with ``a − stop(a)``, which is exactly 0).
    """
    w, t = weight.detach(), threshold.detach()
    x0 = w.abs() - t.unsqueeze(-1)
    keep = (x0 > 0).to(w.dtype)
    slope = step_surrogate_grad(x0)
    if gradient == "dst":
        x = weight.abs() - threshold.unsqueeze(-1)
        return weight * (keep + slope * (x - x.detach()))  # step with derivative step'(x)
    if gradient == "ste":
        return weight + (w * keep - w) - (w * slope) * (threshold - t).unsqueeze(-1)
    raise ValueError(f"unknown prune_gradient {gradient!r}; allowed: {list(GRADIENTS)}")


class ThresholdMask(torch.autograd.Function):
    """Straight-through ``(W (out, in), t (out,)) -> W ⊙ 1[|W| > t[:, None]]`` written as an
    ``autograd.Function`` with an explicit backward: the reference that pins
    ``masked_weight(..., "ste")`` in the tests."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        x = weight.abs() - threshold.unsqueeze(1)
        ctx.save_for_backward(weight, x)
        return weight * (x > 0).to(weight.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        weight, x = ctx.saved_tensors
        grad_t = -(grad_out * weight * step_surrogate_grad(x)).sum(dim=1)
        return grad_out, grad_t


class ThresholdMaskedLinear(nn.Linear):
    """``nn.Linear`` whose weight is masked by trainable per-row thresholds.

    Attributes:
        weight: (out_features, in_features); bias: (out_features,) or None.
        threshold: (out_features,), initialised at 0 (dense).
        gradient: ``"dst"`` or ``"ste"`` (weight gradient, see the module docstring).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None,
                 gradient: str = "dst") -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        if gradient not in GRADIENTS:
            raise ValueError(f"unknown prune_gradient {gradient!r}; allowed: {list(GRADIENTS)}")
        self.gradient = gradient
        self.threshold = nn.Parameter(torch.zeros(out_features, device=device, dtype=dtype))

    @classmethod
    def from_linear(cls, linear: nn.Linear, gradient: str = "dst") -> "ThresholdMaskedLinear":
        """A masked copy of ``linear`` (weights copied, thresholds 0)."""
        out = cls(linear.in_features, linear.out_features, bias=linear.bias is not None,
                  device=linear.weight.device, dtype=linear.weight.dtype, gradient=gradient)
        with torch.no_grad():
            out.weight.copy_(linear.weight)
            if linear.bias is not None:
                out.bias.copy_(linear.bias)
        return out

    def mask(self) -> torch.Tensor:
        """Boolean mask, shape (out, in): ``|W| > t`` per row."""
        return self.weight.detach().abs() > self.threshold.detach().unsqueeze(1)

    def density(self) -> float:
        """Fraction of weights kept, in [0, 1]."""
        return float(self.mask().float().mean())

    def row_density(self) -> float:
        """Fraction of rows with at least one kept weight, in [0, 1]."""
        return float(self.mask().any(dim=1).float().mean())

    def masked_weight(self) -> torch.Tensor:
        """``W ⊙ M`` (differentiable in W and t, gradients per ``self.gradient``), shape (out, in)."""
        return masked_weight(self.weight, self.threshold, self.gradient)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., in) -> (..., out)."""
        return F.linear(x, self.masked_weight(), self.bias)


def replace_ffl_linears(model: nn.Module, gradient: str = "dst") -> list[str]:
    """Replace every FFL ``nn.Linear`` of a ViT by a ``ThresholdMaskedLinear`` (weight
    gradient ``gradient``) in place.

    Returns:
        The replaced module names in FFL order (block0.fc1, block0.fc2, block1.fc1, ...).
    """
    names = ffl_linear_names(model)
    for name in names:
        parent_name, leaf = name.rsplit(".", 1)
        parent = model.get_submodule(parent_name)
        old = getattr(parent, leaf)
        if not isinstance(old, ThresholdMaskedLinear):
            setattr(parent, leaf, ThresholdMaskedLinear.from_linear(old, gradient))
    return names


def masked_layers(model: nn.Module) -> list[tuple[str, ThresholdMaskedLinear]]:
    """(name, module) of every ``ThresholdMaskedLinear``, in module order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, ThresholdMaskedLinear)]


def sparsity_penalty(layers: Sequence[ThresholdMaskedLinear], lam: float) -> torch.Tensor:
    """The DST regulariser ``λ Σ_layers Σ_rows exp(−t)`` (scalar tensor)."""
    total = torch.zeros(())
    for layer in layers:
        total = total + torch.exp(-layer.threshold).sum()
    return lam * total


@torch.no_grad()
def reset_thresholds_(layers: Sequence[ThresholdMaskedLinear], reset_density: float = 0.01,
                      clamp: bool = False) -> list[int]:
    """DST's reset: the thresholds of a layer keeping at most ``reset_density`` of its weights
    are set to 0; with ``clamp`` every threshold is first clamped to >= 0 (not DST).
    Returns the indices (into ``layers``) that were reset."""
    reset: list[int] = []
    for i, layer in enumerate(layers):
        if clamp:
            layer.threshold.clamp_(min=0.0)
        if layer.density() <= reset_density:
            layer.threshold.zero_()
            reset.append(i)
    return reset


def ffl_densities(layers: Sequence[ThresholdMaskedLinear], mode: str = "density") -> list[float]:
    """Per-layer density for FLOP counting: kept weights (``"density"``), rows with any
    kept weight (``"rows"``: only fully pruned rows save compute) or 1 (``"dense"``: a
    dense kernel multiplies the masked weights, pruning saves no compute)."""
    if mode == "dense":
        return [1.0] * len(layers)
    if mode == "density":
        return [layer.density() for layer in layers]
    if mode == "rows":
        return [layer.row_density() for layer in layers]
    raise ValueError(f"unknown pruning_flops mode {mode!r}; allowed: {list(DENSITY_MODES)}")
