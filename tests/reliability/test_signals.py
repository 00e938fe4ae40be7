"""Stop signals on real processes (#18): SIGTERM and SIGHUP stop a run like the first
Ctrl-C — at a round boundary, traces flushed, a checkpoint written even with
``checkpoint_every: 0``, exit 143/129 — and the resume ends byte-identical to an
uninterrupted run; a second signal aborts at once."""

from __future__ import annotations

import filecmp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "scenarios" / "smoke.yaml")
ROUNDS = 40
SETS = ["--set", "learning.mode=surrogate", "--set", f"fl.rounds={ROUNDS}", "--set", "output.checkpoint_every=0",
        "--set", "output.formats=[parquet]"]
TRACES = ("events.parquet", "rounds.parquet", "devices.parquet", "summary.json")


def cosim(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "cosim", *args], cwd=ROOT, env=env, text=True, **kwargs)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "run"
    assert cosim("run", SMOKE, *SETS, "--out", str(out), "--quiet", stdout=subprocess.DEVNULL).wait(120) == 0
    return out


def start_and_signal(out: Path, *signals: int) -> tuple[subprocess.Popen, str]:
    """Start a run, send `signals` (back to back) once round 2 is reported; return it ended and its stderr."""
    proc = cosim("run", SMOKE, *SETS, "--out", str(out), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for line in proc.stdout:
        if line.startswith("round 2/"):
            for signum in signals:
                proc.send_signal(signum)
            break
    _, stderr = proc.communicate(timeout=60)
    return proc, stderr


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_first_signal_stops_cleanly_and_resumes_identically(reference: Path, tmp_path: Path, signum: int,
                                                            status: int) -> None:
    out = tmp_path / "run"
    proc, stderr = start_and_signal(out, signum)
    assert proc.returncode == status, stderr
    assert "Traceback" not in stderr and "--resume" in stderr and "interrupted after round" in stderr
    assert (out / "checkpoint.pkl").is_file(), "no checkpoint written although checkpoint_every is 0"
    assert (out / "events.parquet").is_file() and not (out / "summary.json").exists()
    assert not list(out.glob(".cosim-tmp-*"))
    assert cosim("run", "--resume", str(out), "--quiet", stdout=subprocess.DEVNULL).wait(120) == 0
    for name in TRACES:
        assert filecmp.cmp(reference / name, out / name, shallow=False), f"{name} differs"
    assert not (out / "checkpoint.pkl").exists()


def test_second_signal_aborts_at_once(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc, stderr = start_and_signal(out, signal.SIGTERM, signal.SIGHUP)
    # Python runs pending handlers in signal-number order, so either may count as the second
    second = {129: "SIGHUP", 143: "SIGTERM"}.get(proc.returncode)
    assert second is not None, (proc.returncode, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"cosim: aborted by a second stop signal ({second}); "), stderr
    assert lines[0].endswith(f"run --resume {out} restarts the run from round 0"), stderr  # checkpoint_every 0
    assert not (out / "summary.json").exists() and not (out / "checkpoint.pkl").exists()
    assert not list(out.glob(".cosim-tmp-*"))


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])  # SIGINT: a first Ctrl-C
def test_signal_during_set_up_aborts_at_once_and_writes_nothing(tmp_path: Path, signum: int, status: int) -> None:
    out = tmp_path / "run"
    # a large population: seconds of set-up after the directory is locked, before scenario.yaml
    proc = cosim("run", SMOKE, *SETS, "--set", "devices.count=1000000",
                 "--set", "learning.dataset.params.num_train=1000000", "--out", str(out), "--quiet",
                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (out / ".cosim-lock").exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == status, stderr
    name = signal.Signals(signum).name
    assert stderr.strip().splitlines() == [f"cosim: interrupted by {name} during set-up; nothing was run"], stderr
    assert not out.exists(), "an aborted set-up left a run directory"
