"""Equal encodings: ``downlink_encoding`` / ``uplink_encoding`` for every algorithm.

A comparison is fair on the air only if every method sends its tensors in the same
format; these tests pin that each communicating algorithm honours both keys: its
payloads carry what the receiver decodes (fp16-representable values), they weigh what
its cost model says, and fp16 roughly halves the bytes.
"""

from __future__ import annotations

import pytest
import torch

from learning.algorithms import ALGORITHMS, COMMON_PARAMS, make_algorithm
from tiny_data import TinyData

MODEL = {"patch_size": 7, "dim": 16, "depth": 1, "heads": 2, "mlp_ratio": 2.0}
FAST = {"lr": 3e-3, "local_epochs": 1.0, "batch_size": 16}
COMMUNICATING = sorted(n for n, cls in ALGORITHMS.items() if cls.communicates)
#: Algorithms whose uplink is a format of their own (top-k sparse), not a dense encoding.
OWN_UPLINK = {"fedavg_topk"}


def _is_fp16_exact(t: torch.Tensor) -> bool:
    return not t.is_floating_point() or bool(torch.equal(t, t.to(torch.float16).to(t.dtype)))


@pytest.fixture(scope="module")
def data() -> TinyData:
    return TinyData(n_devices=3, n_train=32, n_test=16)


def test_every_algorithm_accepts_both_keys_with_fp32_defaults_except_pfl_tps_downlink() -> None:
    assert COMMON_PARAMS["downlink_encoding"] == COMMON_PARAMS["uplink_encoding"] == "fp32"
    for name, cls in ALGORITHMS.items():
        defaults = cls.default_params()
        assert {"downlink_encoding", "uplink_encoding"} <= set(defaults), name
        # PFL-TPS downlinks fp16 by default (its published setting); everyone else fp32.
        assert defaults["downlink_encoding"] == ("fp16" if name == "pfl_tps" else "fp32"), name


@pytest.mark.parametrize("name", COMMUNICATING)
def test_fp16_payloads_are_rounded_weigh_their_cost_and_halve_bytes(name: str, data: TinyData) -> None:
    up_encoding = "fp32" if name in OWN_UPLINK else "fp16"
    half = {**FAST, "downlink_encoding": "fp16", "uplink_encoding": up_encoding}
    full = {**FAST, "downlink_encoding": "fp32", "uplink_encoding": "fp32"}
    alg = make_algorithm(name, data, MODEL, half, seed=0)
    down = alg.downlink(1, 3)
    assert down.encoding == "fp16"
    assert all(_is_fp16_exact(t) for t in down.tensors.values()), "the device must train on what it received"
    res = alg.client().local_update(1, alg.device_state(1), down, seed=5)
    if name not in OWN_UPLINK:
        assert res.uplink.encoding == "fp16"
        assert all(_is_fp16_exact(t) for t in res.uplink.tensors.values())
    cls = ALGORITHMS[name]
    cost_half = cls.cost_model(MODEL, half, (1, 28, 28), 4)
    cost_full = cls.cost_model(MODEL, full, (1, 28, 28), 4)
    assert cost_half.downlink_bytes == down.wire_bytes == len(down.encode())
    assert cost_half.uplink_bytes == res.uplink.wire_bytes
    # Float tensor bodies halve (4 -> 2 bytes per element); names, shapes, config do not.
    floats = lambda p: sum(t.numel() for t in p.tensors.values() if t.is_floating_point())  # noqa: E731
    assert cost_full.downlink_bytes - cost_half.downlink_bytes == 2 * floats(down) > 0
    if name not in OWN_UPLINK:
        assert cost_full.uplink_bytes - cost_half.uplink_bytes == 2 * floats(res.uplink) > 0
    alg.commit(res)
    alg.aggregate({1: (res.uplink, res.samples)}, 3)  # the server folds in the rounded values


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_unknown_encoding_names_the_key_and_the_allowed_values(name: str, data: TinyData) -> None:
    for key in ("downlink_encoding", "uplink_encoding"):
        with pytest.raises(ValueError, match=rf"{key}.*'bf8'.*fp32.*fp16"):
            make_algorithm(name, data, MODEL, {**FAST, key: "bf8"}, seed=0)


def test_topk_keeps_its_own_sparse_uplink(data: TinyData) -> None:
    with pytest.raises(ValueError, match=r"uplink_encoding='fp16' not allowed.*index_sparse"):
        make_algorithm("fedavg_topk", data, MODEL, {**FAST, "uplink_encoding": "fp16"}, seed=0)
