"""FLOP counting: measured (``FlopCounterMode``) and analytic (closed form for the ViT).

Convention (that of ``torch.utils.flop_counter``): a matmul of (m, k) by (k, n) costs
``2·m·k·n`` FLOPs; element-wise ops, softmax, GELU and LayerNorm are not counted. The
backward pass of a matmul costs one matmul for the gradient of each operand that needs
it, so a hidden linear layer costs 2× its forward FLOPs backward, while the patch
embedding (whose input is data, not a trainable activation) costs 1×.

``vit_flops_per_sample`` reproduces ``count_flops`` exactly for the dense ViT and lets
each FFL linear layer be scaled by its density, which is how pruning shortens the
simulated compute time. A pruned layer ``y = x (W⊙M)ᵀ`` runs three matmuls per step and
only two of them shrink with the mask:

* forward ``x (W⊙M)ᵀ`` and input gradient ``g (W⊙M)``: scaled by the density ρ (fraction
  of weights kept: an ideal unstructured-sparse kernel) or, with ``pruning_flops: rows``,
  by the fraction of rows that keep any weight (what a dense kernel can skip: structured),
  or not at all with ``pruning_flops: dense`` (a dense kernel on the masked weights);
* weight gradient ``gᵀ x``: dense. Both pruning gradients need every entry of it — the
  straight-through one (``ste``) gives every weight ``gᵀx``, DST's (``dst``) gives a kept
  weight ``(gᵀx)_ij`` and a pruned one ``(gᵀx)_ij·|W_ij|·step'(|W_ij| − t_i)``, non-zero for
  every weight within 1 of its threshold, i.e. in practice all of them.

So a pruned layer costs ``(1 + ρ + ρ)/3`` of its dense training FLOPs, not ``ρ``: at
ρ = 0.262 (73.8 % sparsity) the default ViT on 28×28 inputs costs 77.6 % of its dense
FLOPs per sample (counting all three matmuls at ρ gave 66.4 %).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from learning.models import resolve_model_config

__all__ = ["count_flops", "vit_flops_per_sample"]


def count_flops(
    model: nn.Module,
    input_shape: Sequence[int],
    batch_size: int = 1,
    backward: bool = True,
) -> int:
    """Measure the FLOPs of one forward (+ backward) pass with ``FlopCounterMode``.

    Args:
        model: the module (not modified; its gradients are cleared afterwards).
        input_shape: shape of one sample, e.g. (1, 28, 28).
        batch_size: number of samples in the measured batch.
        backward: also run ``loss.backward()`` on the summed logits and count it.

    Returns:
        Total FLOPs for the batch [FLOP].
    """
    x = torch.zeros((batch_size, *input_shape))
    counter = FlopCounterMode(display=False)
    with counter:
        out = model(x)
        if backward:
            out.sum().backward()
    if backward:
        model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def vit_flops_per_sample(
    config: dict[str, Any] | None,
    input_shape: Sequence[int],
    num_classes: int,
    ffl_density: Sequence[float] | None = None,
    backward: bool = True,
) -> int:
    """Analytic FLOPs of one sample through the ViT (forward, plus backward if asked).

    Args:
        config: model config (see ``learning.models.DEFAULT_MODEL_CONFIG``).
        input_shape: (channels, height, width) of one sample.
        num_classes: number of logits.
        ffl_density: one density in [0, 1] per FFL linear layer, ordered block0.fc1,
            block0.fc2, block1.fc1, ...; scales that layer's forward and input-gradient
            matmuls (its weight-gradient matmul stays dense, see the module docstring).
            ``None`` means dense (all 1).
        backward: include the backward pass.

    Returns:
        FLOPs for one sample [FLOP] (rounded to an integer when densities are fractional).
    """
    cfg = resolve_model_config(config)
    c, h, w = (int(s) for s in input_shape)
    p, d, depth = int(cfg["patch_size"]), int(cfg["dim"]), int(cfg["depth"])
    hidden = int(round(d * float(cfg["mlp_ratio"])))
    n_patches = (h // p) * (w // p)
    t = n_patches + 1
    if ffl_density is None:
        ffl_density = [1.0] * (2 * depth)
    if len(ffl_density) != 2 * depth:
        raise ValueError(f"ffl_density needs {2 * depth} entries (2 per block), got {len(ffl_density)}")
    for rho in ffl_density:
        if not 0.0 <= float(rho) <= 1.0:
            raise ValueError(f"ffl density {rho} outside [0, 1]")
    # (forward, backward) multipliers: a matmul whose input needs a gradient costs 2x backward.
    bw_hidden = 2 if backward else 0
    bw_embed = 1 if backward else 0
    total = (1 + bw_embed) * 2 * n_patches * (c * p * p) * d  # patch embedding
    dense_block = (
        2 * t * d * 3 * d  # qkv
        + 2 * t * t * d  # q @ k^T over all heads
        + 2 * t * t * d  # attn @ v over all heads
        + 2 * t * d * d  # proj
    )
    total += depth * (1 + bw_hidden) * dense_block
    ffl_layer = 2 * t * d * hidden  # fc1 and fc2 have the same matmul size
    # forward and input gradient at the layer's density; the weight gradient dense
    bw_input, bw_weight = (1, 1) if backward else (0, 0)
    ffl_total = sum(ffl_layer * ((1 + bw_input) * float(rho) + bw_weight) for rho in ffl_density)
    total += (1 + bw_hidden) * 2 * d * num_classes  # head on the cls token
    return int(total + round(ffl_total))
