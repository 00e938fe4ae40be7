"""Failures that used to end in a traceback (or a silent wrong answer) are one line, exit 2.

Ray missing for ``execution.executor: ray`` (caught by ``validate``), a compare worker
that dies (its run fails, the others finish, a rerun retries it), ``compare --vary
seed=...`` (the varied seed used to collide with the ``seed`` column), plotting an
unfinished run, and a cell whose path-loss model does not reach the area's far corner.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from analysis.__main__ import main as analysis_main
from cosim import cli
from cosim.grid import CompareError, compare
from cosim.grid_pool import DIED
from cosim.scenario import components, registries

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "scenarios" / "smoke.yaml")
TINY = ["learning.mode=surrogate", "fl.rounds=1"]


def _one_line(code: int, err: str) -> str:
    lines = err.splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith(("cosim: error: ", "analysis: error: ")), err
    return lines[0]


@pytest.fixture()
def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process cannot import Ray (as on a machine without the extra)."""
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setattr(components, "_PASSED", {})


@pytest.mark.parametrize("command", ["validate", "run"])
def test_ray_executor_without_ray_fails_validation(command: str, no_ray, tmp_path: Path, capsys) -> None:
    argv = [command, SMOKE, "--set", "execution.executor=ray"]
    argv += ["--out", str(tmp_path / "run"), "--quiet"] if command == "run" else []
    line = _one_line(cli.main(argv), capsys.readouterr().err)
    assert "execution.executor: 'ray' needs Ray, which is not installed" in line
    assert not (tmp_path / "run").exists()
    # Surrogate runs build no executor: nothing to install.
    assert cli.main(["validate", SMOKE, "--set", "execution.executor=ray", "--set", "learning.mode=surrogate"]) == 0


def test_compare_ray_backend_without_ray_is_one_line(no_ray, tmp_path: Path, capsys) -> None:
    argv = ["compare", SMOKE, "--vary", "fl.rounds=1,2", "--backend", "ray", "--out", str(tmp_path / "cmp")]
    assert "--backend ray: needs Ray, which is not installed" in _one_line(cli.main(argv), capsys.readouterr().err)


def test_compare_can_vary_seed_and_keys_named_like_result_columns(tmp_path: Path, capsys) -> None:
    out = tmp_path / "cmp"
    argv = ["compare", SMOKE, *(a for s in TINY for a in ("--set", s)), "--vary", "seed=1,2",
            "--repeats", "2", "--baseline", "seed=2", "--out", str(out), "--quiet"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    table = pq.read_table(out / "comparison.parquet").to_pydict()
    assert table["varied.seed"] == ["1", "1", "2", "2"] and table["seed"] == [1, 2, 2, 3]
    assert table["repeat"] == [0, 1, 0, 1]
    text = capsys.readouterr().out
    assert text.split("mean ± std")[1].splitlines()[1].split()[:2] == ["seed", "n"]
    assert "ratio of cell means" in text and "\n2     2  " in text.split("ratio of cell means")[1]
    assert cli.main([a for a in argv if a != "--quiet"]) == 0  # resumes (died with ArrowTypeError every time)
    assert "4 of 4 runs already done" in capsys.readouterr().out
    out2 = tmp_path / "cmp2"
    argv = ["compare", SMOKE, "--set", "learning.mode=surrogate", "--vary", "fl.rounds=1,2", "--out", str(out2)]
    assert cli.main(argv) == 0
    header = capsys.readouterr().out.split("mean ± std")[1].splitlines()[1].split()
    assert header[:2] == ["fl.rounds", "n"] and header.count("rounds") == 1  # the metric keeps its name


DYING_POLICY = '''
import multiprocessing, os
from pathlib import Path
from cosim.engine.policies import RandomSelection

class DieInWorker(RandomSelection):
    """Random selection, except that it kills its worker process while the flag file exists."""

    def __init__(self, n_devices):
        if multiprocessing.parent_process() is not None and (Path(__file__).parent / "die.flag").exists():
            os._exit(7)
        super().__init__(n_devices)
'''


@pytest.fixture()
def clean_registries():
    """Resolving a plugin adds it to its layer's registry: undo that afterwards."""
    saved = {kind: dict(registries._registry(kind)) for kind in registries.KINDS}
    yield
    for kind, content in saved.items():
        registry = registries._registry(kind)
        registry.clear()
        registry.update(content)


def test_a_dead_compare_worker_fails_only_its_run_and_a_rerun_retries_it(tmp_path: Path, monkeypatch,
                                                                          clean_registries) -> None:
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "dying_policy.py").write_text(DYING_POLICY)
    (plugin / "die.flag").write_text("")
    monkeypatch.syspath_prepend(str(plugin))  # the spawned workers inherit sys.path
    out = tmp_path / "cmp"
    vary = ["fl.selection=random,dying_policy:DieInWorker,round_robin"]
    log: list[str] = []
    with pytest.raises(CompareError) as info:
        compare(SMOKE, vary, out, sets=TINY, workers=2, log=log.append)
    assert info.value.problems == [f"cells/dying_policy-DieInWorker/rep0: {DIED}"]
    assert (out / "cells/random/rep0/summary.json").is_file()
    assert (out / "cells/round_robin/rep0/summary.json").is_file()
    assert not (out / "cells/dying_policy-DieInWorker/rep0/summary.json").exists()
    (plugin / "die.flag").unlink()
    _, report = compare(SMOKE, vary, out, sets=TINY, workers=1)
    assert report.executed == ["cells/dying_policy-DieInWorker/rep0"] and len(report.skipped) == 2
    assert len(pq.read_table(out / "comparison.parquet")) == 3


def test_plotting_an_unfinished_run_says_so(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert cli.main(["run", SMOKE, "--set", "learning.mode=surrogate", "--set", "fl.rounds=2", "--out", str(run),
                     "--quiet"]) == 0
    (run / "summary.json").unlink()  # as a run killed before its end leaves it
    capsys.readouterr()
    line = _one_line(analysis_main(["plot", str(run), "--out", str(tmp_path / "png")]), capsys.readouterr().err)
    assert f"{run}: incomplete run (interrupted or still running: no summary.json), 2 of 2 rounds done" in line
    assert "present: " in line and "rounds.parquet" in line and "energy_j" not in line


def test_area_beyond_the_pathloss_range_is_an_error(capsys) -> None:
    sets = ["area={width_m: 6000, height_m: 100}", "cells=[{name: c, x_m: 100, y_m: 50, pathloss: umi}]",
            "learning.mode=surrogate"]
    argv = ["validate", SMOKE, *(a for s in sets for a in ("--set", s))]
    line = _one_line(cli.main(argv), capsys.readouterr().err)
    assert "cells.0.pathloss: umi is defined up to 5000 m (2-D), but the area's farthest corner is 5900 m" in line
    rma = [s.replace("umi", "rma") for s in sets]
    assert cli.main(["validate", SMOKE, *(a for s in rma for a in ("--set", s))]) == 0


@pytest.mark.parametrize("content", [None, "device,start_s\n0,1\n", "device,start_s,end_s\n0,5,2\n"])
def test_validate_checks_the_availability_trace_run_reads(content, tmp_path: Path, capsys) -> None:
    # #18: validate checks what run will need; a missing or bad trace file used to pass validate
    trace = tmp_path / "trace.csv"
    if content is not None:
        trace.write_text(content)
    sets = ["learning.mode=surrogate", f"devices.availability={{model: trace, path: '{trace}'}}"]
    line = _one_line(cli.main(["validate", SMOKE, *(a for s in sets for a in ("--set", s))]), capsys.readouterr().err)
    assert line.startswith("cosim: error: devices.availability.path: ") and str(trace) in line
    trace.write_text("device,start_s,end_s\n0,0,5\n")
    assert cli.main(["validate", SMOKE, *(a for s in sets for a in ("--set", s))]) == 0
