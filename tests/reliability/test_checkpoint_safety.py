"""Safe checkpoints: no code runs from a checkpoint; a resume fails closed (one line, exit 2)
on a foreign, edited, corrupt, truncated, empty, random or other-version checkpoint; the
checkpoint stays linear in rounds; a failed write keeps the last good checkpoint."""

from __future__ import annotations

import errno
import filecmp
import json
import os
import pickle
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cosim.engine import CheckpointError, resume_simulation, run_simulation, safe_pickle
from cosim.engine.checkpoint import CHECKPOINT_NAME, MAGIC, _digest, load_checkpoint, read_checkpoint
from cosim.engine.rundir import MARKER_NAME
from cosim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "scenarios" / "smoke.yaml"
SETS = ["learning.mode=surrogate", "fl.rounds=4", "output.checkpoint_every=1", "output.formats=[parquet]"]
TRACES = ("events.parquet", "rounds.parquet", "devices.parquet", "summary.json")


class Crash(Exception):
    pass


def crashed_run(out: Path, sets=SETS, after_round: int = 2) -> Path:
    """A run killed (an exception) after `after_round` rounds: its checkpoint is on disk."""

    def crash(progress) -> None:
        if progress.round == after_round + 1:
            raise Crash

    with pytest.raises(Crash):
        run_simulation(load_scenario(SMOKE, sets), out, progress=crash)
    assert (out / CHECKPOINT_NAME).is_file()
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "run"
    run_simulation(load_scenario(SMOKE, SETS), out)
    return out


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory) -> Path:
    return crashed_run(tmp_path_factory.mktemp("crashed") / "run")


def copy_of(run_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(run_dir, target)
    (target / ".cosim-lock").unlink(missing_ok=True)
    return target


def resume_cli(run_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cosim", "run", "--resume", str(run_dir), "--quiet"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def assert_one_line_exit_2(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cosim: error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def resign(path: Path, payload: bytes, **changes) -> None:
    """Rewrite the checkpoint at `path` with `payload` and a valid checksum (what an attacker can do)."""
    header, _ = read_checkpoint(path)
    header.update(changes, payload_bytes=len(payload))
    header["sha256"] = _digest(header, payload)
    path.write_bytes(MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n" + payload)


# ----------------------------------------------------------------------------- no code from data
class Payload:
    """Runs a command when unpickled by a plain unpickler."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _SmugglingPickler(safe_pickle.SafePickler):
    """The safe writer, except that it lets `Payload` objects through (an attacker's writer)."""

    def reducer_override(self, obj):
        if isinstance(obj, Payload):
            return obj.__reduce__()
        if obj is os.system:
            return NotImplemented  # pickled as the global posix.system
        return super().reducer_override(obj)


def test_plain_pickle_of_os_system_is_refused_and_not_run(interrupted: Path, tmp_path: Path) -> None:
    run_dir = copy_of(interrupted, tmp_path)
    marker = tmp_path / "pwned"
    resign(run_dir / CHECKPOINT_NAME, pickle.dumps(Payload(marker)))
    proc = resume_cli(run_dir)
    assert_one_line_exit_2(proc, "refused", "system is not allowed")
    assert not marker.exists(), "the checkpoint ran a command"


def test_stealthy_payload_inside_real_state_is_refused_and_not_run(interrupted: Path, tmp_path: Path) -> None:
    import io

    run_dir = copy_of(interrupted, tmp_path)
    state = load_checkpoint(run_dir / CHECKPOINT_NAME)
    state.pop("journal")
    marker = tmp_path / "pwned"
    state["fleet"].__dict__["note"] = [1.0, {"x": Payload(marker)}]  # nested deep in the real state
    buffer = io.BytesIO()
    _SmugglingPickler(buffer).dump(state)
    resign(run_dir / CHECKPOINT_NAME, buffer.getvalue())
    proc = resume_cli(run_dir)
    assert_one_line_exit_2(proc, "system is not allowed")
    assert not marker.exists(), "the checkpoint ran a command"
    assert not (run_dir / "summary.json").exists()


@pytest.mark.parametrize("module, name", [
    ("builtins", "eval"), ("builtins", "exec"), ("builtins", "getattr"), ("builtins", "__import__"),
    ("os", "system"), ("posix", "system"), ("subprocess", "Popen"), ("functools", "partial"),
    ("torch.storage", "_load_from_bytes"), ("torch._utils", "_rebuild_tensor_v2"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype"), ("copyreg", "_reconstructor"),
    ("cosim.engine.outputs", "subprocess"), ("cosim.engine.world", "World"),
])
def test_globals_outside_the_allow_list_are_refused(module: str, name: str) -> None:
    # GLOBAL opcode: protocol 0 style reference to module.name, then STOP
    payload = b"c" + module.encode() + b"\n" + name.encode() + b"\n."
    with pytest.raises(safe_pickle.CheckpointSafetyError, match=f"{module}.{name} is not allowed"):
        safe_pickle.loads(payload)


@pytest.mark.parametrize("call, message", [
    (("_new_object", ("os:system",)), "class os:system is not allowed"),
    (("_new_object", ("subprocess:Popen",)), "class subprocess:Popen is not allowed"),
    (("_array", ("|O", (1,), "C", b"\0" * 8)), "dtype '|O' is not allowed"),
    (("_scalar", ("|O", b"\0" * 8)), "dtype '|O' is not allowed"),
    (("_partial", ("builtins:eval", ("1",), {})), "function builtins:eval is not allowed"),
    (("_tensor", ("object", (1,), (0,), b"", False, False)), "tensor dtype 'object' is not allowed"),
])
def test_reconstructors_refuse_what_is_not_plain_data(call, message) -> None:
    name, args = call
    payload = b"\x80\x04c" + b"cosim.engine.safe_pickle\n" + name.encode() + b"\n" + pickle.dumps(args, 4)[2:-1] + b"R."
    with pytest.raises(safe_pickle.CheckpointSafetyError, match=message):
        safe_pickle.loads(payload)


def test_safe_pickle_round_trips_the_value_kinds_of_a_state() -> None:
    import collections

    import torch

    weight = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    state = {"a": np.arange(6.0).reshape(2, 3, order="F"), "b": np.float64(1.5), "o": np.array([None, "x"], dtype=object),
             "t": weight.t(), "p": torch.nn.Parameter(torch.ones(2)), "g": np.random.default_rng(3),
             "d": collections.defaultdict(float, {1: 2.0}), "od": collections.OrderedDict(x=1), "s": {1, 2}}
    state["same"] = state["a"]
    back = safe_pickle.loads(safe_pickle.dumps(state))
    assert back["a"].flags.f_contiguous and np.array_equal(back["a"], state["a"]) and back["same"] is back["a"]
    assert back["b"] == 1.5 and type(back["b"]) is np.float64 and list(back["o"]) == [None, "x"]
    assert torch.equal(back["t"], weight.t()) and back["t"].stride() == weight.t().stride()
    assert isinstance(back["p"], torch.nn.Parameter) and back["p"].requires_grad
    assert back["g"].random() == np.random.default_rng(3).random()
    assert back["d"][7] == 0.0 and back["od"] == {"x": 1} and back["s"] == {1, 2}


def test_writer_refuses_objects_the_reader_would_refuse() -> None:
    with pytest.raises(TypeError, match="not in the allow-list"):
        safe_pickle.dumps({"f": os.system})
    with pytest.raises(TypeError, match="cannot checkpoint"):
        safe_pickle.dumps(Payload(Path("x")))


# ----------------------------------------------------------------------------- fail closed
def _flip_bits(path: Path) -> None:
    blob = bytearray(path.read_bytes())
    rng = random.Random(7)
    for _ in range(3):
        i = rng.randrange(len(MAGIC) + 1, len(blob))
        blob[i] ^= 1 << rng.randrange(8)
    path.write_bytes(bytes(blob))


def _other_version(path: Path) -> None:
    header, payload = read_checkpoint(path)
    header["format_version"] = 1
    path.write_bytes(MAGIC + json.dumps(header).encode() + b"\n" + payload)


def _edit_scenario(key: str, value) -> callable:
    def edit(run_dir: Path) -> None:
        import yaml

        data = yaml.safe_load((run_dir / "scenario.yaml").read_text())
        section, _, leaf = key.partition(".")
        if leaf:
            data[section][leaf] = value
        else:
            data[key] = value
        (run_dir / "scenario.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return edit


CORRUPTIONS = {
    "bit_flips": (lambda d: _flip_bits(d / CHECKPOINT_NAME), "corrupt"),
    "truncated": (lambda d: (d / CHECKPOINT_NAME).write_bytes((d / CHECKPOINT_NAME).read_bytes()[:-100]), "truncated"),
    "empty": (lambda d: (d / CHECKPOINT_NAME).write_bytes(b""), "empty"),
    "random_bytes": (lambda d: (d / CHECKPOINT_NAME).write_bytes(random.Random(1).randbytes(5000)),
                     "not a cosim checkpoint"),
    "plain_pickle_v1": (lambda d: (d / CHECKPOINT_NAME).write_bytes(pickle.dumps({"format_version": 1})),
                        "not a cosim checkpoint"),
    "other_version": (lambda d: _other_version(d / CHECKPOINT_NAME), "checkpoint format 1"),
    "edited_seed": (_edit_scenario("seed", 2), "edited since the run started"),
    "edited_rounds": (_edit_scenario("fl.rounds", 3), "edited since the run started"),
    "edited_devices_count": (_edit_scenario("devices.count", 4), "edited since the run started"),
    "edited_algorithm": (_edit_scenario("learning.algorithm", {"name": "fedprox", "params": {}}),
                         "edited since the run started"),
    "journal_edited": (lambda d: (d / "checkpoint-trace.jsonl").write_text(
        (d / "checkpoint-trace.jsonl").read_text().replace("round_start", "round_start!", 1)), "trace journal"),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_resume_fails_closed_in_one_line(interrupted: Path, tmp_path: Path, case: str) -> None:
    run_dir = copy_of(interrupted, tmp_path)
    damage, fragment = CORRUPTIONS[case]
    damage(run_dir)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file() and p.name != ".cosim-lock"}
    proc = resume_cli(run_dir)
    assert_one_line_exit_2(proc, fragment)
    after = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file() and p.name != ".cosim-lock"}
    assert after == before, "a refused resume changed the run directory"


def test_checkpoint_copied_from_another_run_is_refused(interrupted: Path, tmp_path: Path) -> None:
    other = crashed_run(tmp_path / "other", [*SETS, "seed=5"])
    run_dir = copy_of(interrupted, tmp_path)
    shutil.copy(other / CHECKPOINT_NAME, run_dir / CHECKPOINT_NAME)
    assert_one_line_exit_2(resume_cli(run_dir), "another scenario")


def test_checkpoint_of_another_run_of_the_same_scenario_is_refused(interrupted: Path, tmp_path: Path) -> None:
    other = crashed_run(tmp_path / "twin")
    run_dir = copy_of(interrupted, tmp_path)
    shutil.copy(other / CHECKPOINT_NAME, run_dir / CHECKPOINT_NAME)
    assert_one_line_exit_2(resume_cli(run_dir), "belongs to another run")


def test_resume_verifies_and_finishes_byte_identical(interrupted: Path, reference: Path, tmp_path: Path) -> None:
    run_dir = copy_of(interrupted, tmp_path)
    resume_simulation(run_dir)
    for name in TRACES:
        assert filecmp.cmp(reference / name, run_dir / name, shallow=False), name
    assert not (run_dir / CHECKPOINT_NAME).exists() and not (run_dir / "checkpoint-trace.jsonl").exists()


def test_resume_from_an_earlier_checkpoint_cuts_the_journal(reference: Path, tmp_path: Path) -> None:
    # A journal line written for a checkpoint whose write never completed is cut off.
    run_dir = crashed_run(tmp_path / "run", after_round=3)
    journal = run_dir / "checkpoint-trace.jsonl"
    with open(journal, "ab") as f:
        f.write(b'{"events": {"kind": ["half a line')
    resume_simulation(run_dir)
    for name in TRACES:
        assert filecmp.cmp(reference / name, run_dir / name, shallow=False), name


# ----------------------------------------------------------------------------- linear size
def test_checkpoint_size_does_not_grow_with_rounds(tmp_path: Path) -> None:
    sizes: dict[int, int] = {}
    out = tmp_path / "long"

    def record(progress) -> None:  # called before the round's checkpoint: the previous one is on disk
        if progress.round in (4, 40):
            sizes[progress.round - 1] = (out / CHECKPOINT_NAME).stat().st_size

    run_simulation(load_scenario(SMOKE, ["learning.mode=surrogate", "fl.rounds=41", "output.checkpoint_every=1",
                                         "output.formats=[parquet]"]), out, progress=record)
    # the state is the same size every round (the trace rows go to the journal, once each)
    assert sizes[39] < 1.2 * sizes[3], sizes


# ----------------------------------------------------------------------------- failed writes
def test_full_disk_keeps_the_last_good_checkpoint(reference: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "run"
    real_fsync = os.fsync

    def fill_disk_after_round_2(progress) -> None:
        if progress.round == 3:
            def full(fd):
                raise OSError(errno.ENOSPC, "No space left on device")
            monkeypatch.setattr(os, "fsync", full)

    with pytest.raises(OSError) as err:
        run_simulation(load_scenario(SMOKE, SETS), out, progress=fill_disk_after_round_2)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(out / "checkpoint-trace.jsonl")
    assert load_checkpoint(out / CHECKPOINT_NAME)["rounds_done"] == 2  # round 2's, intact
    assert not [p.name for p in out.iterdir() if p.name.startswith(".cosim-tmp-")], "temp files left behind"
    resume_simulation(out)
    for name in TRACES:
        assert filecmp.cmp(reference / name, out / name, shallow=False), name


def test_failed_checkpoint_write_names_the_path_and_leaves_no_temp(tmp_path: Path, monkeypatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from cosim import cli
    from cosim.engine import checkpoint as ckpt

    real_write_atomic = ckpt.write_atomic

    def failing_write_atomic(path, write):
        def half_then_full(tmp: Path) -> None:
            tmp.write_bytes(b"half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")  # like a write(2) on a full disk: no file name

        return real_write_atomic(path, half_then_full)

    monkeypatch.setattr(ckpt, "write_atomic", failing_write_atomic)
    out = tmp_path / "run"
    code = cli.main(["run", str(SMOKE), "--quiet", "--out", str(out), *[a for s in SETS for a in ("--set", s)]])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0] == f"cosim: error: {out / CHECKPOINT_NAME}: No space left on device"
    assert not (out / CHECKPOINT_NAME).exists()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".cosim-tmp-")]
    assert (out / MARKER_NAME).is_file()


# ----------------------------------------------------------------------------- every algorithm
def _algorithms() -> list[str]:
    from learning.algorithms import ALGORITHMS

    return [*sorted(ALGORITHMS), "examples.custom_algorithm:FedAvgM"]  # and a plugin by import path


@pytest.mark.parametrize("algorithm", _algorithms())
def test_every_algorithm_state_is_in_the_allow_list(algorithm: str, tmp_path: Path) -> None:
    # train mode: the algorithm's real server and client classes, models and optimizers
    out = tmp_path / "run"
    crashed_run(out, [f"learning.algorithm.name={algorithm}", "fl.rounds=3", "output.checkpoint_every=1"],
                after_round=1)
    assert load_checkpoint(out / CHECKPOINT_NAME)["rounds_done"] == 1


class _PluginHelper:
    """A class a plugin keeps in its state without registering it."""


def test_unregistered_class_in_the_state_is_a_one_line_error(tmp_path: Path) -> None:
    from cosim.engine.checkpoint import save_checkpoint

    with pytest.raises(CheckpointError, match=r"cannot write the checkpoint: .*_PluginHelper.*allow_class"):
        save_checkpoint(tmp_path / CHECKPOINT_NAME, {"rounds_done": 1, "helper": _PluginHelper()})
    assert list(tmp_path.iterdir()) == []
    safe_pickle.allow_class(_PluginHelper)
    try:
        save_checkpoint(tmp_path / CHECKPOINT_NAME, {"rounds_done": 1, "helper": _PluginHelper()})
        assert isinstance(load_checkpoint(tmp_path / CHECKPOINT_NAME)["helper"], _PluginHelper)
    finally:
        safe_pickle._extra_classes.pop(safe_pickle._name(_PluginHelper))
