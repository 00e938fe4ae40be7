"""Shared set-up of the batched-executor tests (``test_batched.py``, ``test_batched_hn.py``).

A tiny ViT (``MODEL``, width ``DIM``), ragged device order ``DEVICES``, the ``data``
fixture (Dirichlet split over 5 devices: 18..61 samples each, so devices take different
numbers of steps and batches are ragged), ``tasks`` (one round's executor tasks) and
``assert_close_results`` (batched result == sequential one within float tolerance).
A test module imports the fixture it uses by name.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from learning.algorithms.base import LocalResult
from learning.data import build_federated_data, make_synthetic

DIM = 16
MODEL = {"patch_size": 14, "dim": DIM, "depth": 1, "heads": 2, "mlp_ratio": 2.0}
DEVICES = [3, 0, 2, 1, 4, 3]  # out of order and repeated


@pytest.fixture(scope="module")
def data() -> Any:
    return build_federated_data(make_synthetic(200, 48, num_classes=4, seed=0), 5, "dirichlet", {"alpha": 0.5}, seed=0)


def tasks(alg: Any, devices: list[int], round_idx: int) -> list[tuple[int, Any, Any, int]]:
    """The executor tasks of ``devices`` in round ``round_idx`` (seed 100 r + d)."""
    return [(d, alg.device_state(d), alg.downlink(d, round_idx), 100 * round_idx + d) for d in devices]


def flat(result: LocalResult) -> dict[str, torch.Tensor]:
    """Every tensor of a result: ``state.<...>`` and ``uplink.<name>``."""
    out: dict[str, torch.Tensor] = {}
    state = result.state if isinstance(result.state, dict) else {}
    for group, tensors in state.items():
        if isinstance(tensors, dict):
            out.update({f"state.{group}.{k}": v for k, v in tensors.items()})
        else:
            out[f"state.{group}"] = tensors
    if result.uplink is not None:
        out.update({f"uplink.{k}": v for k, v in result.uplink.tensors.items()})
    return out


def _key_bias(name: str) -> bool:
    """qkv.bias of a trained SAL: its key third has an exactly-zero true gradient (softmax
    shift invariance), so Adam turns rounding noise there into lr-sized steps."""
    return name.endswith("sal.qkv.bias")


def assert_close_results(want: LocalResult, got: LocalResult, adam_sal: bool = False, atol: float = 1e-5) -> None:
    """Same device, FLOPs, samples, metrics (rel 1e-6), tensor names in order, tensors
    within ``atol`` (the key third of SAL qkv biases skipped when ``adam_sal``), uplink
    encoding, config and wire size."""
    assert (got.device, got.flops, got.samples) == (want.device, want.flops, want.samples)
    assert list(got.metrics) == list(want.metrics)
    for key, value in want.metrics.items():
        assert got.metrics[key] == pytest.approx(value, rel=1e-6, abs=1e-7), key
    assert (got.state is None) == (want.state is None)
    a, b = flat(want), flat(got)
    assert list(a) == list(b)
    for name in a:
        x, y = a[name], b[name]
        if adam_sal and _key_bias(name):
            x, y = torch.cat([x[:DIM], x[2 * DIM:]]), torch.cat([y[:DIM], y[2 * DIM:]])
        assert y.dtype == x.dtype, name
        torch.testing.assert_close(y, x, rtol=0, atol=atol, msg=name)
    assert (got.uplink is None) == (want.uplink is None)
    if want.uplink is not None:
        assert got.uplink.encoding == want.uplink.encoding
        assert got.uplink.config == want.uplink.config and got.uplink.wire_bytes == want.uplink.wire_bytes
