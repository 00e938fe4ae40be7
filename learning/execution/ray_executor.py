"""Ray executor: local updates run as Ray actor calls, locally or on a Ray cluster.

``execution: {executor: ray, workers: W, threads: T, address: ADDRESS}``:

* ``address="local"``: start (or reuse) a Ray instance on this machine with ``W × T`` CPUs;
  ``"auto"``: connect to the cluster already running here (``ray start --head``);
  ``"HOST:PORT"``: connect to that cluster's head (e.g. ``"10.0.0.5:6379"``).
  A Ray instance already initialised in this process is always reused as it is.
* ``W`` actors, each reserving ``T`` CPUs and running ``torch.set_num_threads(T)``, hold the
  client: it is put in the object store once (``ray.put``) and every actor gets it by
  reference, so data and config are shipped once per client, not per task. Passing a
  different client object re-creates the actors.
* Each round the tasks' device states and downlink payloads go to the object store (a
  payload shared by many devices, e.g. FedAvg's global model, is put once) and the actors
  read them from there; results come back in task order.

Because ``Client.local_update`` is pure and each task carries its own seed, results are
bit-identical to the sequential executor's for the same ``threads``. Ray is an optional
extra (``pip install 'cosim[ray]'``), imported only when this executor is built.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import torch

from learning.algorithms.base import Client, LocalResult

__all__ = ["RayExecutor", "import_ray", "ClientActor", "ADDRESS_PATTERN", "use_cluster_token"]

Task = tuple[int, Any, Any, int]
#: accepted addresses: ``auto``, ``local`` or ``HOST:PORT``.
ADDRESS_PATTERN = re.compile(r"^(auto|local|[A-Za-z0-9_.\-\[\]:]+:[0-9]{1,5})$")


def import_ray() -> Any:
    """The ``ray`` module, or an ``ImportError`` that names the fix."""
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "execution.executor 'ray' needs Ray, which is not installed; install the extra with "
            "`pip install 'cosim[ray]'` (or `pip install 'ray>=2.9'`)"
        ) from exc
    return ray


def use_cluster_token() -> None:
    """Before connecting to an existing cluster by address: a cluster started with ``ray
    start`` (Ray >= 2.5x) requires token authentication by default, but Ray's driver only
    turns it on by itself for ``address="auto"``. Do what Ray does for ``auto``: use token
    mode when a token is available (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or
    ``~/.ray/auth_token``) and ``RAY_AUTH_MODE`` is not set explicitly. No-op on a Ray
    without token authentication."""
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # pragma: no cover - Ray without token authentication
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


class ClientActor:
    """The body of one Ray actor: a client and a thread count (wrapped by ``ray.remote``)."""

    def __init__(self, client: Client, threads: int) -> None:
        torch.set_num_threads(int(threads))
        self.threads = int(threads)
        self.client = client

    def update(self, device: int, state: Any, payload: Any, seed: int) -> LocalResult:
        """``client.local_update`` (object-store arguments arrive resolved)."""
        torch.set_num_threads(self.threads)
        return self.client.local_update(int(device), state, payload, int(seed))


class RayExecutor:
    """Runs tasks on ``workers`` Ray actors of ``threads`` CPUs each.

    Args:
        workers: number of actors.
        threads: CPUs reserved by, and torch threads of, each actor.
        address: ``"local"``, ``"auto"`` or ``"HOST:PORT"`` (see the module docstring).
    """

    def __init__(self, workers: int = 1, threads: int = 1, address: str = "local") -> None:
        if workers < 1 or threads < 1:
            raise ValueError(f"workers and threads must be >= 1, got {workers}, {threads}")
        if not isinstance(address, str) or not ADDRESS_PATTERN.match(address):
            raise ValueError(f"ray address must be 'auto', 'local' or 'HOST:PORT', got {address!r}")
        self.ray = import_ray()
        self.workers, self.threads, self.address = workers, threads, address
        self._started = False  # True when this executor called ray.init (and so shuts it down)
        self._client: Client | None = None
        self._actors: list[Any] = []

    def _connect(self) -> None:
        if self.ray.is_initialized():
            return
        if self.address == "local":
            self.ray.init(num_cpus=self.workers * self.threads, include_dashboard=False, log_to_driver=False)
        else:
            use_cluster_token()
            self.ray.init(address=self.address, log_to_driver=False)
        self._started = True

    def _ensure_actors(self, client: Client) -> None:
        if self._actors and self._client is client:
            return
        self._kill_actors()
        self._connect()
        remote_cls = self.ray.remote(num_cpus=self.threads)(ClientActor)
        client_ref = self.ray.put(client)  # shipped once; every actor resolves the same object
        self._actors = [remote_cls.remote(client_ref, self.threads) for _ in range(self.workers)]
        self._client = client

    def run(self, client: Client, tasks: Sequence[Task]) -> list[LocalResult]:
        """Results of ``client.local_update(*task)`` in task order."""
        if not tasks:
            return []
        self._ensure_actors(client)
        put: dict[int, Any] = {}  # id(object) -> ObjectRef: shared payloads are put once

        def ref(obj: Any) -> Any:
            if obj is None:
                return None
            if id(obj) not in put:
                put[id(obj)] = self.ray.put(obj)
            return put[id(obj)]

        refs = []
        for i, (device, state, payload, seed) in enumerate(tasks):
            actor = self._actors[i % len(self._actors)]
            refs.append(actor.update.remote(int(device), ref(state), ref(payload), int(seed)))
        return list(self.ray.get(refs))

    def _kill_actors(self) -> None:
        for actor in self._actors:
            try:
                self.ray.kill(actor)
            except Exception:  # pragma: no cover - actor already gone
                pass
        self._actors, self._client = [], None

    def close(self) -> None:
        """Kill the actors; shut Ray down if this executor started it."""
        self._kill_actors()
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()
        self._started = False

    def __enter__(self) -> "RayExecutor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
