"""Model construction, parameter groups and FLOP counting (measured vs analytic)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from learning.flops import count_flops, vit_flops_per_sample
from learning.models import MODELS, build_model, ffl_linear_names, param_groups

CONFIGS = [
    ({}, (1, 28, 28), 10),
    ({"patch_size": 4, "dim": 32, "depth": 3, "heads": 2, "mlp_ratio": 3.0}, (3, 16, 16), 7),
    ({"patch_size": 14, "dim": 16, "depth": 1, "heads": 1, "mlp_ratio": 1.5}, (1, 28, 28), 2),
]


def test_registry_and_output_shape() -> None:
    assert MODELS["vit"] is not None
    model = build_model({"dim": 32, "depth": 1, "heads": 2}, (1, 28, 28), 10)
    assert model(torch.zeros(5, 1, 28, 28)).shape == (5, 10)
    assert len(model.blocks) == 1
    assert isinstance(model.blocks[0].ffl.fc1, nn.Linear) and model.blocks[0].ffl.fc1.out_features == 64


def test_unknown_config_key_names_key_and_allowed() -> None:
    with pytest.raises(ValueError, match="widht.*allowed keys.*patch_size"):
        build_model({"widht": 3}, (1, 28, 28), 10)
    with pytest.raises(ValueError, match=r"patch_size 5 does not divide the image size \(28, 28\).*allowed: 1, 2, 4, 7, 14, 28"):
        build_model({"patch_size": 5}, (1, 28, 28), 10)


def test_seeded_init_is_deterministic_and_leaves_global_rng_alone() -> None:
    rng_before = torch.get_rng_state()
    a = build_model({"dim": 16, "depth": 1, "heads": 2}, (1, 28, 28), 10, seed=3)
    b = build_model({"dim": 16, "depth": 1, "heads": 2}, (1, 28, 28), 10, seed=3)
    c = build_model({"dim": 16, "depth": 1, "heads": 2}, (1, 28, 28), 10, seed=4)
    assert torch.equal(torch.get_rng_state(), rng_before)
    for (name, pa), pb, pc in zip(a.named_parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb), name
        if name.endswith("weight") and pa.dim() == 2:
            assert not torch.equal(pa, pc), name
            assert pa.abs().max() <= 0.04 + 1e-7  # truncated normal, std 0.02, cut at 2 std
    assert torch.equal(a.norm.weight, torch.ones(16)) and torch.equal(a.head.bias, torch.zeros(10))


@pytest.mark.parametrize("config,shape,classes", CONFIGS)
def test_param_groups_disjoint_and_complete(config: dict, shape: tuple, classes: int) -> None:
    model = build_model(config, shape, classes)
    groups = param_groups(model)
    assert set(groups) == {"sal", "ffl", "embed", "norm", "head"}
    names = [n for g in groups.values() for n in g]
    assert len(names) == len(set(names))
    assert set(names) == {n for n, _ in model.named_parameters()}
    assert set(groups["embed"]) == {"patch_embed.weight", "patch_embed.bias", "cls_token", "pos_embed"}
    assert set(groups["head"]) == {"head.weight", "head.bias"}
    assert all(".sal." in n for n in groups["sal"]) and all(".ffl." in n for n in groups["ffl"])
    assert "norm.weight" in groups["norm"] and "blocks.0.norm2.bias" in groups["norm"]
    depth = len(model.blocks)
    assert ffl_linear_names(model) == [f"blocks.{i}.ffl.{fc}" for i in range(depth) for fc in ("fc1", "fc2")]


def test_count_flops_linear_by_hand() -> None:
    batch, d_in, d_hidden, d_out = 3, 5, 7, 2
    single = nn.Linear(d_in, d_out)
    fwd = 2 * batch * d_in * d_out
    assert count_flops(single, (d_in,), batch, backward=False) == fwd
    # The input is data (no gradient): backward computes only the weight gradient.
    assert count_flops(single, (d_in,), batch) == 2 * fwd
    two = nn.Sequential(nn.Linear(d_in, d_hidden), nn.GELU(), nn.Linear(d_hidden, d_out))
    f1, f2 = 2 * batch * d_in * d_hidden, 2 * batch * d_hidden * d_out
    # Second layer: gradients of both its weight and its (trainable) input -> 2x forward.
    assert count_flops(two, (d_in,), batch) == (f1 + f1) + (f2 + 2 * f2)


@pytest.mark.parametrize("config,shape,classes", CONFIGS)
@pytest.mark.parametrize("backward", [True, False])
def test_analytic_flops_equal_flop_counter(config: dict, shape: tuple, classes: int, backward: bool) -> None:
    model = build_model(config, shape, classes)
    measured = count_flops(model, shape, batch_size=2, backward=backward)
    assert measured == 2 * vit_flops_per_sample(config, shape, classes, backward=backward)
    assert all(p.grad is None for p in model.parameters())


def test_ffl_density_scales_forward_and_input_gradient_weight_gradient_stays_dense() -> None:
    cfg = {"patch_size": 7, "dim": 64, "depth": 2, "heads": 4, "mlp_ratio": 2.0}
    dense = vit_flops_per_sample(cfg, (1, 28, 28), 10)
    tokens, hidden = 17, 128
    layer = 2 * tokens * 64 * hidden  # forward FLOPs of one FFL linear layer (278 528)
    # By hand, per sample: patch embedding 2·16·49·64 ×2 (forward, weight gradient);
    # per block qkv 2·17·64·192 + q@k 2·17·17·64 + attn@v 2·17·17·64 + proj 2·17·64·64, ×3;
    # 4 FFL layers ×3; head 2·64·10 ×3.
    block = 2 * 17 * 64 * 192 + 2 * (2 * 17 * 17 * 64) + 2 * 17 * 64 * 64
    assert dense == 2 * 2 * 16 * 49 * 64 + 2 * 3 * block + 4 * 3 * layer + 3 * 2 * 64 * 10 == 7_333_120
    assert vit_flops_per_sample(cfg, (1, 28, 28), 10, ffl_density=[1, 1, 1, 1]) == dense
    # density 0.5 saves half of forward + input gradient (2 matmuls), density 0 all of them;
    # the weight-gradient matmul gT x is computed densely under both pruning gradients.
    assert vit_flops_per_sample(cfg, (1, 28, 28), 10, ffl_density=[0.5, 1, 1, 0]) == dense - layer - 2 * layer
    assert vit_flops_per_sample(cfg, (1, 28, 28), 10, [0, 0, 0, 0]) == dense - 4 * 2 * layer
    assert vit_flops_per_sample(cfg, (1, 28, 28), 10, [0, 0, 0, 0], backward=False) == (
        vit_flops_per_sample(cfg, (1, 28, 28), 10, backward=False) - 4 * layer
    )
    # The review's operating point: 73.8 % sparsity costs 77.6 % of dense (the old count,
    # all three matmuls at the density, said 66.4 %).
    at = vit_flops_per_sample(cfg, (1, 28, 28), 10, [0.262] * 4)
    want = dense - 4 * 3 * layer + round(4 * layer * (2 * 0.262 + 1))
    assert at == want and round(at / dense, 3) == 0.776
    assert round((dense - 4 * 3 * layer * (1 - 0.262)) / dense, 3) == 0.664  # the old, over-counted saving
    # Zero FFL density equals a model whose FFL forward and input-gradient matmuls are absent
    # from the count and whose weight gradient (one dense matmul per layer) remains.
    model = build_model(cfg, (1, 28, 28), 10)
    for name in ffl_linear_names(model):
        parent, leaf = name.rsplit(".", 1)
        setattr(model.get_submodule(parent), leaf, _Zero(64 if leaf == "fc2" else hidden))
    assert count_flops(model, (1, 28, 28)) + 4 * layer == vit_flops_per_sample(cfg, (1, 28, 28), 10, [0, 0, 0, 0])
    with pytest.raises(ValueError, match="4 entries"):
        vit_flops_per_sample(cfg, (1, 28, 28), 10, ffl_density=[1.0])
    with pytest.raises(ValueError, match="outside"):
        vit_flops_per_sample(cfg, (1, 28, 28), 10, ffl_density=[1.0, 1.0, 1.5, 1.0])


class _Zero(nn.Module):
    """Maps (b, t, d) to zeros (b, t, hidden) with no counted FLOPs."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., :1].expand(*x.shape[:-1], self.hidden) * 0.0
