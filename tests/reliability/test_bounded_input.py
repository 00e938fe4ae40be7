"""Bounded parsing: oversized files and pipes, device files, alias bombs, deep nesting,
duplicate keys, unbuildable values and control characters all end in one line at once.

Each case runs under a hang guard (``signal.alarm``): before these bounds a YAML alias
bomb grew to 3.1 GB, ``/dev/zero`` was read for ever and 490-deep nesting raised
``RecursionError``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cosim.cli import main
from cosim.scenario import ScenarioError, load_scenario, loads_scenario
from cosim.scenario.schema_base import fmt_value
from cosim.scenario.text import escape_controls, short_repr
from cosim.scenario.yaml_safe import MAX_SCENARIO_BYTES_ENV, MAX_YAML_DEPTH, MAX_YAML_NODES, parse_yaml

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "scenarios" / "smoke.yaml"
GUARD_S = 20


@pytest.fixture(autouse=True)
def hang_guard() -> Iterator[None]:
    """Fail (instead of hanging the suite) if a case runs for more than ``GUARD_S`` seconds."""

    def alarm(signum, frame):  # pragma: no cover - only on a hang
        raise TimeoutError(f"no answer within {GUARD_S} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(GUARD_S)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def _one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cosim: error: "), err
    assert "\x1b" not in err and "Traceback" not in err
    return lines[0]


def _bomb(levels: int = 9) -> str:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines) + f"\nseed: *l{levels - 1}\n"


# ---- size cap and file kinds -------------------------------------------------------


def test_file_over_the_cap_fails_before_parsing(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv(MAX_SCENARIO_BYTES_ENV, "4096")
    big = tmp_path / "big.yaml"
    big.write_text(SMOKE.read_text() + "#" * 4096 + "\n")
    line = _one_line_error(["validate", str(big)], capsys)
    assert str(big) in line and "4096-byte cap" in line and MAX_SCENARIO_BYTES_ENV in line
    monkeypatch.setenv(MAX_SCENARIO_BYTES_ENV, str(big.stat().st_size))  # raised: the same file is fine
    assert load_scenario(big).name == "smoke"


def test_default_cap_stops_a_50_mb_file(tmp_path: Path, capsys) -> None:
    big = tmp_path / "huge.yaml"
    with big.open("wb") as stream:  # sparse: 50 MB of NULs that are never read
        stream.truncate(50_000_000)
    line = _one_line_error(["validate", str(big)], capsys)
    assert "50000000 bytes, over the 1048576-byte cap" in line


@pytest.mark.parametrize("value", ["0", "-5", "lots"])
def test_bad_cap_setting_is_named(value: str, monkeypatch, capsys) -> None:
    monkeypatch.setenv(MAX_SCENARIO_BYTES_ENV, value)
    line = _one_line_error(["validate", str(SMOKE)], capsys)
    assert f"{MAX_SCENARIO_BYTES_ENV}={value}: expected a positive number of bytes" in line


def _pipe_path(payload: bytes) -> tuple[str, threading.Thread]:
    read_fd, write_fd = os.pipe()

    def writer() -> None:
        try:
            with os.fdopen(write_fd, "wb") as stream:
                stream.write(payload)
        except BrokenPipeError:  # the reader stopped at the cap: that is the point
            pass

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    return f"/dev/fd/{read_fd}", thread


@pytest.mark.skipif(not Path("/dev/fd").is_dir(), reason="needs /dev/fd")
def test_pipe_is_read_and_capped(monkeypatch) -> None:
    path, thread = _pipe_path(SMOKE.read_bytes())
    try:
        assert load_scenario(path).seed == 1
    finally:
        os.close(int(path.rsplit("/", 1)[1]))
        thread.join()
    monkeypatch.setenv(MAX_SCENARIO_BYTES_ENV, "1000")
    path, thread = _pipe_path(b"#" * 10_000_000)
    try:
        with pytest.raises(ScenarioError, match=r"more than 1000 bytes, over the 1000-byte cap"):
            load_scenario(path)
    finally:
        os.close(int(path.rsplit("/", 1)[1]))
        thread.join()


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null", "/dev/urandom"])
def test_device_files_are_refused(device: str, capsys) -> None:
    if not Path(device).exists():
        pytest.skip(f"no {device}")
    line = _one_line_error(["validate", device], capsys)
    assert f"{device}: is a character device, expected a YAML file" in line


@pytest.mark.skipif(not Path("/bin/bash").exists(), reason="needs bash for process substitution")
def test_process_substitution_works_and_is_capped() -> None:
    """A real shell: ``cosim validate <(cat x.yaml)`` validates; an endless pipe stops at the cap."""
    script = (f'"{sys.executable}" -m cosim validate <(cat "{SMOKE}") && '
              f'"{sys.executable}" -m cosim validate <(cat /dev/zero)')
    proc = subprocess.run(["/bin/bash", "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.splitlines()[-1] == "ok"
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "over the 1048576-byte cap" in proc.stderr, proc.stderr


# ---- alias budget, recursion, nesting ------------------------------------------------


def test_alias_bomb_stops_at_the_budget(capsys, tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_bomb())
    line = _one_line_error(["validate", str(bomb)], capsys)
    assert f"expands to more than {MAX_YAML_NODES} values" in line and str(bomb) in line


def test_alias_bomb_in_a_set_value(capsys) -> None:
    value = "{" + ", ".join(_bomb(7).strip().replace("seed: ", "x: ").split("\n")) + "}"
    line = _one_line_error(["validate", str(SMOKE), "--set", f"learning.model.extra={value}"], capsys)
    assert "--set learning.model.extra=" in line and f"more than {MAX_YAML_NODES} values" in line


def test_moderate_aliases_still_work() -> None:
    text = SMOKE.read_text().replace("cells:\n  - {name: west,", "cells:\n  - &west {name: west,")
    assert load_scenario_text(text).cells[0].name == "west"
    assert parse_yaml("a: &a [1, 2]\nb: *a\nc: {<<: {x: 1}, y: 2}\n") == {"a": [1, 2], "b": [1, 2],
                                                                           "c": {"x": 1, "y": 2}}


def load_scenario_text(text: str):
    return loads_scenario(text, ["learning.mode=surrogate"])


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(ScenarioError, match=r"alias \*a is inside the value it names"):
        loads_scenario("seed: &a [1, *a]\n")


@pytest.mark.parametrize("depth", [MAX_YAML_DEPTH + 1, 490, 5000])
def test_deep_nesting_in_a_file_is_one_line(depth: int, tmp_path: Path, capsys) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text("seed: " + "[" * depth + "]" * depth + "\n")
    line = _one_line_error(["validate", str(deep)], capsys)
    assert f"nested deeper than {MAX_YAML_DEPTH} levels" in line and ": seed.0.0" in line
    deep.write_text("seed: " + "{a: " * depth + "1" + "}" * depth + "\n")
    assert f"nested deeper than {MAX_YAML_DEPTH} levels" in _one_line_error(["validate", str(deep)], capsys)


def test_deep_nesting_in_set_values_and_keys(capsys) -> None:
    line = _one_line_error(["validate", str(SMOKE), "--set", "fl.x=" + "[" * 600 + "]" * 600], capsys)
    assert "--set fl.x=[[[" in line and "nested deeper than" in line
    line = _one_line_error(["validate", str(SMOKE), "--set", ".".join(["a"] * 600) + "=1"], capsys)
    assert "600 key segments, at most 32" in line


# ---- duplicate keys ----------------------------------------------------------------------


def test_duplicate_keys_are_named_with_both_lines(tmp_path: Path) -> None:
    text = SMOKE.read_text().replace("fl: {rounds: 6,", "fl: {rounds: 6, selection: random, rounds: 7,")
    with pytest.raises(ScenarioError, match=r"fl\.rounds: duplicate key \(lines (\d+) and \1\)"):
        loads_scenario(text)
    with pytest.raises(ScenarioError) as info:
        loads_scenario("seed: 1\nfl:\n  rounds: 3\n  devices_per_round: 2\n\n\n  rounds: 5\n")
    assert info.value.problems == ["<string>: fl.rounds: duplicate key (lines 3 and 7)"]
    with pytest.raises(ScenarioError, match=r"<string>: seed: duplicate key \(lines 1 and 2\)"):
        loads_scenario("seed: 1\nseed: 2\n")
    with pytest.raises(ScenarioError, match=r"cells\.1\.name: duplicate key"):
        loads_scenario("cells:\n  - {name: a}\n  - {name: b, x_m: 1, name: c}\n")


def test_a_merge_key_override_is_not_a_duplicate() -> None:
    assert parse_yaml("base: &b {x: 1, y: 2}\nc: {<<: *b, x: 3}\n")["c"] == {"x": 3, "y": 2}
    assert parse_yaml("a: {1: x, '1': y}\n") == {"a": {1: "x", "1": "y"}}  # int and string keys differ


# ---- bounded messages, unbuildable values, control characters -------------------------------


def test_error_formatting_never_builds_the_expanded_value() -> None:
    shared: list = ["lol"] * 9
    for _ in range(12):  # 9**13 leaves if expanded: only the bounded repr can finish
        shared = [shared] * 9
    text = short_repr(shared)
    assert len(text) <= 60 and text.startswith("[[[")
    assert fmt_value({"k" * 10_000: "v" * 10_000}).startswith("{'kkk") and len(fmt_value({"k" * 10_000: 1})) <= 60
    assert fmt_value(10**5000) == "<16610-bit integer>"


def test_huge_value_in_a_schema_error_is_short(capsys) -> None:
    line = _one_line_error(["validate", str(SMOKE), "--set", "seed=[" + ", ".join(["1"] * 50_000) + "]"], capsys)
    assert line.startswith("cosim: error: seed: [1, 1, 1, 1, 1, 1, ...] is not an integer") and len(line) < 200


def test_unbuildable_scalars_are_one_line(capsys, tmp_path: Path) -> None:
    file = tmp_path / "digits.yaml"
    file.write_text("seed: " + "9" * 5000 + "\n")
    line = _one_line_error(["validate", str(file)], capsys)
    assert "cannot build value 9999" in line and "(line 1)" in line and len(line) < 400
    line = _one_line_error(["validate", str(SMOKE), "--set", "seed=2001-13-45"], capsys)
    assert "--set seed=2001-13-45: value is not valid YAML (cannot build value 2001-13-45: month must be" in line
    line = _one_line_error(["validate", str(SMOKE), "--set", "cells." + "9" * 5000 + ".x_m=1"], capsys)
    assert "cells is a list" in line and "is not an index" in line


@pytest.mark.parametrize("key", ["bad\nkey", "red\x1b[31mkey", "sep\u2028key", "bidi\u202ekey", "nul\x85key"])
def test_control_characters_in_keys_are_escaped(key: str, capsys, tmp_path: Path) -> None:
    file = tmp_path / "ctl.yaml"
    file.write_text(SMOKE.read_text() + f'"{key.encode("unicode_escape").decode()}": 1\n')
    line = _one_line_error(["validate", str(file)], capsys)
    assert f"{escape_controls(key)}: unknown key" in line
    line = _one_line_error(["validate", str(SMOKE), "--set", f"fl.{key}=1"], capsys)
    assert f"fl.{escape_controls(key)}: unknown key" in line


def test_control_characters_in_values_and_file_names_are_escaped(capsys, tmp_path: Path) -> None:
    line = _one_line_error(["validate", str(SMOKE), "--set", "fl.selection=\"a\\nb\\e[2J\""], capsys)
    assert "fl.selection: 'a\\nb\\x1b[2J' is not one of" in line
    odd = tmp_path / "odd\nname\x1b[31m.yaml"
    line = _one_line_error(["validate", str(odd)], capsys)
    assert "odd\\nname\\x1b[31m.yaml: no such file" in line
    line = _one_line_error(["validate", str(SMOKE), "--set", "x\x1b[2J"], capsys)
    assert "--set x\\x1b[2J: expected KEY.PATH=VALUE" in line


# ---- tuned-parameter files (--params) are read like scenarios ------------------------------


def test_params_file_over_the_cap_is_refused(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv(MAX_SCENARIO_BYTES_ENV, "4096")
    tuned = tmp_path / "tuned.yaml"
    tuned.write_text("fedavg: {lr: 0.01}\n" + "#" * 4096 + "\n")
    line = _one_line_error(["run", str(SMOKE), "--params", str(tuned), "--out", str(tmp_path / "run"), "--quiet"],
                           capsys)
    assert str(tuned) in line and "4096-byte cap" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_params_device_file_is_refused_at_once(device: str, tmp_path: Path, capsys) -> None:
    # before, --params /dev/zero read without end (a hang that filled memory)
    if not Path(device).exists():
        pytest.skip(f"no {device}")
    line = _one_line_error(["run", str(SMOKE), "--params", device, "--out", str(tmp_path / "run"), "--quiet"], capsys)
    assert f"{device}: is a character device, expected a YAML file" in line


def test_params_file_duplicate_keys_are_one_line(tmp_path: Path, capsys) -> None:
    tuned = tmp_path / "tuned.yaml"
    tuned.write_text("fedavg: {lr: 0.01}\nfedavg: {lr: 0.02}\n")
    line = _one_line_error(["run", str(SMOKE), "--params", str(tuned), "--out", str(tmp_path / "run"), "--quiet"],
                           capsys)
    assert str(tuned) in line and "duplicate key" in line
