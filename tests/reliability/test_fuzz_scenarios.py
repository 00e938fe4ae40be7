"""Hostile scenario input: every malformed case is a one-line ``cosim: error:`` naming the key.

A seeded catalogue of mutations of ``scenarios/smoke.yaml`` (wrong types, negative,
zero, NaN, inf and huge values, unknown keys, missing sections, cross-field
violations, empty partitions, unreadable files, bad ``--set`` syntax) is driven
through ``cosim.cli.main`` in-process; a handful go through a real ``python -m cosim``
subprocess to prove that no traceback escapes. Each case must exit with status 2,
end stderr with a ``cosim: error:`` line, name the offending key, never hang, and
leave no run directory behind.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from cosim.cli import main

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "scenarios" / "smoke.yaml"
SURROGATE = "learning.mode=surrogate"
CASE_TIMEOUT_S = 30

# key -> YAML values that are each invalid for it (schema level: caught by `validate`).
FIELD_MUTATIONS: dict[str, list[str]] = {
    "seed": ["-1", "1.5", "'one'", "true", "null", "[1]", "1e30"],
    "name": ["'a b'", "''", "'../etc'", "42"],
    "area.width_m": ["0", "-400", ".nan", ".inf", "-.inf", "'wide'", "{}", "1e400"],
    "area.height_m": ["0", "-1e-9", ".nan", "true"],
    "cells.0.x_m": ["-1", "401", ".nan", "'west'", "1e308"],
    "cells.1.y_m": ["-0.5", "1e9", ".inf"],
    "cells.0.height_m": ["0", "-10", ".nan"],
    "cells.0.pathloss": ["'moon'", "7", "null"],
    "cells.0.carrier_hz": ["0", "-3.5e9", ".inf", "'3.5 GHz'"],
    "cells.0.uplink_bandwidth_hz": ["0", "-20e6", ".nan"],
    "cells.1.downlink_bandwidth_hz": ["0", ".inf"],
    "cells.0.tx_power_dbm": ["1e300", "-1e300", ".inf", ".nan", "'loud'"],
    "cells.0.noise_figure_db": ["-1", ".nan"],
    "cells.1.name": ["''", "west"],
    "devices.count": ["0", "-3", "2.5", "true", "99999999999999999999", "'six'"],
    "devices.profiles": ["{}", "{high: 0.3}", "{quantum: 1.0}", "{high: -1.0, low: 2.0}", "[high]",
                         "{high: .nan, low: 0.5}"],
    "devices.height_m": ["0", "-1.5"],
    "devices.noise_figure_db": ["-9", ".inf"],
    "devices.mobility.model": ["'teleport'", "3"],
    "devices.mobility": ["'static'", "[]"],
    "radio.fading": ["'bogus'", "1", "null"],
    "radio.shadowing": ["'yes'", "1"],
    "radio.coherence_s": ["0", "-1", "1e-9", "1e-300", ".nan", ".inf"],
    "radio.snr_gap_db": ["-1", ".nan"],
    "radio.max_spectral_efficiency_bps_hz": ["0", "-7"],
    "radio.rician_k_db": [".nan", "'nine'"],
    "learning.mode": ["'dream'", "true"],
    "learning.dataset.name": ["'cifar'", "null"],
    "learning.partition.name": ["'random'", "3"],
    "learning.max_train_per_device": ["0", "-5", "1.5"],
    "learning.model": ["{dim: 32}", "'nope'", "{name: ''}"],
    "learning.model.dim": [".inf", ".nan"],
    "learning.algorithm.name": ["'fedsgd'", "null"],
    "learning.eval_every": ["0", "-1"],
    "fl.rounds": ["0", "-1", "1e400", "true", "'3'", "99999999999"],
    "fl.devices_per_round": ["0", "7", "100", "2.0"],
    "fl.selection": ["'fastest'", "1"],
    "fl.allocator": ["'greedy'", "null"],
    "fl.deadline_s": ["0", "-1", ".nan", ".inf", "'soon'"],
    "fl.min_updates": ["-1", "4"],
    "fl.dvfs": ["'turbo'"],
    "execution.executor": ["'gpu'"],
    "execution.workers": ["0", "100000"],
    "execution.threads": ["0", "-2"],
    "output.formats": ["[]", "[json]", "[csv, csv]", "'csv'"],
    "output.checkpoint_every": ["-1"],
}
UNKNOWN_KEYS = ["bogus", "devices.colour", "fl.roundz", "cells.0.power", "radio.fadin", "learning.optimizer",
                "area.depth_m", "output.compress", "execution.gpus", "devices.mobility.speed"]
# Cross-field and component errors: (overrides, key expected in stderr). Valid schema,
# wrong for the layer that owns the parameters; checked by `validate` and by `run`.
COMPONENT_CASES: list[tuple[list[str], str]] = [
    (["devices.mobility.params={foo: 1}"], "devices.mobility.params"),
    (["devices.mobility.model=random_waypoint", "devices.mobility.params={speed_mps: [5, 1]}"],
     "devices.mobility.params.speed_mps"),
    (["devices.mobility.model=street_grid", "devices.mobility.params={block_m: -5}"], "devices.mobility.params.block_m"),
    (["devices.mobility.model=street_grid", "devices.mobility.params={block_m: 1000}"],
     "devices.mobility.params.block_m"),
    (["devices.mobility.model=gauss_markov", "devices.mobility.params={speed_mps: 3}"], "devices.mobility.params"),
    (["cells.0.pathloss_params={foo: 1}"], "cells.0.pathloss_params"),
    (["cells.1.pathloss=log_distance", "cells.1.pathloss_params={exponent: -2}"], "cells.1.pathloss_params.exponent"),
    (["cells.0.carrier_hz=1e12"], "cells.0.carrier_hz"),
    (["radio.fading=rician", "radio.rician_k_db=1e300"], "radio.rician_k_db"),
    (["learning.model={name: nope}"], "learning.model"),
    (["learning.model.depth=0"], "learning.model.depth"),
    (["learning.model.patch_size=5"], "learning.model"),
    (["learning.model.heads=3"], "learning.model"),
    (["learning.model.colour=1"], "learning.model"),
    (["learning.model.dim='a'"], "learning.model"),
    (["learning.algorithm.params={bogus: 1}"], "learning.algorithm.params"),
    (["learning.algorithm={name: pfl_tps, params: {lr: -1}}"], "learning.algorithm.params.lr"),
    (["learning.dataset.params={num_train: 0}"], "learning.dataset.params.num_train"),
    (["learning.dataset.params={num_train: abc}"], "learning.dataset.params.num_train"),
    (["learning.dataset.params={image_size: 0}"], "learning.dataset.params.image_size"),
    (["learning.dataset.params={num_classes: 1}"], "learning.dataset.params.num_classes"),
    (["learning.dataset.params={flavour: 1}"], "learning.dataset.params"),
    # Empty partitions: more classes per device than classes, more devices than samples.
    (["learning.partition={name: pathological, params: {classes_per_device: 50}}"], "learning.partition"),
    (["learning.partition={name: pathological, params: {}}"], "learning.partition.params"),
    (["learning.partition={name: dirichlet, params: {alpha: -1}}"], "learning.partition.params.alpha"),
    (["learning.partition={name: iid, params: {zzz: 1}}"], "learning.partition.params"),
    # YAML reads bare nan / inf as strings: each named, not a TypeError from a comparison
    (["learning.partition={name: dirichlet, params: {alpha: nan}}"],
     "learning.partition.params.alpha: 'nan' is not a number"),
    (["learning.partition={name: pathological, params: {classes_per_device: true}}"],
     "learning.partition.params.classes_per_device: True is not a number"),
    (["learning.algorithm.params.lr=inf"], "learning.algorithm.params.lr: lr='inf' is not a number"),
    (["devices.count=700", "fl.devices_per_round=3"], "learning.partition"),
    (["learning.dataset.params={num_train: 2, num_test: 2}"], "learning.partition"),
]
BAD_SETS = ["fl.rounds", "=3", "fl..rounds=3", ".fl=1", "fl.rounds=[1", "fl.rounds={a: 1", "cells.9.x_m=1",
            "cells.x.x_m=1", "seed.x=1", "fl.rounds=!!python/object/apply:os.system [ls]", "fl.rounds.x=1",
            "cells.-7.x_m=3"]
REQUIRED = ["seed", "area", "cells", "devices", "learning", "fl", "area.width_m", "devices.count",
            "learning.dataset", "learning.model", "fl.rounds", "fl.devices_per_round", "cells.0.name", "cells.1.x_m"]


@dataclass(frozen=True)
class Case:
    """One hostile input: CLI sub-command, overrides, file to load, key expected in stderr."""

    ident: str
    command: str  # validate | run
    sets: tuple[str, ...]
    key: str | None
    file: str = "smoke"  # smoke | a name from FILE_CASES | drop:<dotted key>


def _cases() -> list[Case]:
    rng = random.Random(20240817)
    cases: list[Case] = []
    for key, values in FIELD_MUTATIONS.items():
        for value in values:
            command = "run" if rng.random() < 0.25 else "validate"
            cases.append(Case(f"{key}={value}", command, (f"{key}={value}",), key))
    for key in UNKNOWN_KEYS:
        cases.append(Case(f"unknown:{key}", "validate", (f"{key}=1",), key))
    for sets, key in COMPONENT_CASES:
        for command in ("validate", "run"):
            cases.append(Case(f"{command}:{'+'.join(sets)}", command, tuple(sets), key))
    for item in BAD_SETS:
        cases.append(Case(f"set:{item}", rng.choice(["validate", "run"]), (item,), None))
    for key in REQUIRED:
        cases.append(Case(f"missing:{key}", "validate", (), key, file=f"drop:{key}"))
    for name in FILE_CASES:
        cases.append(Case(f"file:{name}", rng.choice(["validate", "run"]), (), None, file=name))
    # Seeded combinations of independent field errors: every key must be reported.
    single = [(k, v) for k, vs in FIELD_MUTATIONS.items() for v in vs
              if k not in ("fl.devices_per_round", "fl.min_updates", "devices.profiles", "cells.1.name", "name")
              and not k.startswith(("cells.", "devices.mobility", "learning.model"))]
    for i in range(40):
        picks = {}
        while len(picks) < rng.randint(2, 4):
            key, value = rng.choice(single)
            if not any(key.startswith(p + ".") or p.startswith(key + ".") for p in picks):
                picks[key] = value
        sets = tuple(f"{k}={v}" for k, v in picks.items())
        cases.append(Case(f"combo{i}:{'+'.join(sets)}", "validate", sets, ",".join(picks)))
    return cases


FILE_CASES = {
    "directory": None, "binary": b"\x00\xff\xfe\x89PNG\r\n\x1a\n" + bytes(range(256)), "empty": b"",
    "list": b"- seed: 1\n- area: {}\n", "scalar": b"42\n", "bad_yaml": b"seed: 1\narea: {width_m: [1, 2\n",
    "tabs": b"seed:\t1\n\tarea: 3\n", "missing": None, "python_tag": b"seed: !!python/object/apply:os.system [ls]\n",
}
CASES = _cases()
OUTCOMES: Counter = Counter()


def _scenario_file(case: Case, tmp_path: Path) -> Path:
    if case.file == "smoke":
        return SMOKE
    if case.file.startswith("drop:"):
        data = yaml.safe_load(SMOKE.read_text())
        *parents, last = case.file[5:].split(".")
        node = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        del node[last]
        path = tmp_path / "dropped.yaml"
        path.write_text(yaml.safe_dump(data))
        return path
    path = tmp_path / f"{case.file}.yaml"
    content = FILE_CASES[case.file]
    if case.file == "directory":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    return path


def _argv(case: Case, scenario: Path, out: Path) -> list[str]:
    argv = [case.command, str(scenario)]
    sets = case.sets + ((SURROGATE,) if case.command == "run" else ())
    for item in sets:
        argv += ["--set", item]
    if case.command == "run":
        argv += ["--out", str(out), "--quiet"]
    return argv


def _alarm(signum, frame):  # pragma: no cover - only on a hang
    raise TimeoutError(f"cosim did not finish within {CASE_TIMEOUT_S} s")


def _check_failure(case: Case, code: int, err: str, out_dir: Path) -> None:
    lines = err.strip().splitlines()
    assert code == 2, f"{case.ident}: exit {code}, stderr {err!r}"
    assert lines and lines[-1].startswith("cosim: error:"), f"{case.ident}: {err!r}"
    assert all(line.startswith("cosim: error:") for line in lines), f"{case.ident}: {err!r}"
    assert "Traceback" not in err
    if case.key is not None:
        for key in case.key.split(","):
            assert key in err, f"{case.ident}: {key!r} not named in {err!r}"
    elif case.sets:
        assert f"--set {case.sets[0]}" in err, f"{case.ident}: {err!r}"
    assert not out_dir.exists() or not any(out_dir.iterdir()), f"{case.ident}: left {list(out_dir.iterdir())}"


def test_catalogue_size() -> None:
    assert len(CASES) >= 200
    assert len({c.ident for c in CASES}) == len(CASES)
    assert len(_cases()) == len(CASES) and _cases() == CASES  # deterministic


@pytest.mark.parametrize("case", CASES, ids=[c.ident for c in CASES])
def test_malformed_scenario_is_one_line_error(case: Case, tmp_path: Path, capsys) -> None:
    scenario = _scenario_file(case, tmp_path)
    out_dir = tmp_path / "run"
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CASE_TIMEOUT_S)
    try:
        code = main(_argv(case, scenario, out_dir))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    err = capsys.readouterr().err
    _check_failure(case, code, err, out_dir)
    OUTCOMES[(case.command, "exit 2, key named" if case.key else "exit 2")] += 1


SUBPROCESS_IDS = ["fl.devices_per_round=7", "radio.coherence_s=1e-300", "unknown:devices.colour",
                  "run:learning.partition={name: pathological, params: {classes_per_device: 50}}",
                  "run:devices.mobility.params={foo: 1}", "run:learning.dataset.params={num_train: abc}",
                  "set:fl.rounds=[1", "file:directory", "file:binary", "missing:fl"]


def test_no_traceback_escapes_a_real_process(tmp_path: Path) -> None:
    by_id = {c.ident: c for c in CASES}
    procs = []
    for i, ident in enumerate(SUBPROCESS_IDS):
        case = by_id[ident]
        work = tmp_path / str(i)
        work.mkdir()
        argv = _argv(case, _scenario_file(case, work), work / "run")
        procs.append((case, work / "run", subprocess.Popen(
            [sys.executable, "-m", "cosim", *argv], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)))
    for case, out_dir, proc in procs:
        try:
            _, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(f"{case.ident}: hung")
        _check_failure(case, proc.returncode, err, out_dir)


def test_deadline_shorter_than_any_transfer_is_valid(tmp_path: Path, capsys) -> None:
    """Not malformed: a 1 µs deadline runs to the end and every selected device straggles."""
    import pyarrow.parquet as pq

    out = tmp_path / "run"
    code = main(["run", str(SMOKE), "--set", SURROGATE, "--set", "fl.deadline_s=1e-6", "--set", "fl.rounds=2",
                 "--out", str(out), "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    rounds = pq.read_table(out / "rounds.parquet").to_pydict()
    assert len(rounds["round"]) == 2
    assert rounds["stragglers"] == rounds["selected"] and set(rounds["completed"]) == {0}
    assert not any(rounds["aggregated"])
    kinds = pq.read_table(out / "events.parquet").column("kind").to_pylist()
    assert kinds.count("straggler") == sum(rounds["selected"])
    assert "ul_end" not in kinds


def test_report_outcomes() -> None:
    """Prints the tally (run with -s to see it); runs last in this file."""
    print(f"\nfuzz cases: {len(CASES)}; outcomes: {dict(OUTCOMES)}")
    assert sum(OUTCOMES.values()) in (0, len(CASES))  # 0 when run alone with -k
