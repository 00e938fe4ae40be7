"""Trace recorder: stable dtypes, insertion order, atomic and deterministic writes, CSV, JSON."""

from __future__ import annotations

import json
import math
import os
import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from cosim.trace import EVENT_SCHEMA, NO_ID, TraceRecorder, write_atomic, write_json_atomic, write_text_atomic


def sample_recorder() -> TraceRecorder:
    rec = TraceRecorder()
    rec.event(0.0, 1, NO_ID, NO_ID, "round_start")
    rec.event(0.0, 1, 3, 0, "dl_start", bytes=1000, rate_bps=2e6)
    rec.event(0.5, 1, 3, 0, "dl_end", bytes=np.int64(1000), rate_bps=2e6, energy_j=0.01, duration_s=0.5)
    rec.event(np.float64(0.25), 1, 2, 1, "compute_end", energy_j=0.2, detail="f=1.2e9")
    rec.round_row(round=1, sim_time_s=0.5, accuracy=None, energy_j=0.21, updates=2, complete=True, policy="random")
    rec.round_row(round=2, sim_time_s=1.5, accuracy=0.5, energy_j=0.4, updates=np.int64(1), complete=False,
                  policy="random")
    rec.device_row(device=2, cell=1, profile="low", energy_j=0.2, rounds=1)
    rec.device_row(device=3, cell=0, profile="high", energy_j=1, rounds=1)  # int in a float column
    return rec


def test_events_schema_and_insertion_order(tmp_path: Path) -> None:
    rec = sample_recorder()
    assert rec.num_events == 4
    rec.write(tmp_path, ["parquet"])
    events = pq.read_table(tmp_path / "events.parquet")
    assert events.schema.equals(EVENT_SCHEMA)
    assert events.column("kind").to_pylist() == ["round_start", "dl_start", "dl_end", "compute_end"]
    assert events.column("time_s").to_pylist() == [0.0, 0.0, 0.5, 0.25]  # not sorted: insertion order
    assert events.column("device").to_pylist() == [-1, 3, 3, 2]
    assert events.column("bytes").to_pylist() == [0, 1000, 1000, 0]
    assert math.isnan(events.column("rate_bps").to_pylist()[0])
    assert events.column("detail").to_pylist()[3] == "f=1.2e9"


def test_free_tables_infer_stable_dtypes(tmp_path: Path) -> None:
    rec = sample_recorder()
    rec.write(tmp_path)
    rounds = pq.read_table(tmp_path / "rounds.parquet")
    assert rounds.column_names == ["round", "sim_time_s", "accuracy", "energy_j", "updates", "complete", "policy"]
    types = dict(zip(rounds.column_names, rounds.schema.types))
    assert types == {"round": pa.int64(), "sim_time_s": pa.float64(), "accuracy": pa.float64(),
                     "energy_j": pa.float64(), "updates": pa.int64(), "complete": pa.bool_(),
                     "policy": pa.string()}
    assert rounds.column("accuracy").to_pylist() == [None, 0.5]
    devices = pq.read_table(tmp_path / "devices.parquet")
    assert devices.schema.field("energy_j").type == pa.float64()
    assert devices.column("energy_j").to_pylist() == [0.2, 1.0]


def test_row_keys_must_match_first_row() -> None:
    rec = TraceRecorder()
    rec.round_row(round=1, energy_j=0.0)
    with pytest.raises(ValueError, match=r"missing \['energy_j'\], extra \['energy'\]"):
        rec.round_row(round=2, energy=1.0)


def test_mixed_bool_and_number_column_rejected() -> None:
    rec = TraceRecorder()
    rec.device_row(ok=True)
    rec.device_row(ok=1)
    with pytest.raises(TypeError, match="'ok' mixes booleans"):
        rec.tables()


def test_write_is_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    sample_recorder().write(a, ["parquet", "csv"])
    sample_recorder().write(b, ["parquet", "csv"])
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(f"{t}.{ext}" for t in ("events", "rounds", "devices") for ext in ("parquet", "csv"))
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_csv_written_only_on_request_and_readable(tmp_path: Path) -> None:
    rec = sample_recorder()
    written = rec.write(tmp_path / "p", ["parquet"])
    assert {p.suffix for p in written} == {".parquet"}
    rec.write(tmp_path / "c", ["csv"])
    assert not list((tmp_path / "c").glob("*.parquet"))
    events = pa_csv.read_csv(tmp_path / "c" / "events.csv")
    assert events.column("kind").to_pylist() == ["round_start", "dl_start", "dl_end", "compute_end"]
    assert events.column("bytes").to_pylist() == [0, 1000, 1000, 0]
    with pytest.raises(ValueError, match="non-empty subset"):
        rec.write(tmp_path, ["xml"])


def test_empty_recorder_writes_valid_files(tmp_path: Path) -> None:
    TraceRecorder().write(tmp_path, ["parquet", "csv"])
    events = pq.read_table(tmp_path / "events.parquet")
    assert events.num_rows == 0 and events.schema.equals(EVENT_SCHEMA)
    assert pq.read_table(tmp_path / "rounds.parquet").num_rows == 0


def test_state_round_trip_and_pickle(tmp_path: Path) -> None:
    rec = sample_recorder()
    clone = TraceRecorder.from_state(pickle.loads(pickle.dumps(rec.state())))
    clone.event(2.0, 2, 1, 1, "ul_end")
    assert rec.num_events == 4 and clone.num_events == 5  # copies, not shared lists
    rec.event(2.0, 2, 1, 1, "ul_end")
    rec.write(tmp_path / "a")
    clone.write(tmp_path / "b")
    assert (tmp_path / "a" / "events.parquet").read_bytes() == (tmp_path / "b" / "events.parquet").read_bytes()


def test_atomic_write_leaves_no_temp_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")

    def boom(tmp: Path) -> None:
        tmp.write_text("partial")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_atomic(target, boom)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_write_uses_pid_temp_in_same_dir(tmp_path: Path) -> None:
    seen: list[Path] = []
    write_atomic(tmp_path / "sub" / "x.bin", lambda tmp: (seen.append(tmp), tmp.write_bytes(b"1")))
    assert seen == [tmp_path / "sub" / f".cosim-tmp-{os.getpid()}-x.bin"]
    assert (tmp_path / "sub" / "x.bin").read_bytes() == b"1"
    write_text_atomic(tmp_path / "t.txt", "héllo\n")
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "héllo\n"


def test_write_json_atomic_sorted_finite(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    write_json_atomic(path, {"b": float("nan"), "a": [1.5, float("inf"), np.float32(0.5)], "c": (np.int64(3),),
                             "d": {"z": 1, "y": Path("runs/x")}})
    text = path.read_text()
    assert text == json.dumps({"a": [1.5, None, 0.5], "b": None, "c": [3], "d": {"y": "runs/x", "z": 1}},
                              sort_keys=True, indent=2) + "\n"
    assert "NaN" not in text and "Infinity" not in text
