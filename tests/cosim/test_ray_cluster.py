"""Against a real Ray cluster started with ``ray start --head`` (a separate process, not an
in-process ``ray.init``): ``cosim compare --backend ray --address HOST:PORT`` runs the grid
as Ray tasks and yields the same run directories and comparison as the local backend,
and resumes; ``cosim tune`` on the cluster chooses what it chooses locally, from the same
runs; ``execution.executor: ray`` with ``execution.address`` gives the sequential
executor's traces. Skipped without Ray (optional extra)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "scenarios" / "smoke.yaml"
HAVE_RAY = importlib.util.find_spec("ray") is not None
pytestmark = pytest.mark.skipif(not HAVE_RAY, reason="ray not installed (optional extra: pip install 'cosim[ray]')")
TRACES = ("events.parquet", "rounds.parquet", "devices.parquet", "scenario.yaml")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """``ray start --head --block`` in its own process group; torn down by killing that
    group (``ray stop`` would stop every Ray instance of this user on the machine)."""
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="rc", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    ray_bin = Path(sys.executable).with_name("ray")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "RAY_USAGE_STATS_ENABLED": "0"}
    log = open(Path(temp) / "ray-start.log", "wb")
    proc = subprocess.Popen([str(ray_bin), "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
                             "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats",
                             f"--temp-dir={temp}", "--block"],
                            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"ray start exited {proc.returncode}: {(Path(temp) / 'ray-start.log').read_text()}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("ray start --head did not listen within 180 s")
            time.sleep(1)
        yield f"127.0.0.1:{port}"
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # ray start --block then stops what it started
            proc.wait(timeout=90)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def _same_run_dirs(a: Path, b: Path) -> None:
    for name in TRACES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), (a, name)


def test_compare_on_ray_cluster_equals_local_and_resumes(cluster: str, tmp_path: Path) -> None:
    from cosim.grid import compare

    vary, sets = ["learning.algorithm=fedavg,local"], ["fl.rounds=1"]
    _, local = compare(SMOKE, vary, tmp_path / "local", sets=sets, repeats=2)
    lines: list[str] = []
    plan, remote = compare(SMOKE, vary, tmp_path / "ray", sets=sets, repeats=2, backend="ray", address=cluster,
                           log=lines.append)
    assert sorted(remote.executed) == sorted(local.executed) and len(remote.executed) == 4
    assert any(f"Ray tasks at {cluster}" in line for line in lines)
    for spec in plan.runs:
        _same_run_dirs(tmp_path / "local" / spec.run_dir, tmp_path / "ray" / spec.run_dir)
        manifest = (tmp_path / "ray" / spec.run_dir / "manifest.json").read_text()
        assert str(tmp_path / "ray" / spec.run_dir) in manifest  # the command names the real run directory
    assert (tmp_path / "local" / "comparison.parquet").read_bytes() == (tmp_path / "ray" / "comparison.parquet").read_bytes()
    # Resume: only the run whose summary.json is missing runs again, on the cluster.
    lost = plan.runs[1].run_dir
    (tmp_path / "ray" / lost / "summary.json").unlink()
    _, again = compare(SMOKE, vary, tmp_path / "ray", sets=sets, repeats=2, backend="ray", address=cluster)
    assert again.executed == [lost] and len(again.skipped) == 3
    _same_run_dirs(tmp_path / "local" / lost, tmp_path / "ray" / lost)


def test_ray_executor_on_cluster_equals_sequential(cluster: str, tmp_path: Path) -> None:
    from cosim.engine import run_simulation
    from cosim.scenario import load_scenario

    base = ["fl.rounds=2", "learning.algorithm.name=pfl_tps"]
    run_simulation(load_scenario(SMOKE, base), tmp_path / "seq")
    ray_exec = f"execution={{executor: ray, workers: 2, threads: 1, address: '{cluster}'}}"
    run_simulation(load_scenario(SMOKE, [*base, ray_exec]), tmp_path / "ray")
    for name in ("events.parquet", "rounds.parquet", "devices.parquet"):
        assert (tmp_path / "seq" / name).read_bytes() == (tmp_path / "ray" / name).read_bytes(), name


def test_tune_on_ray_cluster_chooses_as_locally(cluster: str, tmp_path: Path) -> None:
    import cosim

    grid, sets = {"lr": ["1e-7", "5e-3"]}, ["fl.rounds=2"]
    local = cosim.tune(SMOKE, "fedavg", grid=grid, out=tmp_path / "local", overrides=sets, progress=False)
    remote = cosim.tune(SMOKE, "fedavg", grid=grid, out=tmp_path / "ray", overrides=sets, progress=False,
                        backend="ray", address=cluster)
    assert remote.chosen == local.chosen == {"learning.algorithm.params.lr": 0.005}
    assert remote.file.read_text(encoding="utf-8").replace(str(tmp_path / "ray"), "") == \
        local.file.read_text(encoding="utf-8").replace(str(tmp_path / "local"), "")
    assert list(remote.table["val_accuracy_mean"]) == list(local.table["val_accuracy_mean"])
    for run_dir in local.runs["run_dir"]:
        _same_run_dirs(tmp_path / "local" / run_dir, tmp_path / "ray" / run_dir)


def test_bad_backend_and_address_are_one_line_errors(tmp_path: Path) -> None:
    from cosim.grid import compare

    with pytest.raises(ValueError, match="--backend 'slurm'"):
        compare(SMOKE, ["fl.rounds=1,2"], tmp_path / "a", backend="slurm")
    with pytest.raises(ValueError, match="--address 'nowhere'"):
        compare(SMOKE, ["fl.rounds=1"], tmp_path / "b", backend="ray", address="nowhere")
