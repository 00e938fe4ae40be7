"""Grid runs in a local ``spawn`` process pool that survives a worker dying.

A worker process that dies (killed by the OOM killer or ``kill -9``, a segfault in a
native library, ``os._exit`` in a plugin) breaks a ``ProcessPoolExecutor``: every run
not finished yet gets ``BrokenProcessPool``, including runs that never started. Here
each run touches a marker file when it starts and removes it when it returns, so after
a break the driver knows which runs were in flight:

* runs that never started are run again in a fresh pool;
* a single run in flight is the one whose worker died: it is recorded as failed;
* several in flight (one died, the pool killed the others) are each re-run alone in a
  one-worker pool, which tells the run that kills its worker from the innocent ones.

Every run ends recorded exactly once, as done or with a one-line reason; a rerun of
``compare`` retries the failed ones (they have no ``summary.json``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path
from typing import Any

__all__ = ["DIED", "run_in_pool"]

#: Failure reason of a run whose worker process died under it.
DIED = "the worker process running it died (killed, out of memory or crashed): BrokenProcessPool"
#: Pool breaks in a row with no run in flight before the remaining runs are given up.
MAX_IDLE_BREAKS = 2


def _run_marked(marker: str, scenario: str, overrides: list[str], out_dir: str) -> str | None:
    """Worker: mark the run as started, run it (``cosim.grid._run_one``), unmark it."""
    from cosim.grid import _run_one

    Path(marker).touch()
    error = _run_one(scenario, overrides, out_dir)
    Path(marker).unlink(missing_ok=True)
    return error


def _marker(markers: Path, spec: Any) -> Path:
    return markers / spec.run_dir.replace("/", "__")


def _pool_pass(scenario: Path, specs: Sequence[Any], root: Path, workers: int, markers: Path,
               finish: Callable[[Any, str | None], None]) -> tuple[list[Any], list[Any]]:
    """Run ``specs`` in one pool; return (runs in flight when it broke, runs that never started)."""
    in_flight: list[Any] = []
    waiting: list[Any] = []
    with ProcessPoolExecutor(max_workers=min(workers, len(specs)), mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(_run_marked, str(_marker(markers, spec)), str(scenario), list(spec.overrides),
                               str(root / spec.run_dir)): spec for spec in specs}
        for future in as_completed(futures):
            spec = futures[future]
            try:
                error = future.result()
            except BrokenProcessPool:
                (in_flight if _marker(markers, spec).exists() else waiting).append(spec)
                continue
            finish(spec, error)
    order = {spec.run_dir: i for i, spec in enumerate(specs)}
    return sorted(in_flight, key=lambda s: order[s.run_dir]), sorted(waiting, key=lambda s: order[s.run_dir])


def run_in_pool(scenario: Path, specs: Sequence[Any], root: Path, workers: int,
                record: Callable[[int, Any, str | None], None], log: Callable[[str], None]) -> None:
    """Run ``specs`` (``cosim.grid.RunSpec``) ``workers`` at a time; ``record(done, spec, error)`` once per run."""
    done = 0

    def finish(spec: Any, error: str | None) -> None:
        nonlocal done
        done += 1
        record(done, spec, error)

    queue = list(specs)
    idle_breaks = 0
    with tempfile.TemporaryDirectory(prefix="cosim-compare-") as tmp:
        markers = Path(tmp)
        while queue:
            in_flight, queue = _pool_pass(scenario, queue, root, workers, markers, finish)
            if len(in_flight) == 1:
                finish(in_flight[0], DIED)
            elif in_flight:
                log(f"a worker process died with {len(in_flight)} runs in flight: re-running them one at a time")
                for spec in in_flight:
                    _marker(markers, spec).unlink(missing_ok=True)
                    lost, unstarted = _pool_pass(scenario, [spec], root, 1, markers, finish)
                    if lost or unstarted:
                        finish(spec, DIED)
            idle_breaks = 0 if in_flight or not queue else idle_breaks + 1
            if idle_breaks >= MAX_IDLE_BREAKS:
                for spec in queue:
                    finish(spec, "worker processes die before running anything: BrokenProcessPool")
                queue = []
