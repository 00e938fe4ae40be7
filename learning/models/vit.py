"""A small Vision Transformer (ViT) whose every matmul is visible to FLOP counting.

Layout (names matter: PFL-TPS and ``param_groups`` rely on them)::

    patch_embed : Linear(C*p*p, dim) on non-overlapping p x p patches
    cls_token   : (1, 1, dim);  pos_embed : (1, 1 + n_patches, dim)
    blocks[i]   : Block(norm1, sal=SelfAttention(qkv, proj), norm2, ffl=FeedForward(fc1, fc2))
    norm        : LayerNorm(dim);  head : Linear(dim, num_classes) on the cls token

Attention is written with explicit ``matmul`` so ``torch.utils.flop_counter`` counts it,
and the FFL linear layers are plain ``nn.Linear`` so a pruning wrapper can later replace
their weight by a masked weight.

Parameters are initialised from an explicit ``torch.Generator`` (truncated-normal
std 0.02 for weights and embeddings, zeros for biases, ones/zeros for LayerNorm), never
from the global RNG: the module is built on the ``meta`` device and then materialised.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["ViT", "Block", "SelfAttention", "FeedForward", "init_vit_"]


class SelfAttention(nn.Module):
    """Multi-head self-attention (SAL) with explicit matmuls.

    Args:
        dim: token width.
        heads: number of heads; must divide ``dim``.
        dropout: dropout probability on the attention weights and the output.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads != 0:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, tokens, dim) -> (batch, tokens, dim)."""
        b, t, d = x.shape
        # Split q/k/v on the un-permuted layout, then move heads forward per tensor: the
        # backward then stacks gradients in qkv's own layout (no zero-filled buffers and no
        # permuted copy of the whole qkv tensor).
        qkv = self.qkv(x).view(b, t, 3, self.heads, self.head_dim)
        q, k, v = (z.transpose(1, 2) for z in qkv.unbind(2))  # each (b, heads, t, head_dim)
        attn = torch.matmul(q * self.scale, k.transpose(-2, -1)).softmax(dim=-1)
        attn = self.drop(attn)
        out = torch.matmul(attn, v).transpose(1, 2).reshape(b, t, d)
        return self.drop(self.proj(out))


class FeedForward(nn.Module):
    """Feed-forward layer (FFL): ``fc2(gelu(fc1(x)))`` with plain ``nn.Linear`` layers."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, tokens, dim) -> (batch, tokens, dim)."""
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + sal(norm1(x))`` then ``x + ffl(norm2(x))``."""

    def __init__(self, dim: int, heads: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.sal = SelfAttention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.ffl = FeedForward(dim, hidden, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, tokens, dim) -> (batch, tokens, dim)."""
        x = x + self.sal(self.norm1(x))
        return x + self.ffl(self.norm2(x))


class ViT(nn.Module):
    """Vision Transformer classifier.

    Args:
        input_shape: (channels, height, width); height and width divisible by ``patch_size``.
        num_classes: number of output logits.
        patch_size: side of the square patches [pixels].
        dim: token width.
        depth: number of transformer blocks.
        heads: attention heads per block.
        mlp_ratio: FFL hidden width = ``round(dim * mlp_ratio)``.
        dropout: dropout probability (0 disables it).
    """

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        num_classes: int,
        patch_size: int = 7,
        dim: int = 64,
        depth: int = 2,
        heads: int = 4,
        mlp_ratio: float = 2.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        c, h, w = input_shape
        if h % patch_size or w % patch_size:
            fits = [p for p in range(1, min(h, w) + 1) if h % p == 0 and w % p == 0]
            raise ValueError(f"patch_size {patch_size} does not divide the image size {(h, w)} "
                             f"of {c} channel(s) (allowed: {', '.join(map(str, fits))})")
        self.input_shape = (c, h, w)
        self.patch_size = patch_size
        self.n_patches = (h // patch_size) * (w // patch_size)
        self.hidden = int(round(dim * mlp_ratio))
        self.patch_embed = nn.Linear(c * patch_size * patch_size, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.n_patches, dim))
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(dim, heads, self.hidden, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """Images (batch, C, H, W) -> patches (batch, n_patches, C*p*p), row-major order."""
        b, c, h, w = x.shape
        p = self.patch_size
        x = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(b, self.n_patches, c * p * p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (batch, C, H, W) float32 -> logits (batch, num_classes)."""
        tokens = self.patch_embed(self.patchify(x))
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        z = self.drop(torch.cat([cls, tokens], dim=1) + self.pos_embed)
        for block in self.blocks:
            z = block(z)
        return self.head(self.norm(z[:, 0]))


@torch.no_grad()
def init_vit_(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """Initialise every parameter of ``model`` in place from ``generator`` (no global RNG).

    Linear weights and the cls/pos embeddings: truncated normal, std 0.02, cut at ±2 std;
    biases: 0; LayerNorm: weight 1, bias 0. Parameters are visited in ``named_parameters``
    order so the result depends only on the generator's state.
    """
    for name, p in model.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        owner = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
        if isinstance(owner, nn.LayerNorm):
            p.fill_(1.0 if leaf == "weight" else 0.0)
        elif leaf == "bias":
            p.zero_()
        else:
            p.copy_(torch.randn(p.shape, generator=generator, dtype=p.dtype).clamp_(-2.0, 2.0) * 0.02)
    return model
