"""The ViT forward pass of many devices at once, written directly on stacked parameters.

``stacked_vit_forward(vit, params, x)`` computes, for every device ``j`` of a stack,
``functional_call(vit, {name: params[name][j]}, x[j])`` — the same value as a ``vmap``
of the per-device forward — but with batched kernels chosen by hand: every linear layer
is one ``baddbmm`` over the device axis (bias folded in), LayerNorm is a plain
normalisation plus one ``addcmul`` with the per-device affine, and attention runs on
``(devices, batch, heads)`` as one batch dimension. Profiling the ``vmap`` path on
urban_50dev's ViT showed its batching rules spending more time in bias adds, copies of
permuted views and zero-filled gradient buffers than in the matrix products themselves;
this path does only the products and what they need.

Per-tensor hooks let an algorithm change a weight before use (PFL-TPS masks its FFL
weights); everything else is the ViT of ``learning.models.vit`` (no dropout).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from learning.models.vit import ViT

__all__ = ["stacked_vit_forward", "supports_stacked"]

WeightHook = Callable[[str, torch.Tensor], torch.Tensor]


def supports_stacked(model: nn.Module) -> bool:
    """Whether ``stacked_vit_forward`` computes ``model``'s forward (a ViT without dropout)."""
    return isinstance(model, ViT) and not any(isinstance(m, nn.Dropout) and m.p > 0 for m in model.modules())


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """x (m, ..., in), weight (m, out, in), bias (m, out) -> (m, ..., out)."""
    m, out = weight.shape[0], weight.shape[1]
    flat = x.reshape(m, -1, x.shape[-1])
    y = torch.baddbmm(bias.unsqueeze(1), flat, weight.transpose(1, 2))
    return y.view(*x.shape[:-1], out)


def _layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """LayerNorm over the last axis with per-device affine: x (m, ..., d), weight/bias (m, d)."""
    shape = (weight.shape[0],) + (1,) * (x.dim() - 2) + (weight.shape[1],)
    return torch.addcmul(bias.view(shape), F.layer_norm(x, x.shape[-1:], eps=eps), weight.view(shape))


def stacked_vit_forward(vit: ViT, params: dict[str, torch.Tensor], x: torch.Tensor,
                        weight_hook: dict[str, WeightHook] | None = None) -> torch.Tensor:
    """Logits (m, B, classes) of m devices' ViTs on their own images x (m, B, C, H, W).

    Args:
        vit: the architecture (its parameters are not used, only its sizes).
        params: every parameter of ``vit`` by name, stacked: (m, *shape).
        x: one batch per device.
        weight_hook: name -> fn(name, stacked weight) -> weight used in the forward.
    """
    hooks = weight_hook or {}

    def w(name: str) -> torch.Tensor:
        t = params[name]
        return hooks[name](name, t) if name in hooks else t

    m, b = x.shape[0], x.shape[1]
    c, h, wd = vit.input_shape
    p = vit.patch_size
    patches = x.reshape(m, b, c, h // p, p, wd // p, p).permute(0, 1, 3, 5, 2, 4, 6)
    patches = patches.reshape(m, b, vit.n_patches, c * p * p)
    tokens = _linear(patches, w("patch_embed.weight"), w("patch_embed.bias"))
    dim = tokens.shape[-1]
    cls = w("cls_token").view(m, 1, 1, dim).expand(m, b, 1, dim)
    z = torch.cat([cls, tokens], dim=2) + w("pos_embed").view(m, 1, -1, dim)
    t = z.shape[2]
    for i, block in enumerate(vit.blocks):
        pre = f"blocks.{i}."
        sal = block.sal
        y = _layer_norm(z, w(pre + "norm1.weight"), w(pre + "norm1.bias"), block.norm1.eps)
        qkv = _linear(y, w(pre + "sal.qkv.weight"), w(pre + "sal.qkv.bias"))
        qkv = qkv.view(m, b, t, 3, sal.heads, sal.head_dim)
        q, k, v = (z.transpose(2, 3) for z in qkv.unbind(3))  # each (m, b, heads, t, head_dim)
        attn = torch.matmul(q * sal.scale, k.transpose(-2, -1)).softmax(dim=-1)
        out = torch.matmul(attn, v).transpose(2, 3).reshape(m, b, t, dim)
        z = z + _linear(out, w(pre + "sal.proj.weight"), w(pre + "sal.proj.bias"))
        y = _layer_norm(z, w(pre + "norm2.weight"), w(pre + "norm2.bias"), block.norm2.eps)
        y = F.gelu(_linear(y, w(pre + "ffl.fc1.weight"), w(pre + "ffl.fc1.bias")))
        z = z + _linear(y, w(pre + "ffl.fc2.weight"), w(pre + "ffl.fc2.bias"))
    cls_out = _layer_norm(z[:, :, 0], w("norm.weight"), w("norm.bias"), vit.norm.eps)
    return _linear(cls_out, w("head.weight"), w("head.bias"))
