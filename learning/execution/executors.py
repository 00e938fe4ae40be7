"""Executors: *how* local updates run (the algorithm says *what* runs).

Protocol: ``executor.run(client, tasks) -> list[LocalResult]`` with tasks
``(device, state, payload, seed)`` and results in task order; ``close()``; context manager.

- ``SequentialExecutor``: in this process, ``torch.set_num_threads(threads)``.
- ``BatchedExecutor`` (``learning.execution.batched``): many devices' updates at once with ``torch.func``;
  with ``workers > 1``, in shares on a ``ProcessExecutor`` pool.
- ``RayExecutor`` (``learning.execution.ray_executor``): Ray actors, local or on a cluster (``address``).
- ``ProcessExecutor``: a ``multiprocessing`` pool of ``workers`` processes, each with
  ``torch.set_num_threads(threads)``. The client (data + config) is pickled once per pool,
  in the worker initializer; passing a different client object re-creates the pool.
  Tasks and results travel as plain pickled bytes (not through shared-memory tensors;
  ``learning.execution.transport.dumps``).
  Default start method ``forkserver`` (preloading torch and this package), which is safe
  with torch's thread pools and starts workers in well under a second after the first.
  ``map_each`` runs any module-level function in the pool: the batched executor's worker
  processes (``BatchedExecutor(workers > 1)``) are this pool.

Because ``Client.local_update`` is pure and each task carries its own seed, both
executors give bit-identical results for the same threads setting.
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
import signal
from typing import Any, Callable, Iterable, Protocol, Sequence

import torch

from learning.algorithms.base import Client, LocalResult
from learning.execution.transport import dumps
from learning.payload import Payload

__all__ = ["Task", "Executor", "SequentialExecutor", "ProcessExecutor", "EXECUTORS", "make_executor"]

Task = tuple[int, Any, "Payload | None", int]

_WORKER_CLIENT: Client | None = None  # the client of this worker process (set by the initializer)


class Executor(Protocol):
    """What the engine needs from an executor."""

    def run(self, client: Client, tasks: Sequence[Task]) -> list[LocalResult]: ...

    def close(self) -> None: ...


def _check_sizes(workers: int, threads: int) -> None:
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")


class SequentialExecutor:
    """Runs every task in this process, one after the other.

    Args:
        workers: ignored (accepted for a uniform factory signature).
        threads: intra-op threads for torch in this process.
    """

    def __init__(self, workers: int = 1, threads: int = 1) -> None:
        _check_sizes(workers, threads)
        self.threads = threads

    def run(self, client: Client, tasks: Sequence[Task]) -> list[LocalResult]:
        """Results of ``client.local_update(*task)`` in task order."""
        torch.set_num_threads(self.threads)
        return [client.local_update(int(d), state, payload, int(seed)) for d, state, payload, seed in tasks]

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> "SequentialExecutor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _init_worker(client: Client, threads: int) -> None:
    global _WORKER_CLIENT
    # Ctrl-C is the parent's to handle (it finishes the round and checkpoints); a worker
    # dying on the terminal's SIGINT would lose that round's updates.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    _WORKER_CLIENT = client


def worker_client() -> Client:
    """The client of this pool worker process (what ``ProcessExecutor`` sent it)."""
    if _WORKER_CLIENT is None:  # pragma: no cover - initializer always ran
        raise RuntimeError("worker has no client")
    return _WORKER_CLIENT


def _run_task(task_bytes: bytes) -> bytes:
    device, state, payload, seed = pickle.loads(task_bytes)
    return dumps(worker_client().local_update(int(device), state, payload, int(seed)))


class ProcessExecutor:
    """Runs tasks in a pool of worker processes (one task per worker at a time).

    Args:
        workers: number of worker processes.
        threads: torch intra-op threads per worker.
        start_method: ``"forkserver"`` (default), ``"spawn"`` or ``"fork"``.
        preload: modules the fork server imports besides torch and this one (it is started
            once per Python process: the first pool's list counts).
    """

    def __init__(self, workers: int = 1, threads: int = 1, start_method: str = "forkserver",
                 preload: Sequence[str] = ()) -> None:
        _check_sizes(workers, threads)
        if start_method not in mp.get_all_start_methods():
            raise ValueError(f"unknown start method {start_method!r}; allowed: {mp.get_all_start_methods()}")
        self.workers = workers
        self.threads = threads
        self.start_method = start_method
        self._ctx = mp.get_context(start_method)
        if start_method == "forkserver":
            self._ctx.set_forkserver_preload(["torch", "learning.execution.executors", *preload])
        self._pool: Any = None
        self._client: Client | None = None

    def _ensure_pool(self, client: Client) -> None:
        if self._pool is not None and self._client is client:
            return
        self.close()
        self._pool = self._ctx.Pool(self.workers, initializer=_init_worker, initargs=(client, self.threads))
        self._client = client

    def run(self, client: Client, tasks: Sequence[Task]) -> list[LocalResult]:
        """Results of ``client.local_update(*task)`` in task order."""
        if not tasks:
            return []
        self._ensure_pool(client)
        blobs = [dumps(tuple(task)) for task in tasks]
        return [pickle.loads(b) for b in self._pool.map(_run_task, blobs, chunksize=1)]

    def map_each(self, client: Client, fn: Callable[[Any], Any], args: Iterable[Any]) -> list[Any]:
        """``[fn(a) for a in args]`` in the pool of ``client`` (module-level ``fn``; it finds
        the client with ``worker_client()``), in order. Each argument is submitted as soon
        as it is made, so a worker starts while the next one is still being prepared."""
        self._ensure_pool(client)
        pending = [self._pool.apply_async(fn, (a,)) for a in args]
        return [p.get() for p in pending]

    def close(self) -> None:
        """Terminate the pool (a later ``run`` starts a new one)."""
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None
            self._client = None

    def __enter__(self) -> "ProcessExecutor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            if self._pool is not None:
                self._pool.terminate()
        except Exception:
            pass


def _batched(workers: int = 1, threads: int = 1, device: str = "cpu", max_devices: int | None = None) -> Executor:
    from learning.execution.batched import BatchedExecutor  # lazy: torch.func machinery only when used

    return BatchedExecutor(workers=workers, threads=threads, device=device, max_devices=max_devices)


def _ray(workers: int = 1, threads: int = 1, address: str = "local") -> Executor:
    from learning.execution.ray_executor import RayExecutor  # lazy: ray is an optional extra

    return RayExecutor(workers=workers, threads=threads, address=address)


#: name -> executor class or factory (batched: ``learning.execution.batched``; ray: ``learning.execution.ray_executor``).
EXECUTORS: dict[str, Any] = {"sequential": SequentialExecutor, "process": ProcessExecutor,
                             "batched": _batched, "ray": _ray}


def make_executor(name: str, workers: int = 1, threads: int = 1, address: str = "local",
                  device: str = "cpu", max_devices: int | None = None) -> Executor:
    """Build the registered executor ``name`` (unknown names raise ``ValueError``);
    ``address`` (``auto|local|HOST:PORT``) is used by ``ray`` only; ``device`` (``cpu``,
    ``cuda``, ``cuda:N``) and ``max_devices`` (largest stack, None: the device's default)
    by ``batched`` only (any other executor trains on the CPU, one device at a time)."""
    if name not in EXECUTORS:
        raise ValueError(f"unknown executor {name!r}; allowed: {sorted(EXECUTORS)}")
    if name == "batched":
        return EXECUTORS[name](workers=workers, threads=threads, device=device, max_devices=max_devices)
    if str(device) != "cpu":
        raise ValueError(f"device {device!r}: only the batched executor trains on a GPU; executor {name!r} "
                         f"trains on cpu")
    if max_devices is not None:
        raise ValueError(f"max_devices {max_devices!r}: only the batched executor stacks devices; executor "
                         f"{name!r} trains one at a time")
    if name == "ray":
        return EXECUTORS[name](workers=workers, threads=threads, address=address)
    return EXECUTORS[name](workers=workers, threads=threads)
