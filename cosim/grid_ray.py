"""Grid runs as Ray tasks on a Ray cluster (``cosim compare --backend ray --address HOST:PORT``).

Every pending run of the grid becomes one Ray task (``num_cpus=1``; Ray places it on any
node of the cluster). The task runs the scenario in a temporary directory of that node
and returns the run directory's files as bytes; the driver writes them into
``OUT/cells/<slug>/rep<k>/`` (each file atomically, ``summary.json`` last), so a run
directory is complete exactly when its ``summary.json`` exists, as for local runs, and an
interrupted sweep resumes with the same command. The run directories follow the local
runs' ownership rules (``cosim.engine.rundir``): the driver locks a run's directory when
it submits the task and holds the lock until the files are written, so a foreign
non-empty directory or one another process is using fails that run at once (no task is
submitted for it) and a second process into a directory being worked on fails at once;
at most ``MAX_IN_FLIGHT`` tasks (and so locks) are outstanding. No shared filesystem is needed: the
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

from cosim.engine.rundir import LOCK_NAME, MARKER_NAME, OWN_FILES, RunDir, RunDirError, acquire_fresh, check_location
from cosim.trace import write_atomic

#: Most Ray tasks outstanding at once (each holds its run directory's lock, one file descriptor).
MAX_IN_FLIGHT = 256

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


def claim_run_dir(run_dir: Path) -> RunDir:
    """Lock ``run_dir`` for a grid run as a local worker would (``cosim.engine.rundir``: an
    earlier cosim run there may be replaced, a foreign non-empty or locked directory is a
    ``RunDirError``); the caller releases it (``abandon`` when no files come)."""
    check_location(Path(run_dir), explicit=True)
    return acquire_fresh(Path(run_dir), "", overwrite=True)


def write_run_files(run_dir: Path, files: dict[str, bytes], owned: RunDir | None = None) -> None:
    """Write a run directory's files: the directory is claimed first (``claim_run_dir``,
    unless ``owned`` is its already-held claim), an earlier run's files go, then the run's
    marker, the rest and ``summary.json`` (the completion mark) last, each atomically.
    Only cosim's own file names are written (``cosim.engine.rundir.OWN_FILES``)."""
    foreign = sorted(name for name in files if name not in OWN_FILES or name == LOCK_NAME)
    if foreign:
        raise ValueError(f"{run_dir}: a run returned files cosim does not write ({', '.join(foreign[:3])}); "
                         "nothing written")
    claim = owned if owned is not None else claim_run_dir(run_dir)
    try:
        claim.clear()
        for name in sorted(files, key=lambda n: (n != MARKER_NAME, n == "summary.json", n)):
            data = files[name]
            write_atomic(claim.path / name, lambda tmp, data=data: tmp.write_bytes(data))
    finally:
        if owned is None:
            claim.release()


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"


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
    """Run ``pending`` (``RunSpec``s) as Ray tasks; ``record(done, spec, error)`` per finished run.

    Each run's directory is claimed (locked) before its task is submitted and released
    after its files are written; a directory that cannot be claimed fails that run at once.
    """
    ray, started = _connect(address, workers)
    claims: dict[str, tuple[RunDir, bool]] = {}
    try:
        task = ray.remote(num_cpus=1, max_retries=1)(run_remote)
        text = Path(scenario).read_text(encoding="utf-8")
        queue = list(pending)
        refs: dict[Any, Any] = {}
        done = 0
        while queue or refs:
            while queue and len(refs) < MAX_IN_FLIGHT:
                spec = queue.pop(0)
                run_dir = root / spec.run_dir
                existed = run_dir.exists()
                try:
                    claims[spec.run_dir] = (claim_run_dir(run_dir), existed)
                except (RunDirError, OSError) as exc:
                    done += 1
                    record(done, spec, _reason(exc))
                    continue
                refs[task.remote(text, Path(scenario).name, list(spec.overrides), str(scenario),
                                 str(run_dir))] = spec
            if not refs:
                continue
            ready, _ = ray.wait(list(refs), num_returns=1)
            spec = refs.pop(ready[0])
            owned, existed = claims.pop(spec.run_dir)
            try:
                error, files = ray.get(ready[0])
            except Exception as exc:  # noqa: BLE001 - a lost node or worker: this run failed
                error, files = _reason(exc), {}
            if error is None:
                try:
                    write_run_files(owned.path, files, owned)
                except (ValueError, OSError) as exc:  # the run's files could not be written: this run failed
                    error = _reason(exc)
                owned.release()
            else:
                owned.abandon(remove_dir=not existed)
            done += 1
            record(done, spec, error)
    finally:
        for owned, _ in claims.values():
            owned.release()
        if started:
            ray.shutdown()
