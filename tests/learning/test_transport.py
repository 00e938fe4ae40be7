"""Transport of tasks and results to pool workers: ``dumps`` (numpy-array pickling of
tensors that own their storage) and ``pack`` / ``unpack`` (array memory through an
in-memory file): same values, dtypes, shapes and strides, writable memory of their own."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
import torch

from learning.execution import transport
from learning.execution.transport import dumps, pack, unpack
from learning.payload import Payload


def _sample() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    big = torch.randn(64, 32, generator=gen)
    owned = {"f32": big, "f16": big.half(), "i64": torch.arange(7), "bool": big > 0, "scalar": torch.tensor(3.5),
             "empty": torch.zeros(0, 4), "transposed": torch.randn(5, 3, generator=gen).t()}
    others = {"view": big[1:3], "strided": big[:, ::2], "param": torch.nn.Parameter(big.clone()),
              "bf16": big.bfloat16()}
    return owned, others, big


def _check(sent: tuple[Any, ...], got: tuple[Any, ...]) -> None:
    (owned, others, payload, _), (got_owned, got_others, got_payload, same) = sent, got
    assert same is got_owned["f32"]  # one object stays one object
    for want, have in [*zip(owned.values(), got_owned.values()), *zip(others.values(), got_others.values())]:
        assert type(have) is type(want) and have.dtype == want.dtype and have.shape == want.shape
        assert torch.equal(have, want) and have.stride() == want.stride()
    assert got_others["param"].requires_grad
    assert torch.equal(got_payload.tensors["w"], payload.tensors["w"]) and got_payload.config == {"round": 1}
    before = owned["f32"].clone()
    got_owned["f32"].add_(1.0)  # writable memory of its own
    assert torch.equal(got_owned["f32"], before + 1.0) and torch.equal(owned["f32"], before)
def test_dumps_round_trips_tensors_as_arrays_and_others_through_torch() -> None:
    owned, others, big = _sample()
    sent = (owned, others, Payload({"w": big.clone()}, "fp32", {"round": 1}), owned["f32"])
    blob = dumps(sent)
    assert blob.count(b"_tensor_from_array") == 1  # the fast path: one global, memoized
    _check(sent, pickle.loads(blob))
    # A tensor owning its storage costs its bytes, not torch's serialized storage.
    assert len(dumps(big)) < big.numel() * 4 + 400


def test_pack_sends_array_memory_out_of_band_and_unpacks_it() -> None:
    assert transport.MEMFD  # Linux: the in-memory file path is the one that runs here
    owned, others, big = _sample()
    sent = (owned, others, Payload({"w": big.clone()}, "fp32", {"round": 1}), owned["f32"])
    head, sizes, _ = packed = pack(sent)
    # The owned tensors, the payload's and the parameter's data (torch pickles a parameter
    # as its plain data tensor plus requires_grad): all in the file, not in the head.
    raw = sum(t.numel() * t.element_size() for t in owned.values()) + 2 * big.numel() * 4
    assert sum(sizes) == raw and len(head) < raw
    _check(sent, unpack(packed))


def test_pack_without_memory_files_is_dumps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport, "MEMFD", False)
    owned, others, big = _sample()
    sent = (owned, others, Payload({"w": big.clone()}, "fp32", {"round": 1}), owned["f32"])
    packed = pack(sent)
    assert isinstance(packed, bytes) and packed == dumps(sent)
    _check(sent, unpack(packed))
