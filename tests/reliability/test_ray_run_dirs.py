"""The Ray backend of ``compare`` writes run directories under the same ownership and lock
rules as local runs (#18): a foreign non-empty directory is refused and left as it was, a
directory another process holds fails at once, only cosim's own file names are written,
and the driver holds a run's lock from submitting its task until its files are written.

No Ray cluster is needed: ``write_run_files`` is tested directly, and ``run_on_ray`` with
a stand-in for the ``ray`` module that runs the real task (``run_remote``) in-process.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from cosim import grid_ray
from cosim.engine.rundir import MARKER_NAME, RunDirError, acquire_fresh
from cosim.grid import CompareError, build_plan, compare

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "scenarios" / "smoke.yaml"
SETS = ["learning.mode=surrogate", "fl.rounds=2", "output.formats=[parquet]"]

def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


def run_files(tmp_path: Path) -> dict[str, bytes]:
    """The files of a real finished run (as a Ray task returns them)."""
    error, files = grid_ray.run_remote(SMOKE.read_text(), SMOKE.name, SETS, str(SMOKE), str(tmp_path / "shown"))
    assert error is None and "summary.json" in files and MARKER_NAME in files
    return files


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    return run_files(tmp_path_factory.mktemp("remote"))


def test_write_run_files_refuses_a_foreign_directory(files, tmp_path: Path) -> None:
    cell = tmp_path / "cells" / "a" / "rep0"
    cell.mkdir(parents=True)
    (cell / "thesis.tmp-2023").write_text("chapter 1")
    (cell / "events.csv").write_text("mine")
    before = snapshot(cell)
    with pytest.raises(RunDirError, match="not a cosim run directory"):
        grid_ray.write_run_files(cell, files)
    assert snapshot(cell) == before


def test_write_run_files_fails_at_once_on_a_locked_directory(files, tmp_path: Path, lock_holder) -> None:
    cell = tmp_path / "cell"
    grid_ray.write_run_files(cell, files)
    (cell / "summary.json").unlink()  # an unfinished run another process is working on
    holder = lock_holder(cell / ".cosim-lock")
    before = snapshot(cell)
    started = time.monotonic()
    with pytest.raises(RunDirError, match=f"another cosim process \\(pid {holder.pid}\\)"):
        grid_ray.write_run_files(cell, files)
    assert time.monotonic() - started < 20  # at once, not after waiting for the holder
    assert snapshot(cell) == before


def test_write_run_files_replaces_an_earlier_run_marker_first_summary_last(files, tmp_path: Path, monkeypatch) -> None:
    cell = tmp_path / "cell"
    grid_ray.write_run_files(cell, {**files, "events.csv": b"an earlier run's csv"})
    order: list[str] = []
    real = grid_ray.write_atomic

    def recording(path, write):
        order.append(Path(path).name)
        return real(path, write)

    monkeypatch.setattr(grid_ray, "write_atomic", recording)
    grid_ray.write_run_files(cell, files)
    assert order[0] == MARKER_NAME and order[-1] == "summary.json" and sorted(order) == sorted(files)
    assert not (cell / "events.csv").exists()  # the earlier run's own file is gone
    assert snapshot(cell) == {**files, ".cosim-lock": (cell / ".cosim-lock").read_bytes()}
    acquire_fresh(cell, "", overwrite=True).release()  # the lock was released


@pytest.mark.parametrize("name", ["../escaped", "notes.txt", ".cosim-lock"])
def test_write_run_files_writes_only_cosim_file_names(name: str, files, tmp_path: Path) -> None:
    cell = tmp_path / "cells" / "rep0"
    with pytest.raises(ValueError, match="files cosim does not write"):
        grid_ray.write_run_files(cell, {**files, name: b"x"})
    assert not (tmp_path / "cells").exists() and not (tmp_path / "escaped").exists()


class Ref:
    """A submitted task (an object reference stand-in)."""

    def __init__(self, fn, args) -> None:
        self.fn, self.args = fn, args


class FakeRay:
    """Just enough of the ``ray`` module for ``run_on_ray``: tasks run at ``ray.get``. Before
    each task runs, it checks that the driver holds the lock of that task's run directory."""

    def __init__(self) -> None:
        self.submitted: list[str] = []
        self.locked_while_running: list[bool] = []

    def remote(self, **_options):
        fake = self

        class Task:
            def __init__(self, fn):
                self.fn = fn

            def remote(self, *args):
                fake.submitted.append(args[4])
                return Ref(self.fn, args)

        return Task

    def wait(self, refs, num_returns=1):
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref):
        fn, args = ref.fn, ref.args
        try:
            acquire_fresh(Path(args[4]), "", overwrite=True).release()
            self.locked_while_running.append(False)
        except RunDirError:
            self.locked_while_running.append(True)
        return fn(*args)

    def shutdown(self) -> None:
        pass


def test_compare_on_ray_claims_each_run_directory(tmp_path: Path, monkeypatch) -> None:
    fake = FakeRay()
    monkeypatch.setattr(grid_ray, "_connect", lambda address, workers: (fake, False))
    monkeypatch.setattr("cosim.scenario.components.ray_available", lambda: True)  # no Ray needed
    out = tmp_path / "cmp"
    foreign = out / "cells" / "1" / "rep0"
    assert [spec.run_dir for spec in build_plan(SMOKE, ["fl.rounds=1,2"], SETS[:1]).runs] == ["cells/1/rep0",
                                                                                              "cells/2/rep0"]
    foreign.mkdir(parents=True)
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(CompareError) as failed:
        compare(SMOKE, ["fl.rounds=1,2"], out, sets=SETS[:1], backend="ray", address="local")
    assert "cells/1/rep0: RunDirError" in str(failed.value) and "not a cosim run directory" in str(failed.value)
    assert snapshot(foreign) == {"notes.txt": b"mine"}
    done = out / "cells" / "2" / "rep0"
    assert fake.submitted == [str(done)]  # no task for the refused directory
    assert fake.locked_while_running == [True]  # the driver held the lock while the task ran
    assert json.loads((done / "summary.json").read_text())["rounds"] == 2
    assert (done / MARKER_NAME).is_file()
    acquire_fresh(done, "", overwrite=True).release()  # released after writing
