"""Ray executor: results bit-equal to sequential on a local Ray instance (skipped when Ray,
an optional extra, is not installed), clear error without Ray, address validation."""

from __future__ import annotations

import importlib.util
import sys
from typing import Any, Iterator

import pytest
import torch

from cosim.scenario.schema import Execution
from learning.algorithms import make_algorithm
from learning.algorithms.base import LocalResult
from learning.data import build_federated_data, make_synthetic
from learning.execution import SequentialExecutor, make_executor

MODEL = {"patch_size": 14, "dim": 16, "depth": 1, "heads": 2, "mlp_ratio": 2.0}
HAVE_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="ray not installed (optional extra: pip install 'cosim[ray]')")


@pytest.fixture(scope="module")
def data() -> Any:
    return build_federated_data(make_synthetic(96, 48, num_classes=4, seed=0), 4, "dirichlet", {"alpha": 0.5}, seed=0)


@pytest.fixture(scope="module")
def ray_local() -> Iterator[Any]:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _same(a: LocalResult, b: LocalResult) -> None:
    assert (a.device, a.flops, a.samples, a.metrics) == (b.device, b.flops, b.samples, b.metrics)
    flat = []
    for r in (a, b):
        tensors: dict[str, torch.Tensor] = {}
        if isinstance(r.state, dict):
            for k, v in r.state.items():
                tensors.update({f"{k}.{n}": t for n, t in v.items()} if isinstance(v, dict) else {k: v})
        if r.uplink is not None:
            tensors.update({f"up.{n}": t for n, t in r.uplink.tensors.items()})
        flat.append(tensors)
    assert list(flat[0]) == list(flat[1])
    assert all(torch.equal(flat[0][k], flat[1][k]) for k in flat[0])


@needs_ray
def test_ray_results_bit_equal_to_sequential(data: Any, ray_local: Any) -> None:
    devices = [3, 0, 2, 1, 3]
    with make_executor("ray", workers=2, threads=1, address="local") as ex:
        for name in ("fedavg", "pfl_tps"):
            alg = make_algorithm(name, data, MODEL, {"batch_size": 16}, seed=4)
            tasks = [(d, alg.device_state(d), alg.downlink(d, 1), 100 + d) for d in devices]
            want = SequentialExecutor(threads=1).run(alg.client(), tasks)
            got = ex.run(alg.client(), tasks)
            assert [r.device for r in got] == devices
            for a, b in zip(want, got):
                _same(a, b)
            actors = list(ex._actors)
            ex.run(alg.client(), tasks[:1])
            assert ex._actors == actors  # same client: actors (and the client in them) reused
        assert ex.run(alg.client(), []) == []
        assert not ex._started  # Ray was initialised by the fixture: the executor leaves it up
    assert ray_local.is_initialized()


def test_missing_ray_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(ImportError, match=r"pip install 'cosim\[ray\]'"):
        make_executor("ray")


def test_execution_schema_accepts_new_executors_and_addresses() -> None:
    assert Execution(executor="batched").executor == "batched"
    for address in ("auto", "local", "10.0.0.5:6379", "head.example.org:6379"):
        assert Execution(executor="ray", address=address).address == address
    for bad in ("cluster", "host:", "host:99999", ":6379"):
        with pytest.raises(ValueError, match="auto, local or HOST:PORT"):
            Execution(executor="ray", address=bad)
    with pytest.raises(ValueError, match="address"):  # checked before Ray is imported
        make_executor("ray", address="cluster")
