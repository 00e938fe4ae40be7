"""CLI: exit codes, one-line errors without tracebacks, progress output, engine hand-off."""

from __future__ import annotations

import io
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cosim import __version__, cli

ROOT = Path(__file__).resolve().parents[2]
URBAN = str(ROOT / "scenarios" / "urban_50dev.yaml")
SMOKE = str(ROOT / "scenarios" / "smoke.yaml")


def cosim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cosim", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)


def test_validate_ok_subprocess() -> None:
    proc = cosim("validate", URBAN, "--set", "fl.rounds=5")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert out[0] == "name: urban_50dev"
    assert "devices: 50" in proc.stdout and "cells: 3" in proc.stdout and "algorithm: pfl_tps" in proc.stdout
    assert "rounds: 5 x 10 devices" in proc.stdout
    assert "execution: sequential, 1 thread(s)" in out
    assert out[-1] == "ok"
    assert proc.stderr == ""


def test_validate_describes_the_execution() -> None:
    from cosim.cli import describe
    from cosim.scenario import load_scenario

    lines = describe(load_scenario(URBAN, ["execution={executor: batched, workers: 2, max_devices: 12}"]))
    assert "execution: batched, 2 worker(s) x 1 thread(s), on cpu in stacks of up to 12 devices (algorithms " \
           "without a batched plan train one device at a time on the cpu)" in lines
    lines = describe(load_scenario(URBAN, ["execution={executor: batched}"]))
    assert any("on cpu in stacks of up to 32 devices" in line for line in lines)
    lines = describe(load_scenario(URBAN, ["execution={executor: ray, workers: 4, address: 'h:6379'}"]))
    assert "execution: ray, 4 worker(s) x 1 thread(s), cluster h:6379" in lines


def test_validate_errors_subprocess() -> None:
    proc = cosim("validate", URBAN, "--set", "fl.devices_per_round=80", "--set", "fl.selection=bogus")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        "cosim: error: fl.selection: 'bogus' is not one of random, round_robin, channel_aware, energy_aware, "
        "deadline_aware, or an import path 'package.module:Name'",
    ]


@pytest.mark.parametrize(
    ("args", "stderr"),
    [
        (["--set", "fl.devices_per_round=80"], "cosim: error: fl.devices_per_round: 80 > devices.count (50)\n"),
        (["--set", "foo"], "cosim: error: --set foo: expected KEY.PATH=VALUE\n"),
        (["--set", "fl.rounds=0", "--set", "radio.coherence_s=-1"],
         "cosim: error: radio.coherence_s: -1 must be > 0\ncosim: error: fl.rounds: 0 must be >= 1\n"),
    ],
)
def test_validate_errors_in_process(args: list[str], stderr: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["validate", URBAN, *args]) == 2
    captured = capsys.readouterr()
    assert captured.err == stderr and "ok" not in captured.out


def test_validate_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["validate", "missing.yaml"]) == 2
    assert capsys.readouterr().err == "cosim: error: missing.yaml: no such file\n"


def test_help_and_version_subprocess() -> None:
    proc = cosim("--help")
    assert proc.returncode == 0 and "usage: cosim" in proc.stdout and "validate" in proc.stdout
    proc = cosim("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"cosim {__version__}"


@pytest.mark.parametrize("command", ["run", "validate"])
def test_subcommand_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: cosim {command}") and "--set KEY.PATH=VALUE" in out


@dataclass
class FakeProgress:
    round: int
    rounds: int
    sim_time_s: float
    accuracy: float | None
    energy_j: float


@pytest.fixture
def fake_engine(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Install a stand-in ``cosim.engine`` that records its call and replays progress."""
    state: dict[str, Any] = {"raise": None}

    def run_simulation(scenario: Any, out_dir: Path, progress: Any = None, command: Any = None, **options: Any) -> dict:
        state.update(scenario=scenario, out_dir=out_dir, command=command, options=options)
        if state["raise"] is not None:
            raise state["raise"]
        for r in range(1, scenario.fl.rounds + 1 if progress is not None else 1):  # --quiet: no callback
            progress(FakeProgress(r, scenario.fl.rounds, 100.0 * r, None if r == 1 else 0.5 + r / 100, 10.0 * r))
        return {"rounds": scenario.fl.rounds, "final_accuracy": 0.52, "energy_j": 20.0, "name": "ignored",
                "ok": True}

    from cosim.engine import RunInterrupted

    monkeypatch.setitem(sys.modules, "cosim.engine",
                        types.SimpleNamespace(run_simulation=run_simulation, RunInterrupted=RunInterrupted,
                                              ALL_STOP_SIGNALS=()))
    return state


def test_run_calls_engine_and_prints_plain_progress(fake_engine: dict[str, Any],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", SMOKE, "--set", "fl.rounds=2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == ["round 1/2  sim 100.0 s  acc -  energy 10.0 J", "round 2/2  sim 200.0 s  acc 0.520  energy 20.0 J"]
    assert out[2:] == ["run directory: runs/smoke", "  energy_j: 20", "  final_accuracy: 0.52", "  rounds: 2"]
    assert fake_engine["out_dir"] == Path("runs/smoke")
    assert fake_engine["scenario"].name == "smoke"
    assert isinstance(fake_engine["command"], list)


def test_run_quiet_and_out(fake_engine: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli.main(["run", SMOKE, "--quiet", "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "round 1/" not in out
    assert out.startswith(f"run directory: {tmp_path / 'r'}\n")
    assert fake_engine["out_dir"] == tmp_path / "r"


@pytest.mark.parametrize(
    ("exc", "code", "message"),
    [
        (KeyboardInterrupt(), 130, "cosim: interrupted\n"),
        (FileNotFoundError("dataset fashion_mnist not found under data/; download it first"), 2,
         "cosim: error: dataset fashion_mnist not found under data/; download it first\n"),
        (FileNotFoundError(2, "No such file or directory", "data/x.npz"), 2,
         "cosim: error: data/x.npz: No such file or directory\n"),
        (ValueError("model dim 30 not divisible by heads 4\nsecond line"), 2,
         "cosim: error: model dim 30 not divisible by heads 4\ncosim: error: second line\n"),
    ],
)
def test_run_errors(fake_engine: dict[str, Any], capsys: pytest.CaptureFixture[str], exc: BaseException,
                    code: int, message: str) -> None:
    fake_engine["raise"] = exc
    assert cli.main(["run", SMOKE, "--quiet"]) == code
    captured = capsys.readouterr()
    assert captured.err == message
    assert "Traceback" not in captured.err


def test_debug_reraises(fake_engine: dict[str, Any]) -> None:
    fake_engine["raise"] = ValueError("boom")
    with pytest.raises(ValueError, match="boom"):
        cli.main(["run", SMOKE, "--quiet", "--debug"])


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_tty_progress_uses_a_bar() -> None:
    stream = TTY()
    reporter = cli.ProgressReporter(3, stream)
    reporter(FakeProgress(1, 3, 12.5, 0.25, 7.0))
    reporter(FakeProgress(3, 3, 40.0, None, 9.0))
    reporter.close()
    text = stream.getvalue()
    assert "3/3" in text and "energy=9.0J" in text
    assert "round 1/3" not in text
    quiet = TTY()
    q = cli.ProgressReporter(3, quiet, quiet=True)
    q(FakeProgress(1, 3, 1.0, None, 1.0))
    q.close()
    assert quiet.getvalue() == ""


def test_zero_column_terminal_gets_plain_lines() -> None:
    """A real pseudo-terminal that reports 0 columns (a fresh pty does) gets one line per round, not a bar."""
    import os

    from cosim.progress import terminal_columns, usable_tty

    master, slave = os.openpty()
    try:
        with open(slave, "w", closefd=False) as stream:
            assert stream.isatty() and terminal_columns(stream) == 0 and not usable_tty(stream)
            reporter = cli.ProgressReporter(2, stream)
            reporter(FakeProgress(1, 2, 12.5, 0.25, 7.0))
            reporter.close()
        text = os.read(master, 4096).decode()
    finally:
        os.close(master)
        os.close(slave)
    assert "round 1/2  sim 12.5 s  acc 0.250  energy 7.0 J" in text


def test_dumb_terminal_gets_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "dumb")
    stream = TTY()
    reporter = cli.ProgressReporter(1, stream)
    reporter(FakeProgress(1, 1, 1.0, None, 2.0))
    reporter.close()
    assert stream.getvalue() == "round 1/1  sim 1.0 s  acc -  energy 2.0 J\n"


def test_run_set_algorithm_name_shorthand(fake_engine: dict[str, Any]) -> None:
    """``--set learning.algorithm=local`` sets the algorithm's name, as ``compare --vary`` does."""
    assert cli.main(["run", SMOKE, "--quiet", "--set", "learning.algorithm=local"]) == 0
    assert fake_engine["scenario"].learning.algorithm.name == "local"
    assert cli.main(["validate", URBAN, "--set", "learning.algorithm=fedavg"]) == 0


def test_manifest_command_is_rerunnable(fake_engine: dict[str, Any]) -> None:
    assert cli.main(["run", SMOKE, "--quiet", "--set", "fl.rounds=1"]) == 0
    assert fake_engine["command"] == [sys.executable, "-m", "cosim", "run", SMOKE, "--quiet", "--set", "fl.rounds=1"]
