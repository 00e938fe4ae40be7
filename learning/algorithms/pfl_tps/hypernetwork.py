"""Server-side hypernetwork HN_φ: device embedding e (d,) -> that device's SAL parameters.

Architecture (pFedHN, Shamsian et al. 2021; FedTP, Li et al.): an MLP trunk
``e -> [Linear -> ReLU] x layers`` of width ``hidden``, then one linear head per SAL
tensor (qkv.weight, qkv.bias, proj.weight, proj.bias of every block). The heads'
outputs, flattened and concatenated in ``SalSpec`` order, form θ (n_sal,).

Initialisation (from an explicit generator, no global RNG): trunk weights He-normal,
biases 0; head biases = a ViT-style initialisation of the SAL tensors (truncated normal
std 0.02 for weights, 0 for biases); head weights N(0, (0.1 / sqrt(hidden))²). So
HN(e) is a standard SAL initialisation plus a small device-specific term, and the
Jacobian ∂θ/∂e has entries of order 0.1/sqrt(d).

The server update (``hn_vjp``) is the pFedHN rule: with Δθ = θ_trained − θ_sent, the
gradient of φ (and optionally e) is the vector–Jacobian product of θ(e) with −Δθ.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from learning.models import param_groups

__all__ = ["SalSpec", "HyperNetwork", "hn_vjp"]

_HEAD_STD = 0.1  # head weight std x sqrt(hidden)
_SAL_INIT_STD = 0.02  # matches learning.models.vit.init_vit_


@dataclass(frozen=True)
class SalSpec:
    """Names and shapes of a model's SAL parameters, in ``named_parameters`` order."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    @classmethod
    def from_model(cls, model: nn.Module) -> "SalSpec":
        """The SAL parameters of a ViT (``param_groups(model)["sal"]``)."""
        params = dict(model.named_parameters())
        names = tuple(param_groups(model)["sal"])
        return cls(names, tuple(tuple(params[n].shape) for n in names))

    @property
    def numels(self) -> list[int]:
        """Number of elements of each tensor."""
        return [int(torch.Size(s).numel()) for s in self.shapes]

    @property
    def total(self) -> int:
        """n_sal: total number of SAL parameters."""
        return sum(self.numels)

    def split(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Flat θ (n_sal,) -> name -> tensor of its shape (views, differentiable)."""
        if flat.shape != (self.total,):
            raise ValueError(f"expected flat SAL vector of shape ({self.total},), got {tuple(flat.shape)}")
        parts = torch.split(flat, self.numels)
        return {n: p.reshape(s) for n, p, s in zip(self.names, parts, self.shapes)}

    def flatten(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """name -> tensor -> flat (n_sal,) in spec order."""
        return torch.cat([tensors[n].reshape(-1) for n in self.names])


class HyperNetwork(nn.Module):
    """MLP trunk + one linear head per SAL tensor.

    Args:
        spec: the SAL tensors to generate.
        embedding_dim: d, the width of a device embedding.
        hidden: trunk width.
        layers: number of Linear+ReLU trunk layers (>= 1).
        generator: source of the initial parameters.
    """

    def __init__(self, spec: SalSpec, embedding_dim: int, hidden: int, layers: int,
                 generator: torch.Generator) -> None:
        super().__init__()
        if embedding_dim < 1 or hidden < 1 or layers < 1:
            raise ValueError(f"need embedding_dim, hidden, layers >= 1, got {embedding_dim}, {hidden}, {layers}")
        self.spec = spec
        self.embedding_dim = int(embedding_dim)
        trunk: list[nn.Module] = []
        width = embedding_dim
        for _ in range(layers):
            trunk += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.trunk = nn.Sequential(*trunk)
        self.heads = nn.ModuleList(nn.Linear(hidden, n) for n in spec.numels)
        self._init(generator)

    @torch.no_grad()
    def _init(self, gen: torch.Generator) -> None:
        for mod in self.trunk:
            if isinstance(mod, nn.Linear):
                std = (2.0 / mod.in_features) ** 0.5
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=gen) * std)
                mod.bias.zero_()
        for head, name in zip(self.heads, self.spec.names):
            head.weight.copy_(torch.randn(head.weight.shape, generator=gen) * (_HEAD_STD / head.in_features**0.5))
            if name.endswith("bias"):
                head.bias.zero_()
            else:
                draw = torch.randn(head.bias.shape, generator=gen).clamp_(-2.0, 2.0)
                head.bias.copy_(draw * _SAL_INIT_STD)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        """Embedding e (d,) -> flat SAL parameters θ (n_sal,)."""
        h = self.trunk(e)
        return torch.cat([head(h) for head in self.heads])

    def generate(self, e: torch.Tensor) -> dict[str, torch.Tensor]:
        """Embedding e (d,) -> name -> SAL tensor."""
        return self.spec.split(self(e))

    @torch.no_grad()
    def jacobian(self, e: torch.Tensor) -> torch.Tensor:
        """J = ∂θ/∂e at e, shape (n_sal, d), in closed form.

        Forward mode by hand: the d tangents (rows of the identity) go through each Linear
        (``T @ Wᵀ``) and ReLU (``T ⊙ [pre > 0]``) and the heads, and J is the transposed
        (d, n_sal) result. These are the operations ``torch.func.jacfwd`` runs under
        ``vmap``, in the same order, so J is bit for bit its value and layout (tested), at
        about a quarter of its time and without its import of ``torch._dynamo`` (seconds,
        on the first downlink of a run).
        """
        x = e.detach()
        tangents = torch.eye(x.shape[0], dtype=x.dtype)
        pre = x
        for mod in self.trunk:
            if isinstance(mod, nn.Linear):
                pre = mod(x)
                tangents = tangents @ mod.weight.t()
            else:  # ReLU
                tangents = tangents * (pre > 0).to(tangents.dtype)
                x = mod(pre)
        return torch.cat([tangents @ head.weight.t() for head in self.heads], dim=1).t()


def hn_vjp(hn: HyperNetwork, e: torch.Tensor, delta_theta: torch.Tensor,
           wrt_embedding: bool = False) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """pFedHN gradients: ``autograd.grad(θ(e), φ [, e], grad_outputs=−Δθ)``.

    Args:
        hn: the hypernetwork (φ = its parameters).
        e: the device's embedding the θ was generated from, (d,).
        delta_theta: Δθ = θ_trained − θ_sent, (n_sal,).
        wrt_embedding: also return the gradient with respect to e (delta mode).

    Returns:
        (gradients of ``hn.parameters()`` in order, gradient of e or None).
    """
    params = list(hn.parameters())
    e = e.detach().clone().requires_grad_(wrt_embedding)
    with torch.enable_grad():
        theta = hn(e)
        inputs = params + ([e] if wrt_embedding else [])
        # The VJP as the gradient of the scalar <θ, −Δθ>: the product's backward multiplies
        # −Δθ by exactly 1, so this is grad_outputs=−Δθ bit for bit, without the check of a
        # tensor grad_outputs that imports sympy (0.2-0.4 s) on a run's first server update.
        weighted = (theta * -delta_theta.detach().to(theta.dtype)).sum()
        grads = torch.autograd.grad(weighted, inputs)
    if wrt_embedding:
        return list(grads[:-1]), grads[-1]
    return list(grads), None
