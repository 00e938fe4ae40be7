"""Model registry, config validation and parameter groups.

``build_model(config, input_shape, num_classes, seed)`` builds a registered model from a
config dict (unknown keys are errors) with parameters drawn from a seeded generator.
``param_groups(model)`` splits all parameter names into ``sal`` / ``ffl`` / ``embed`` /
``norm`` / ``head`` — the groups PFL-TPS treats differently.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from learning.models.vit import Block, FeedForward, SelfAttention, ViT, init_vit_

__all__ = [
    "MODELS",
    "DEFAULT_MODEL_CONFIG",
    "build_model",
    "resolve_model_config",
    "param_groups",
    "ffl_linear_names",
    "ViT",
    "Block",
    "SelfAttention",
    "FeedForward",
]

MODELS: dict[str, type[nn.Module]] = {"vit": ViT}

DEFAULT_MODEL_CONFIG: dict[str, Any] = {
    "name": "vit",
    "patch_size": 7,
    "dim": 64,
    "depth": 2,
    "heads": 4,
    "mlp_ratio": 2.0,
    "dropout": 0.0,
}

GROUPS = ("sal", "ffl", "embed", "norm", "head")


def resolve_model_config(config: dict[str, Any] | None) -> dict[str, Any]:
    """Return ``config`` completed with defaults; unknown keys or names raise ``ValueError``."""
    config = dict(config or {})
    unknown = sorted(set(config) - set(DEFAULT_MODEL_CONFIG))
    if unknown:
        raise ValueError(
            f"unknown model config key {unknown[0]!r}; allowed keys: {sorted(DEFAULT_MODEL_CONFIG)}"
        )
    resolved = {**DEFAULT_MODEL_CONFIG, **config}
    if resolved["name"] not in MODELS:
        raise ValueError(f"unknown model name {resolved['name']!r}; allowed: {sorted(MODELS)}")
    for key in ("patch_size", "dim", "depth", "heads"):
        if int(resolved[key]) < 1:
            raise ValueError(f"model config {key} must be >= 1, got {resolved[key]}")
    if not 0.0 <= float(resolved["dropout"]) < 1.0:
        raise ValueError(f"model config dropout must be in [0, 1), got {resolved['dropout']}")
    if float(resolved["mlp_ratio"]) <= 0:
        raise ValueError(f"model config mlp_ratio must be > 0, got {resolved['mlp_ratio']}")
    return resolved


def _materialise_(model: nn.Module) -> None:
    """Give every meta parameter and buffer uninitialised CPU storage, in place.

    The same result as ``model.to_empty(device="cpu")`` for modules without shared
    tensors, but without its ``empty_like`` on meta tensors, whose Python decomposition
    imports sympy and torch's symbolic-shape machinery (about 1 s of start-up).
    """
    for module in model.modules():
        for name, p in module._parameters.items():
            if p is not None and p.is_meta:
                module._parameters[name] = nn.Parameter(torch.empty(p.shape, dtype=p.dtype), p.requires_grad)
        for name, b in module._buffers.items():
            if b is not None and b.is_meta:
                module._buffers[name] = torch.empty(b.shape, dtype=b.dtype)


def build_model(
    config: dict[str, Any] | None,
    input_shape: tuple[int, int, int],
    num_classes: int,
    seed: int | torch.Generator = 0,
) -> nn.Module:
    """Build the model named by ``config`` with parameters drawn from ``seed``.

    Args:
        config: model config (keys of ``DEFAULT_MODEL_CONFIG``; missing keys take defaults).
        input_shape: (channels, height, width) of one input sample.
        num_classes: number of logits.
        seed: integer seed or a ``torch.Generator`` (consumed) for the initial parameters.
    """
    cfg = resolve_model_config(config)
    kwargs = {k: v for k, v in cfg.items() if k != "name"}
    with torch.device("meta"):
        model = MODELS[cfg["name"]](tuple(input_shape), int(num_classes), **kwargs)
    _materialise_(model)
    gen = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
    return init_vit_(model, gen)


def param_groups(model: nn.Module) -> dict[str, list[str]]:
    """Split every parameter name of a ViT into the groups ``sal, ffl, embed, norm, head``.

    Returns a dict with exactly those keys; the lists are disjoint and together hold all
    names of ``model.named_parameters()`` (in that order within each group).
    """
    groups: dict[str, list[str]] = {g: [] for g in GROUPS}
    for name, _ in model.named_parameters():
        parts = name.split(".")
        if "sal" in parts:
            groups["sal"].append(name)
        elif "ffl" in parts:
            groups["ffl"].append(name)
        elif parts[0] in ("patch_embed", "cls_token", "pos_embed"):
            groups["embed"].append(name)
        elif parts[0] == "head":
            groups["head"].append(name)
        elif isinstance(model.get_submodule(name.rsplit(".", 1)[0]), nn.LayerNorm):
            groups["norm"].append(name)
        else:
            raise ValueError(f"parameter {name!r} belongs to no group {GROUPS}")
    return groups


def ffl_linear_names(model: nn.Module) -> list[str]:
    """Module names of the FFL linear layers in order block0.fc1, block0.fc2, block1.fc1, ..."""
    return [
        name
        for name, mod in model.named_modules()
        if isinstance(mod, nn.Linear) and ".ffl." in f".{name}."
    ]
