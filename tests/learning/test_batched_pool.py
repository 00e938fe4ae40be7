"""Batched executor with worker processes (``workers > 1``): shares balanced by samples,
results equal to the in-process path (FedAvg, local, PFL-TPS, ragged data) in task order,
fallback tasks in the pool, the pool's life cycle."""

from __future__ import annotations

from typing import Any

import pytest

from learning.algorithms import make_algorithm
from learning.execution import SequentialExecutor, make_executor
from learning.execution.batched import BatchedExecutor, assign_shares, batched_plan
from batched_setup import DEVICES, MODEL, data  # noqa: F401 (fixture: used by name)
from batched_setup import assert_close_results as _close
from batched_setup import tasks as _tasks
from test_executors import _same


def test_assign_shares_balances_samples_not_counts() -> None:
    # One long pole: by count (4 + 4) the loads would be 103 and 4; by samples 100 and 7.
    assert assign_shares([100, 1, 1, 1, 1, 1, 1, 1], 2) == [[0], [1, 2, 3, 4, 5, 6, 7]]
    # Greedy longest first: 50 -> A, 40 -> B, 30 -> B, 20 -> A, 10 -> A (tie: first), 0 -> B.
    weights = [10, 50, 20, 40, 30, 0]
    assert assign_shares(weights, 2) == [[0, 1, 2], [3, 4, 5]]
    assert assign_shares(weights, 2) == assign_shares(list(weights), 2)  # deterministic
    shares = assign_shares([7, 3, 9, 1, 4, 4, 6], 3)
    assert sorted(i for s in shares for i in s) == list(range(7))  # every task once
    assert [sum([7, 3, 9, 1, 4, 4, 6][i] for i in s) for s in shares] == [11, 12, 11]
    assert assign_shares([5, 5], 4) == [[0], [1]]  # never an empty share
    assert assign_shares([], 2) == []
    with pytest.raises(ValueError, match="n_shares"):
        assign_shares([1], 0)


@pytest.mark.parametrize(("name", "extra"), [
    ("fedavg", {"optimizer": "sgd", "weight_decay": 1e-3}),
    ("local", {}),
    ("pfl_tps", {}),
])
def test_worker_shares_equal_the_in_process_path(data: Any, name: str, extra: dict[str, Any]) -> None:
    alg = make_algorithm(name, data, MODEL, {"local_epochs": 1.5, "batch_size": 16, **extra}, seed=4)
    devices = DEVICES + [2, 4, 0]  # 9 tasks, ragged, out of order and repeated
    with BatchedExecutor(workers=1) as here, make_executor("batched", workers=2, threads=1) as pooled:
        assert isinstance(pooled, BatchedExecutor) and pooled.workers == 2
        for r in range(2):
            tasks = _tasks(alg, devices, r)
            want, got = here.run(alg.client(), tasks), pooled.run(alg.client(), tasks)
            assert pooled._pool is not None and pooled._pool._pool is not None  # really ran in the pool
            assert [x.device for x in got] == devices
            assert len({x.samples for x in got}) > 2  # really ragged
            for a, b in zip(want, got):
                _close(a, b, adam_sal=name != "fedavg")
            for res in want:  # round 1 starts from trained states / an aggregated model
                alg.commit(res)
            if alg.communicates:
                alg.aggregate({res.device: (res.uplink, res.samples) for res in want}, r)


def test_tasks_without_a_plan_run_in_the_workers_exactly(data: Any) -> None:
    # Dropout: no plan, so every task is a plain local update (in a worker): bit-equal.
    alg = make_algorithm("fedavg", data, {**MODEL, "dropout": 0.1}, {"batch_size": 16}, seed=1)
    assert batched_plan(alg.client()) is None
    tasks = _tasks(alg, [4, 1, 0, 3], 0)
    with BatchedExecutor(workers=2) as ex:
        got = ex.run(alg.client(), tasks)
    for a, b in zip(SequentialExecutor(threads=1).run(alg.client(), tasks), got):
        _same(a, b)


def test_pool_reused_per_client_recreated_for_another_and_closed(data: Any) -> None:
    a = make_algorithm("local", data, MODEL, {"batch_size": 16}, seed=0)
    b = make_algorithm("local", data, MODEL, {"batch_size": 16, "lr": 1e-2}, seed=0)
    ex = BatchedExecutor(workers=2)
    assert ex.run(a.client(), []) == [] and ex._pool._pool is None  # nothing to do: no pool
    ra = ex.run(a.client(), _tasks(a, [1, 2], 0))
    pool = ex._pool._pool
    ex.run(a.client(), _tasks(a, [0], 1))
    assert ex._pool._pool is pool  # same client: pool reused
    rb = ex.run(b.client(), _tasks(b, [1, 2], 0))
    assert ex._pool._pool is not pool  # another client: a new pool with that client
    assert not all(x.state["head.weight"].equal(y.state["head.weight"]) for x, y in zip(ra, rb))
    for want, got in zip(BatchedExecutor().run(b.client(), _tasks(b, [1, 2], 0)), rb):
        _close(want, got)
    ex.close()
    assert ex._pool._pool is None
    with ex:  # usable again after close; __exit__ closes
        ex.run(a.client(), _tasks(a, [3], 0))
        assert ex._pool._pool is not None
    assert ex._pool._pool is None


def test_one_worker_keeps_no_pool() -> None:
    ex = make_executor("batched", workers=1, threads=1)
    assert isinstance(ex, BatchedExecutor) and ex._pool is None


def test_rounds_leave_no_descriptors_behind(data: Any) -> None:
    # Each share and its results travel through an in-memory file: every round closes them.
    import os

    alg = make_algorithm("fedavg", data, MODEL, {"batch_size": 16}, seed=0)
    with BatchedExecutor(workers=2) as ex:
        ex.run(alg.client(), _tasks(alg, [0, 1, 2], 0))  # the pool and its pipes exist now
        before = len(os.listdir("/proc/self/fd"))
        for r in range(1, 4):
            ex.run(alg.client(), _tasks(alg, [0, 1, 2], r))
        assert len(os.listdir("/proc/self/fd")) == before
