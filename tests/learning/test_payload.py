"""Payload wire sizes (arithmetic == encoded length) and round trips for every encoding."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from learning.payload import ENCODINGS, Payload

HEADER = 11  # magic 4 + encoding 1 + n_config 2 + n_tensors 4


@st.composite
def payloads(draw: st.DrawFn) -> Payload:
    n_tensors = draw(st.integers(0, 4))
    tensors: dict[str, torch.Tensor] = {}
    for i in range(n_tensors):
        shape = tuple(draw(st.lists(st.integers(0, 6), min_size=0, max_size=3)))
        seed = draw(st.integers(0, 2**31 - 1))
        gen = torch.Generator().manual_seed(seed)
        values = torch.randn(shape, generator=gen)
        density = draw(st.sampled_from([0.0, 0.3, 1.0]))
        values = values * (torch.rand(shape, generator=gen) < density)
        dtype = draw(st.sampled_from([torch.float32, torch.float32, torch.float64, torch.int64, torch.bool]))
        name = draw(st.text(min_size=0, max_size=8)) + f"#{i}"
        tensors[name] = (values * 10).to(dtype) if not dtype.is_floating_point else values.to(dtype)
    config = draw(
        st.dictionaries(
            st.text(max_size=6),
            st.one_of(st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False), st.text(max_size=6), st.booleans()),
            max_size=3,
        )
    )
    return Payload(tensors, draw(st.sampled_from(ENCODINGS)), config)


@settings(max_examples=150, deadline=None)
@given(payloads())
def test_wire_bytes_equal_encoded_length_and_round_trip(payload: Payload) -> None:
    data = payload.encode()
    assert payload.wire_bytes == len(data)
    back = Payload.decode(data)
    assert back.encoding == payload.encoding
    assert back.config == payload.config
    assert list(back.tensors) == list(payload.tensors)
    for name, t in payload.tensors.items():
        got = back.tensors[name]
        assert got.dtype == t.dtype and got.shape == t.shape
        if payload.encoding == "fp16" and t.is_floating_point():
            torch.testing.assert_close(got, t.to(torch.float16).to(t.dtype), rtol=0, atol=0)
            torch.testing.assert_close(got, t, rtol=1e-3, atol=1e-4)
        elif t.dtype == torch.float64:
            assert torch.equal(got, t.to(torch.float32).to(torch.float64))  # sent as float32
        else:
            assert torch.equal(got, t)


def test_sizes_by_hand() -> None:
    w = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, -2.5]])  # 6 elements, 2 nonzeros
    entry = 2 + 1 + 1 + 1 + 2 * 4  # name len + "w" + dtype + ndim + 2 dims
    expected = {
        "fp32": HEADER + entry + 6 * 4,
        "fp16": HEADER + entry + 6 * 2,
        "bitmask_sparse": HEADER + entry + 1 + 4 + 2 * 4,
        "index_sparse": HEADER + entry + 4 + 2 * 4 + 2 * 4,
    }
    for enc, size in expected.items():
        p = Payload({"w": w}, enc)
        assert p.wire_bytes == size == len(p.encode()), enc
    # config is counted: "round" -> 2 + 5 + tag 1 + int64 8
    assert Payload({"w": w}, "fp32", {"round": 7}).wire_bytes == expected["fp32"] + 16
    assert Payload({"w": w}, "fp32", {"tag": "ab"}).wire_bytes == expected["fp32"] + 2 + 3 + 1 + 4 + 2
    assert Payload({"w": w}).num_elements == 6


def test_integer_tensors_are_sent_raw() -> None:
    steps = torch.tensor([3, 4], dtype=torch.int64)
    for enc in ENCODINGS:
        p = Payload({"n": steps}, enc)
        assert p.wire_bytes == HEADER + 2 + 1 + 2 + 4 + 16
        assert torch.equal(Payload.decode(p.encode()).tensors["n"], steps)


def test_empty_and_validation() -> None:
    empty = Payload.empty()
    assert empty.wire_bytes == len(empty.encode()) == HEADER
    assert empty.num_elements == 0
    assert Payload.decode(empty.encode()).tensors == {}
    with pytest.raises(ValueError, match="allowed.*bitmask_sparse"):
        Payload({}, "fp8")
    with pytest.raises(ValueError, match="magic"):
        Payload.decode(b"XXXX" + empty.encode()[4:])
    with pytest.raises(TypeError, match="config value"):
        Payload({}, "fp32", {"x": [1]}).wire_bytes


def test_sparse_encodings_save_bytes_on_sparse_tensors() -> None:
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(64, 64, generator=gen) * (torch.rand(64, 64, generator=gen) < 0.01)  # index beats bitmask below 1/32
    sizes = {enc: Payload({"w": w}, enc).wire_bytes for enc in ENCODINGS}
    assert sizes["index_sparse"] < sizes["bitmask_sparse"] < sizes["fp16"] < sizes["fp32"]
