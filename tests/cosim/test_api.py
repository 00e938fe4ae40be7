"""The Python API: ``cosim.load_scenario``, ``run``, ``open_run``, ``resume``, ``compare``; cheap ``import cosim``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import cosim
from cosim.scenario import Scenario, ScenarioError

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "scenarios" / "smoke.yaml"


def test_import_cosim_loads_neither_torch_nor_pandas() -> None:
    code = ("import sys, cosim; heavy = sorted(m for m in ('torch', 'pandas', 'simpy', 'pyarrow', 'cosim.api') "
            "if m in sys.modules); print(heavy); assert callable(cosim.run) and 'torch' not in sys.modules")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_top_level_names_and_unknown_attribute() -> None:
    for name in ("load_scenario", "run", "resume", "open_run", "compare", "Run", "Scenario", "ScenarioError"):
        assert name in dir(cosim) and getattr(cosim, name) is not None
    assert cosim.Scenario is Scenario
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        cosim.nope  # noqa: B018


def test_load_scenario_with_mapping_and_string_overrides() -> None:
    scenario = cosim.load_scenario(SMOKE, overrides={"fl.rounds": 3, "learning.algorithm": "local",
                                                     "cells.0.tx_power_dbm": 30.5})
    assert isinstance(scenario, Scenario)
    assert scenario.fl.rounds == 3 and scenario.learning.algorithm.name == "local"
    assert scenario.cells[0].tx_power_dbm == 30.5
    same = cosim.load_scenario(SMOKE, overrides=["fl.rounds=3", "learning.algorithm=local", "cells.0.tx_power_dbm=30.5"])
    assert same == scenario
    # a mapping value is used as given, never re-parsed as YAML: the string "3" is not the int 3
    with pytest.raises(ScenarioError) as info:
        cosim.load_scenario(SMOKE, overrides={"fl.rounds": "3"})
    assert len(info.value.problems) == 1 and info.value.problems[0].startswith("fl.rounds:")


def test_load_scenario_errors_are_one_line_per_problem() -> None:
    with pytest.raises(ScenarioError) as info:
        cosim.load_scenario(SMOKE, overrides={"fl.devices_per_round": 80, "fl.selection": "bogus"})
    assert info.value.problems == [  # field errors first; cross-field checks run on a valid model
        "fl.selection: 'bogus' is not one of random, round_robin, channel_aware, energy_aware, deadline_aware, "
        "or an import path 'package.module:Name'",
    ]
    with pytest.raises(ScenarioError) as info:
        cosim.load_scenario(SMOKE, overrides={"fl.devices_per_round": 80})
    assert info.value.problems == ["fl.devices_per_round: 80 > devices.count (6)"]
    with pytest.raises(ScenarioError, match="learning.algorithm"):  # known only to the learning layer
        cosim.load_scenario(SMOKE, overrides={"learning.algorithm.params": {"no_such_param": 1}})
    with pytest.raises(TypeError, match="overrides"):
        cosim.load_scenario(SMOKE, overrides="fl.rounds=3")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[cosim.Run, list]:
    out = tmp_path_factory.mktemp("api") / "smoke"
    seen: list = []
    result = cosim.run(SMOKE, out=out, overrides={"fl.rounds": 2}, progress=seen.append)
    return result, seen


def test_run_returns_a_run_with_typed_frames(smoke_run: tuple[cosim.Run, list]) -> None:
    run, seen = smoke_run
    assert isinstance(run, cosim.Run) and run.finished
    assert [(p.round, p.rounds) for p in seen] == [(1, 2), (2, 2)]
    assert isinstance(run.rounds, pd.DataFrame) and list(run.rounds["round"]) == [0, 1]
    events = run.events
    assert isinstance(events["kind"].dtype, pd.CategoricalDtype)
    assert {"round_start", "dl_end", "compute_end", "ul_end"} <= set(events["kind"].cat.categories)
    assert events["time_s"].dtype == "float64" and events["bytes"].dtype == "int64"
    assert events["device"].dtype == "int64" and events["detail"].dtype == "str"
    assert run.rounds["aggregated"].dtype == bool and run.rounds["accuracy"].dtype == "float64"
    assert len(run.devices) == 6 and isinstance(run.devices["profile"].dtype, pd.CategoricalDtype)
    on_disk = json.loads((run.path / "summary.json").read_text())
    assert run.summary == on_disk and run.summary["rounds"] == 2
    assert run.scenario.fl.rounds == 2 and run.scenario.name == "smoke"
    # traces agree with the summary
    assert int(events.loc[events.kind == "ul_end", "bytes"].sum()) == run.summary["uplink_bytes"]
    assert run.rounds["energy_j"].sum() == pytest.approx(run.summary["energy_j"], rel=1e-9)


def test_open_run_reads_the_same_run(smoke_run: tuple[cosim.Run, list]) -> None:
    run, _ = smoke_run
    again = cosim.open_run(str(run.path))
    for name in ("events", "rounds", "devices"):
        pd.testing.assert_frame_equal(getattr(again, name), getattr(run, name))
    assert again.summary == run.summary and again.scenario == run.scenario and again.finished


def test_open_run_csv_only_gives_the_same_frames(smoke_run: tuple[cosim.Run, list], tmp_path: Path) -> None:
    run, _ = smoke_run
    for name in ("events", "rounds", "devices"):
        shutil.copy(run.path / f"{name}.csv", tmp_path)
    shutil.copy(run.path / "scenario.yaml", tmp_path)
    csv_run = cosim.open_run(tmp_path)
    for name in ("events", "rounds", "devices"):
        pd.testing.assert_frame_equal(getattr(csv_run, name), getattr(run, name), check_exact=True)
    assert not csv_run.finished and csv_run.summary == {}


def test_open_run_refuses_a_non_run_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        cosim.open_run(tmp_path)


def test_manifest_command_reruns_the_run(smoke_run: tuple[cosim.Run, list], tmp_path: Path) -> None:
    run, _ = smoke_run
    command = run.manifest["command"]
    assert command[:3] == [sys.executable, "-m", "cosim"] and "--set" in command
    assert run.command.startswith(sys.executable)
    kept = tmp_path / "kept"
    shutil.copytree(run.path, kept)
    shutil.rmtree(run.path)
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert proc.returncode == 0, proc.stderr
        for name in ("events.parquet", "rounds.parquet", "devices.parquet", "summary.json"):
            assert (run.path / name).read_bytes() == (kept / name).read_bytes(), name
    finally:
        shutil.rmtree(run.path, ignore_errors=True)
        shutil.copytree(kept, run.path)


def test_run_with_scenario_object_and_overrides(tmp_path: Path) -> None:
    scenario = cosim.load_scenario(SMOKE, overrides={"learning.mode": "surrogate"})
    run = cosim.run(scenario, out=tmp_path / "r", overrides={"fl.rounds": 1}, progress=False)
    assert run.summary["rounds"] == 1 and run.scenario.learning.mode == "surrogate"
    assert scenario.fl.rounds == 6  # the given scenario is not modified (smoke.yaml has 6 rounds)
    assert run.manifest["command"][3:] == ["run", str(tmp_path / "r" / "scenario.yaml"), "--out", str(tmp_path / "r"),
                                           "--overwrite"]


def test_run_progress_true_prints_lines_when_not_a_tty(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cosim.run(SMOKE, out=tmp_path / "p", overrides={"learning.mode": "surrogate", "fl.rounds": 2})
    out = capsys.readouterr().out.splitlines()
    assert [line.split("  ")[0] for line in out] == ["round 1/2", "round 2/2"]


def test_run_rejects_an_out_path_below_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ScenarioError, match="exists and is not a directory"):
        cosim.run(SMOKE, out=tmp_path / "file" / "run", progress=False)
    with pytest.raises(TypeError, match="scenario"):
        cosim.run(42, progress=False)  # type: ignore[arg-type]


def test_compare_returns_the_grid_as_a_dataframe(tmp_path: Path) -> None:
    frame = cosim.compare(SMOKE, vary={"learning.algorithm": ["fedavg", "local"]}, out=tmp_path / "c",
                          overrides={"learning.mode": "surrogate", "fl.rounds": 1}, repeats=2, progress=False)
    assert isinstance(frame, pd.DataFrame) and len(frame) == 4
    assert frame.attrs["varied"] == ["learning.algorithm.name"]
    assert list(frame["learning.algorithm.name"]) == ["fedavg", "fedavg", "local", "local"]
    assert list(frame["repeat"]) == [0, 1, 0, 1] and list(frame["seed"]) == [1, 2, 1, 2]
    assert frame["energy_j"].dtype == "float64" and (frame["energy_j"] > 0).all()
    for row in frame.itertuples():
        assert cosim.open_run(tmp_path / "c" / row.run_dir).summary["energy_j"] == row.energy_j
    # the CSV twin gives the same frame
    from analysis.io import read_comparison_frame

    (tmp_path / "c" / "comparison.parquet").unlink()
    pd.testing.assert_frame_equal(read_comparison_frame(tmp_path / "c"), frame, check_exact=True)
