"""Executors: process pool results bit-equal to sequential ones, order kept, pool reuse."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from learning.algorithms import make_algorithm
from learning.algorithms.base import LocalResult
from learning.data import build_federated_data, make_synthetic
from learning.execution import EXECUTORS, ProcessExecutor, SequentialExecutor, make_executor

MODEL = {"patch_size": 14, "dim": 16, "depth": 1, "heads": 2, "mlp_ratio": 2.0}
PARAMS = {"local_epochs": 1.0, "batch_size": 16}


@pytest.fixture(scope="module")
def data() -> Any:
    return build_federated_data(make_synthetic(96, 48, num_classes=4, seed=0), 4, "iid", {}, seed=0)


def _tasks(alg: Any, devices: list[int], round_idx: int) -> list[tuple[int, Any, Any, int]]:
    return [(d, alg.device_state(d), alg.downlink(d, round_idx), 100 * round_idx + d) for d in devices]


def _same(a: LocalResult, b: LocalResult) -> None:
    assert a.device == b.device and a.flops == b.flops and a.samples == b.samples
    assert a.metrics == b.metrics
    for x, y in ((a.state, b.state), (a.uplink and a.uplink.tensors, b.uplink and b.uplink.tensors)):
        assert (x is None) == (y is None)
        if x is not None:
            assert list(x) == list(y) and all(torch.equal(x[k], y[k]) for k in x)
    if a.uplink is not None:
        assert a.uplink.config == b.uplink.config and a.uplink.wire_bytes == b.uplink.wire_bytes


def test_process_results_bit_equal_to_sequential(data: Any) -> None:
    devices = [3, 0, 2, 1, 3]  # out of order and repeated: results must follow task order
    with SequentialExecutor(threads=1) as seq, ProcessExecutor(workers=2, threads=1) as proc:
        for name in ("fedavg", "local"):
            alg = make_algorithm(name, data, MODEL, PARAMS, seed=4)
            client = alg.client()
            want = seq.run(client, _tasks(alg, devices, 1))
            got = proc.run(client, _tasks(alg, devices, 1))
            assert [r.device for r in got] == devices
            for a, b in zip(want, got):
                _same(a, b)
            pool = proc._pool
            proc.run(client, _tasks(alg, [0], 2))
            assert proc._pool is pool  # same client: pool (and the client in it) reused
        assert proc.run(client, []) == []
    assert proc._pool is None


def test_new_client_recreates_pool(data: Any) -> None:
    a = make_algorithm("local", data, MODEL, PARAMS, seed=0)
    b = make_algorithm("local", data, MODEL, {**PARAMS, "lr": 1e-2}, seed=0)
    with ProcessExecutor(workers=1, threads=1) as proc:
        ra = proc.run(a.client(), _tasks(a, [1], 0))[0]
        pool = proc._pool
        rb = proc.run(b.client(), _tasks(b, [1], 0))[0]
        assert proc._pool is not pool
        # Different learning rate reached the worker: different model.
        assert not torch.equal(ra.state["head.weight"], rb.state["head.weight"])
        _same(rb, SequentialExecutor().run(b.client(), _tasks(b, [1], 0))[0])


def test_registry_and_validation() -> None:
    assert set(EXECUTORS) == {"sequential", "process", "batched", "ray"}
    assert isinstance(make_executor("sequential", threads=1), SequentialExecutor)
    with pytest.raises(ValueError, match="allowed.*process"):
        make_executor("gpu")
    with pytest.raises(ValueError, match="workers"):
        make_executor("process", workers=0)
    with pytest.raises(ValueError, match="start method"):
        ProcessExecutor(start_method="teleport")

