"""Grid runs as Ray tasks on a Ray cluster (``cosim compare --backend ray --address HOST:PORT``).

Every pending run of the grid becomes one Ray task (``num_cpus=1``; Ray places it on any
node of the cluster). The task runs the scenario in a temporary directory of that node
and returns the run directory's files as bytes; the driver writes them into
``OUT/cells/<slug>/rep<k>/`` (each file atomically, ``summary.json`` last), so a run
directory is complete exactly when its ``summary.json`` exists, as for local runs, and an
interrupted sweep resumes with the same command. No shared filesystem is needed: the
scenario travels as its YAML text and the results come back through Ray's object store.
The nodes need cosim and its dependencies importable (the driver's environment: e.g.
``pip install -e .`` or ``PYTHONPATH`` set for ``ray start``), and the dataset where the
scenario names it (``/usr/share/datasets/fashion-mnist`` or the node's cache).

``address``: ``"HOST:PORT"`` of the cluster's head (as printed by ``ray start --head``),
``"auto"`` (the cluster already running on this machine) or ``"local"`` (start a Ray
instance in this process with ``workers`` CPUs). A Ray instance already initialised in
this process is used as it is; one this module started is shut down at the end.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cosim.engine.rundir import LOCK_NAME
from cosim.trace import write_atomic

__all__ = ["run_on_ray", "run_remote", "write_run_files"]


def run_remote(scenario_text: str, scenario_name: str, overrides: Sequence[str],
               shown_scenario: str, shown_out: str) -> tuple[str | None, dict[str, bytes]]:
    """The Ray task: run one grid point in a temporary directory; return (None, files of the
    run directory by relative path) or (one-line reason, {}). ``shown_*`` are the paths
    the manifest's command names (the driver's scenario file and run directory)."""
    from cosim.engine import run_simulation
    from cosim.scenario import load_scenario

    with tempfile.TemporaryDirectory(prefix="cosim-ray-") as tmp:
        path = Path(tmp) / scenario_name
        path.write_text(scenario_text, encoding="utf-8")
        out = Path(tmp) / "run"
        command = [sys.executable, "-m", "cosim", "run", shown_scenario,
                   *(arg for o in overrides for arg in ("--set", o)), "--out", shown_out]
        try:
            run_simulation(load_scenario(path, list(overrides)), out, command=command)
        except Exception as exc:  # noqa: BLE001 - reported per run, the sweep goes on
            first = (str(exc).splitlines() or [""])[0]
            return f"{type(exc).__name__}: {first}", {}
        return None, {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
                      if p.is_file() and p.name != LOCK_NAME}


def write_run_files(run_dir: Path, files: dict[str, bytes]) -> None:
    """Write a run directory's files atomically, ``summary.json`` (the completion mark) last."""
    for name in sorted(files, key=lambda n: n == "summary.json"):
        data = files[name]
        write_atomic(run_dir / name, lambda tmp, data=data: tmp.write_bytes(data))


def _connect(address: str, workers: int) -> tuple[Any, bool]:
    from learning.execution.ray_executor import ADDRESS_PATTERN, import_ray, use_cluster_token

    if not isinstance(address, str) or not ADDRESS_PATTERN.match(address):
        raise ValueError(f"--address {address!r}: must be 'auto', 'local' or HOST:PORT")
    ray = import_ray()
    if ray.is_initialized():
        return ray, False
    if address == "local":
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    else:
        use_cluster_token()
        ray.init(address=address, log_to_driver=False)
    return ray, True


def run_on_ray(scenario: Path, pending: Sequence[Any], root: Path, address: str, workers: int,
               record: Callable[[int, Any, str | None], None]) -> None:
    """Run ``pending`` (``RunSpec``s) as Ray tasks; ``record(done, spec, error)`` per finished run."""
    ray, started = _connect(address, workers)
    try:
        task = ray.remote(num_cpus=1, max_retries=1)(run_remote)
        text = Path(scenario).read_text(encoding="utf-8")
        refs = {task.remote(text, Path(scenario).name, list(spec.overrides), str(scenario),
                            str(root / spec.run_dir)): spec for spec in pending}
        done = 0
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1)
            spec = refs.pop(ready[0])
            try:
                error, files = ray.get(ready[0])
            except Exception as exc:  # noqa: BLE001 - a lost node or worker: this run failed
                error, files = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}", {}
            if error is None:
                write_run_files(root / spec.run_dir, files)
            done += 1
            record(done, spec, error)
    finally:
        if started:
            ray.shutdown()
