"""Crash safety: SIGKILL at random moments, Ctrl-C, then --resume gives identical traces."""

from __future__ import annotations

import filecmp
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = str(ROOT / "scenarios" / "smoke.yaml")
SETS = ["--set", "fl.rounds=8", "--set", "output.checkpoint_every=1", "--set", "learning.algorithm.name=pfl_tps"]
TRACE_FILES = ("events.parquet", "rounds.parquet", "devices.parquet", "events.csv", "rounds.csv",
               "devices.csv", "summary.json")


def cosim(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "cosim", *args], cwd=ROOT, env=env, **kwargs)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "run"
    assert cosim("run", SCENARIO, *SETS, "--out", str(out), "--quiet", stdout=subprocess.DEVNULL).wait(120) == 0
    return out


def assert_same_traces(a: Path, b: Path) -> None:
    for name in TRACE_FILES:
        assert filecmp.cmp(a / name, b / name, shallow=False), f"{name} differs"
    assert not (b / "checkpoint.pkl").exists()
    assert not list(b.glob(".cosim-tmp-*")), "temporary files left behind"


def resume_and_compare(reference: Path, out: Path) -> None:
    if (out / "scenario.yaml").exists():
        resumed = cosim("run", "--resume", str(out), "--quiet", stdout=subprocess.DEVNULL)
    else:  # killed before the run directory existed: nothing to resume, run again
        resumed = cosim("run", SCENARIO, *SETS, "--out", str(out), "--quiet", stdout=subprocess.DEVNULL)
    assert resumed.wait(120) == 0
    assert_same_traces(reference, out)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_sigkill_mid_run_then_resume(reference: Path, tmp_path: Path, seed: int) -> None:
    # Kill a random, short time after a random round finished: between checkpoints,
    # during one, or while the next round trains.
    rng = random.Random(seed)
    kill_after_round, delay_s = rng.randint(1, 6), rng.uniform(0.0, 0.2)
    out = tmp_path / "run"
    proc = cosim("run", SCENARIO, *SETS, "--out", str(out), stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith(f"round {kill_after_round}/"):
            time.sleep(delay_s)
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    resume_and_compare(reference, out)


@pytest.mark.parametrize("seed", [0, 1])
def test_sigkill_at_random_moment_then_resume(reference: Path, tmp_path: Path, seed: int) -> None:
    out = tmp_path / "run"
    proc = cosim("run", SCENARIO, *SETS, "--out", str(out), "--quiet", stdout=subprocess.DEVNULL)
    # Start-up (imports, data) takes ~2 s and the run ~2 s more: kill anywhere in there.
    time.sleep(random.Random(seed).uniform(0.5, 4.0))
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    resume_and_compare(reference, out)


def test_ctrl_c_stops_at_round_boundary_and_resumes(reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = cosim("run", SCENARIO, *SETS, "--out", str(out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith("round 2/"):
            proc.send_signal(signal.SIGINT)
            break
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "--resume" in stderr and "Traceback" not in stderr
    assert (out / "checkpoint.pkl").exists() and (out / "events.parquet").exists()
    assert not (out / "summary.json").exists(), "an interrupted run must not look finished"
    assert cosim("run", "--resume", str(out), "--quiet", stdout=subprocess.DEVNULL).wait(120) == 0
    assert_same_traces(reference, out)


def test_ctrl_c_to_the_process_group_with_batched_workers_resumes(tmp_path: Path) -> None:
    # A terminal's Ctrl-C reaches every process of its group, the batched executor's pool
    # workers and fork server too: they ignore it, the run stops at a round boundary, and
    # the resumed run (a new pool) ends with the traces of an uninterrupted one.
    sets = [*SETS, "--set", "fl.rounds=4", "--set", "execution.executor=batched", "--set", "execution.workers=2"]
    reference = tmp_path / "reference"
    assert cosim("run", SCENARIO, *sets, "--out", str(reference), "--quiet", stdout=subprocess.DEVNULL).wait(120) == 0
    out = tmp_path / "run"
    proc = cosim("run", SCENARIO, *sets, "--out", str(out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                 start_new_session=True)
    for line in proc.stdout:
        if line.startswith("round 2/"):
            os.killpg(proc.pid, signal.SIGINT)
            break
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "--resume" in stderr and "Traceback" not in stderr
    assert (out / "checkpoint.pkl").exists() and not (out / "summary.json").exists()
    assert cosim("run", "--resume", str(out), "--quiet", stdout=subprocess.DEVNULL).wait(120) == 0
    assert_same_traces(reference, out)


def test_resume_rejects_extra_arguments(tmp_path: Path) -> None:
    proc = cosim("run", SCENARIO, "--resume", str(tmp_path), stderr=subprocess.PIPE, text=True)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "--resume RUN_DIR takes no SCENARIO" in stderr
