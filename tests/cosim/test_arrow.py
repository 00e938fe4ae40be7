"""``cosim.arrow.arrow_array`` equals ``pyarrow.array`` for the trace column types (nulls,
NaN, empty and non-ASCII strings, typed numpy columns, empty columns), refuses what does
not fit, and writing a run's traces does not import pandas."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from cosim.arrow import arrow_array

ROOT = Path(__file__).resolve().parents[2]


def _reference(values: object, kind: pa.DataType) -> pa.Array:
    if isinstance(values, np.ndarray):
        return pa.array(values, type=kind)
    column = np.empty(len(values), dtype=object)  # type: ignore[arg-type]
    column[:] = values
    return pa.array(column, type=kind)


COLUMNS = [
    ([0.5, None, float("nan"), -0.0, 1e308, 3], pa.float64()),
    ([1, None, -(2**63), 2**63 - 1, np.int64(7)], pa.int64()),
    ([True, None, False, np.bool_(True)] * 5, pa.bool_()),
    (["handover", None, "", "Zürich ↔ 東京", "x" * 1000], pa.string()),
    ([None, None], pa.float64()),
    ([], pa.string()),
    ([], pa.bool_()),
    ([1.0, 2.0], pa.float64()),
    (["a", "b"], pa.string()),
    (np.array([1.5, np.nan, -2.0]), pa.float64()),
    (np.array([3, -4, 5], dtype=np.int32), pa.int64()),
    (np.array([True, False, True, True, False, False, True, True, False]), pa.bool_()),
    (np.array([], dtype=np.float64), pa.float64()),
    (np.array([1, 2**40], dtype=np.uint64), pa.int64()),
]


def _same(got: pa.Array, want: pa.Array) -> bool:
    """Same type, nulls and values; floats bit for bit (NaN, -0.0), which ``equals`` is not."""
    got.validate(full=True)
    if got.type != want.type or not got.is_null().equals(want.is_null()):
        return False
    if got.type == pa.float64():
        a, b = (x.to_numpy(zero_copy_only=False) for x in (got, want))
        return bool(np.array_equal(a.view(np.int64), b.view(np.int64)))
    return bool(got.equals(want))


@pytest.mark.parametrize(("values", "kind"), COLUMNS)
def test_arrow_array_equals_pyarrow_array(values: object, kind: pa.DataType) -> None:
    got, want = arrow_array(values, kind), _reference(values, kind)  # type: ignore[arg-type]
    assert _same(got, want), (got, want)
    assert got.null_count == want.null_count


def test_random_columns_equal_pyarrow_array() -> None:
    rng = np.random.default_rng(0)
    for n in (1, 7, 8, 9, 100, 1001):
        nulls = rng.random(n) < 0.3
        floats = [None if z else float(v) for z, v in zip(nulls, rng.normal(size=n))]
        ints = [None if z else int(v) for z, v in zip(nulls, rng.integers(-10**12, 10**12, size=n))]
        bools = [None if z else bool(v) for z, v in zip(nulls, rng.random(n) < 0.5)]
        strs = [None if z else "é" * int(v) for z, v in zip(nulls, rng.integers(0, 5, size=n))]
        for values, kind in ((floats, pa.float64()), (ints, pa.int64()), (bools, pa.bool_()), (strs, pa.string())):
            assert _same(arrow_array(values, kind), _reference(values, kind)), (n, kind)


def test_arrow_array_refuses_what_does_not_fit() -> None:
    with pytest.raises(ValueError, match="uint64 values do not fit int64"):
        arrow_array(np.array([2**63], dtype=np.uint64), pa.int64())
    with pytest.raises(TypeError, match="unsupported type"):
        arrow_array([1], pa.int32())
    with pytest.raises(OverflowError):
        arrow_array([2**64], pa.int64())


def test_writing_a_run_does_not_import_pandas(tmp_path: Path) -> None:
    code = ("import sys; from cosim.scenario import load_scenario; from cosim.engine import run_simulation; "
            f"run_simulation(load_scenario({str(ROOT / 'scenarios' / 'smoke.yaml')!r}, "
            "['fl.rounds=1', 'fl.mode=buffered', 'output.formats=[parquet, csv]']), "
            f"{str(tmp_path / 'run')!r}); print('pandas' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip().splitlines()[-1] == "False"
    assert {p.name for p in (tmp_path / "run").glob("*.parquet")} >= {"events.parquet", "updates.parquet"}
