"""Run-directory ownership (#18, #16): cosim writes only into a directory that is its own,
deletes only files it wrote, refuses dangerous locations in one line (exit 2), and a
second process into a locked run directory fails at once."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cosim import cli

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "scenarios" / "smoke.yaml"
SETS = ["learning.mode=surrogate", "fl.rounds=2", "output.formats=[parquet]"]


def run_cli(capsys: pytest.CaptureFixture[str], *args: str, sets=SETS) -> tuple[int, list[str]]:
    code = cli.main(["run", *args, "--quiet", *[a for s in sets for a in ("--set", s)]])
    return code, capsys.readouterr().err.strip().splitlines()


def assert_refused(code: int, err: list[str], *fragments: str) -> None:
    assert code == 2 and len(err) == 1 and err[0].startswith("cosim: error: "), err
    for fragment in fragments:
        assert fragment in err[0], err[0]


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


def test_foreign_directory_is_refused_and_its_files_survive(tmp_path: Path, capsys) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    for name, text in {"thesis.tmp-2023": "chapter 1", "events.csv": "mine", "summary.json": "{}",
                       "checkpoint.pkl": "not cosim's"}.items():
        (out / name).write_text(text)
    before = snapshot(out)
    for extra in ([], ["--overwrite"]):
        code, err = run_cli(capsys, str(SMOKE), "--out", str(out), *extra)
        assert_refused(code, err, str(out), "not a cosim run directory")
        assert snapshot(out) == before


def test_stale_temp_cleanup_deletes_only_cosim_temps(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert run_cli(capsys, str(SMOKE), "--out", str(out), sets=[*SETS, "output.checkpoint_every=1"])[0] == 0
    (out / "summary.json").unlink()  # make it look unfinished, with a user's file and a stale temp beside
    (out / "thesis.tmp-2023").write_text("chapter 1")
    stale = out / f".cosim-tmp-99999-events.parquet"
    stale.write_bytes(b"half")
    assert cli.main(["run", "--resume", str(out), "--quiet"]) == 0
    assert (out / "thesis.tmp-2023").read_text() == "chapter 1"
    assert not stale.exists() and (out / "summary.json").is_file()


def test_rerun_into_a_finished_run_needs_overwrite(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert run_cli(capsys, str(SMOKE), "--out", str(out))[0] == 0
    code, err = run_cli(capsys, str(SMOKE), "--out", str(out))
    assert_refused(code, err, "finished cosim run", "--overwrite")
    assert run_cli(capsys, str(SMOKE), "--out", str(out), "--overwrite", sets=[*SETS, "seed=7"])[0] == 0
    assert "seed: 7" in (out / "scenario.yaml").read_text()


def test_overwrite_never_deletes_a_users_file_in_a_run(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert run_cli(capsys, str(SMOKE), "--out", str(out))[0] == 0
    (out / "notes.txt").write_text("mine")
    code, err = run_cli(capsys, str(SMOKE), "--out", str(out), "--overwrite")
    assert_refused(code, err, "notes.txt")
    assert (out / "notes.txt").read_text() == "mine" and (out / "summary.json").is_file()


def test_rerun_of_an_interrupted_run_points_to_resume(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert run_cli(capsys, str(SMOKE), "--out", str(out), sets=[*SETS, "output.checkpoint_every=1"])[0] == 0
    (out / "summary.json").unlink()
    code, err = run_cli(capsys, str(SMOKE), "--out", str(out), sets=[*SETS, "output.checkpoint_every=1"])
    assert_refused(code, err, "unfinished cosim run", f"run --resume {out}")


def test_input_scenarios_folder_is_refused(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "study"
    folder.mkdir()
    scenario = folder / "scenario.yaml"
    scenario.write_text("# my comments\n" + SMOKE.read_text())
    before = snapshot(folder)
    code, err = run_cli(capsys, str(scenario), "--out", str(folder))
    assert_refused(code, err, "folder of the input scenario")
    assert snapshot(folder) == before


@pytest.mark.parametrize("target", [".", "project", "home"])
def test_dangerous_out_directories_are_refused(target: str, tmp_path: Path, capsys, monkeypatch) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / "results.tmp-1").write_text("mine")
    if target == "project":
        project = tmp_path / "project"
        project.mkdir()
        (project / "pyproject.toml").write_text("[project]\n")
        target = str(project)
    elif target == "home":
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        (tmp_path / "home").mkdir()
        target = str(tmp_path / "home")
    code, err = run_cli(capsys, str(SMOKE), "--out", target)
    assert_refused(code, err, "refusing")
    assert (work / "results.tmp-1").read_text() == "mine" and sorted(os.listdir(work)) == ["results.tmp-1"]


def test_control_characters_in_a_run_directory_name_stay_on_one_line(tmp_path: Path, capsys) -> None:
    # #18: keys/values with newlines or ANSI escapes must not split error lines or recolour the terminal
    out = tmp_path / "a\nb\x1b[31mred"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, err = run_cli(capsys, str(SMOKE), "--out", str(out))
    assert_refused(code, err, "a\\nb\\x1b[31mred", "not a cosim run directory")
    code = cli.main(["run", "--resume", str(out), "--quiet"])
    resumed = capsys.readouterr().err.strip().splitlines()
    assert_refused(code, resumed, "a\\nb\\x1b[31mred", "not a run directory")
    assert "\x1b" not in err[0] + resumed[0]


def test_file_system_root_is_refused() -> None:
    # checked on the function, so that a regression cannot write a run into / during the tests
    from cosim.engine.rundir import RunDirError, check_location

    with pytest.raises(RunDirError, match="file-system root"):
        check_location(Path("/"), explicit=True)


@pytest.mark.parametrize("sets, fragment", [
    (["output.directory=null", "name=.."], "not inside runs/"),
    (["output.directory=../../../../etc/x"], "not inside runs/"),
    (["output.directory=runs/../.."], "not inside runs/"),
    (["output.directory=ABSOLUTE"], "not inside runs/"),
])
def test_scenario_directories_escaping_runs_are_refused(sets, fragment, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    sets = [s.replace("ABSOLUTE", str(tmp_path / "absolute")) for s in sets]
    code, err = run_cli(capsys, str(SMOKE), sets=[*SETS, *sets])
    assert_refused(code, err, fragment, "--out")
    assert sorted(os.listdir(tmp_path)) == []


@pytest.mark.parametrize("directory", ["../../../../etc/x", "runs/../..", "/etc/cosim-x", "runs", "elsewhere/runs/x"])
def test_validate_refuses_a_scenario_file_directory_escaping_runs(directory: str, tmp_path: Path, capsys) -> None:
    scenario = tmp_path / "escaping.yaml"
    scenario.write_text(SMOKE.read_text().replace("directory: runs/smoke", f"directory: {directory}"))
    for command in (["validate", str(scenario)], ["run", str(scenario), "--quiet", "--out", str(tmp_path / "ok")]):
        code = cli.main(command)
        assert_refused(code, capsys.readouterr().err.strip().splitlines(), f"output.directory: {directory!r}",
                       "not inside runs/", "runs/NAME", "--out")
    assert sorted(os.listdir(tmp_path)) == ["escaping.yaml"]  # nothing written, not even with --out


def test_validate_refuses_a_name_escaping_runs_and_accepts_runs_paths(capsys) -> None:
    assert cli.main(["validate", str(SMOKE), "--set", "output.directory=null", "--set", "name=.."]) == 2
    assert_refused(2, capsys.readouterr().err.strip().splitlines(), "name: '..'", "'runs/..'", "not inside runs/")
    for directory in ("runs/x", "runs/a/b", "./runs/x"):
        assert cli.main(["validate", str(SMOKE), "--set", f"output.directory={directory}"]) == 0
        assert "ok" in capsys.readouterr().out


def test_absolute_directory_given_with_out_is_accepted(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert run_cli(capsys, str(SMOKE), "--out", str(tmp_path / "elsewhere"))[0] == 0
    assert run_cli(capsys, str(SMOKE), sets=[*SETS, "output.directory=null", "name=mine"])[0] == 0  # runs/<name>
    assert (tmp_path / "elsewhere" / "summary.json").is_file() and (tmp_path / "runs" / "mine" / "summary.json").is_file()


# ----------------------------------------------------------------------------- the lock
@pytest.mark.parametrize("kind", ["fresh", "resume", "overwrite"])
def test_second_process_into_a_locked_directory_fails_at_once(kind: str, tmp_path: Path, capsys, lock_holder) -> None:
    out = tmp_path / "run"
    assert run_cli(capsys, str(SMOKE), "--out", str(out), sets=[*SETS, "output.checkpoint_every=1"])[0] == 0
    if kind != "overwrite":
        (out / "summary.json").unlink()
    holder = lock_holder(out / ".cosim-lock")
    before = snapshot(out)
    started = time.monotonic()
    if kind == "resume":
        code = cli.main(["run", "--resume", str(out), "--quiet"])
        err = capsys.readouterr().err.strip().splitlines()
    else:
        code, err = run_cli(capsys, str(SMOKE), "--out", str(out), *(["--overwrite"] if kind == "overwrite" else []),
                            sets=[*SETS, "output.checkpoint_every=1"])
    assert_refused(code, err, "another cosim process", f"pid {holder.pid}")
    assert time.monotonic() - started < 20  # at once, not after waiting for the holder
    assert snapshot(out) == before


def test_concurrent_runs_into_one_directory_one_wins(tmp_path: Path) -> None:
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def start(seed: int, rounds: int) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "cosim", "run", str(SMOKE), "--quiet", "--out", str(out),
                                 "--set", "learning.mode=surrogate", "--set", f"fl.rounds={rounds}",
                                 "--set", f"seed={seed}"], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)

    first = start(1, 100000)  # stopped below once the second has been refused
    deadline = time.monotonic() + 60
    while not (out / "scenario.yaml").exists():
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    second = start(2, 3)
    _, err2 = second.communicate(timeout=60)
    still_running = first.poll() is None
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=120)
    assert still_running and second.returncode == 2, err2
    assert "another cosim process" in err2 and len(err2.strip().splitlines()) == 1
    assert first.returncode == 143  # stopped cleanly by SIGTERM
    assert "seed: 1" in (out / "scenario.yaml").read_text()
    shutil.rmtree(out)


# ----------------------------------------------------------------------------- runs killed early
class Crash(Exception):
    pass


def _crash_at(round_number: int):
    def progress(p) -> None:
        if p.round == round_number:
            raise Crash
    return progress


@pytest.mark.parametrize("left", ["lock", "marker_temp_and_lock", "marker_and_lock"])
def test_directory_left_before_scenario_yaml_is_reusable(left: str, tmp_path: Path, capsys) -> None:
    # killed between creating the directory and writing scenario.yaml: during set-up only the
    # lock exists (what a SIGKILL there leaves), then the marker's temp file (killed between
    # writing it and moving it into place: a compare worker killed with its pool), then the marker
    out = tmp_path / "run"
    out.mkdir()
    if left == "marker_and_lock":
        (out / ".cosim-run.json").write_text('{"cosim_run": 1, "run_id": "x", "scenario_sha256": "y"}')
    if left == "marker_temp_and_lock":
        (out / ".cosim-tmp-123-.cosim-run.json").write_text('{"cosim_run": 1, "run_id": "x"')
    (out / ".cosim-lock").write_text("123\n")
    code = cli.main(["run", "--resume", str(out), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert_refused(code, err, "nothing to resume", f"--out {out}")
    assert run_cli(capsys, str(SMOKE), "--out", str(out))[0] == 0
    assert not list(out.glob(".cosim-tmp-*")) and (out / "summary.json").is_file()


def test_overwritten_run_killed_before_its_first_checkpoint_never_resumes_the_old_one(tmp_path: Path) -> None:
    from cosim.engine import resume_simulation, run_simulation
    from cosim.scenario import load_scenario

    reference = tmp_path / "reference"
    run_simulation(load_scenario(SMOKE, [*SETS, "fl.rounds=4", "output.checkpoint_every=2"]), reference)
    out = tmp_path / "run"
    with pytest.raises(Crash):  # an old run (seed 5) with a checkpoint after round 2
        run_simulation(load_scenario(SMOKE, [*SETS, "fl.rounds=4", "output.checkpoint_every=1", "seed=5"]), out,
                       progress=_crash_at(3))
    assert (out / "checkpoint.pkl").is_file()
    with pytest.raises(Crash):  # the new run (seed 1) dies in round 1, before its first checkpoint
        run_simulation(load_scenario(SMOKE, [*SETS, "fl.rounds=4", "output.checkpoint_every=2"]), out,
                       progress=_crash_at(1), overwrite=True)
    assert not (out / "checkpoint.pkl").exists()
    summary = resume_simulation(out)
    assert summary["seed"] == 1 and summary["rounds"] == 4
    for name in ("events.parquet", "rounds.parquet", "devices.parquet"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name


def test_compare_worker_into_a_locked_cell_fails_that_cell_only(tmp_path: Path, lock_holder) -> None:
    from cosim.grid import CompareError, compare

    out = tmp_path / "cmp"
    cell = out / "cells" / "local" / "rep0"
    cell.mkdir(parents=True)
    holder = lock_holder(cell / ".cosim-lock")
    with pytest.raises(CompareError, match=f"cells/local/rep0: RunDirError: .*another cosim process \\(pid "
                                           f"{holder.pid}\\)"):
        compare(str(SMOKE), ["learning.algorithm=fedavg,local"], out, sets=SETS, repeats=1, workers=1)
    assert (out / "cells" / "fedavg" / "rep0" / "summary.json").is_file()
    assert sorted(os.listdir(cell)) == [".cosim-lock"]
