"""Reading cosim run directories and comparison directories (Parquet, or CSV when no Parquet).

A *table* here is a plain ``dict`` of column name -> 1-D numpy array, in file order.
Numeric columns are float64 or int64 with nulls read as NaN (an int column with nulls
becomes float64); string columns are object arrays of ``str``; an all-null column
(e.g. ``accuracy`` of a surrogate run) is float64 NaN.

A *run directory* (``cosim run``) holds ``summary.json``, ``scenario.yaml`` and the
``events``/``rounds``/``devices`` tables. A *comparison directory* (``cosim compare``)
holds ``comparison.parquet``/``.csv`` (one row per grid cell and repeat), an optional
``comparison.json`` with the grid description, and the runs under ``cells/``.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import yaml

Table = dict[str, np.ndarray]

TRACE_TABLES = ("events", "rounds", "devices")
#: Metric columns of a comparison file, in order (all read as float64).
COMPARISON_METRICS = (
    "final_accuracy",
    "sim_time_s",
    "time_to_target_s",
    "energy_j",
    "uplink_bytes",
    "downlink_bytes",
    "rounds",
)
#: Fixed, non-varied columns of a comparison file; every other column is a varied key.
COMPARISON_FIXED = ("repeat", "seed", "run_dir", *COMPARISON_METRICS)
COMPARISON_STEM = "comparison"


def _column(chunked: pa.ChunkedArray) -> np.ndarray:
    kind = chunked.type
    if pa.types.is_null(kind):
        return np.full(len(chunked), np.nan)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return np.array([("" if v is None else v) for v in chunked.to_pylist()], dtype=object)
    if pa.types.is_boolean(kind):
        if chunked.null_count:
            return np.array([np.nan if v is None else float(v) for v in chunked.to_pylist()])
        return chunked.to_numpy().astype(bool)
    if pa.types.is_integer(kind) and chunked.null_count:
        return chunked.cast(pa.float64()).to_numpy()
    return np.asarray(chunked.to_numpy())


def arrow_to_table(arrow: pa.Table) -> Table:
    """Convert an Arrow table to a :data:`Table` (nulls -> NaN in numeric columns)."""
    return {name: _column(arrow.column(name)) for name in arrow.column_names}


def read_table_file(path: str | Path, string_columns: tuple[str, ...] | None = None) -> Table:
    """Read one ``.parquet`` or ``.csv`` file.

    ``string_columns`` (CSV only) are read as text verbatim (``"null"`` stays a string);
    ``None`` means: let Arrow infer every column's type.
    """
    file = Path(path)
    if file.suffix == ".parquet":
        return arrow_to_table(pq.read_table(file))
    if file.suffix != ".csv":
        raise ValueError(f"{file}: expected a .parquet or .csv file")
    types: dict[str, pa.DataType] = {}
    if string_columns:
        types = {name: pa.string() for name in string_columns}
    arrow = pa_csv.read_csv(file, convert_options=pa_csv.ConvertOptions(column_types=types))
    return arrow_to_table(arrow)


def find_table(directory: str | Path, stem: str) -> Path:
    """``<directory>/<stem>.parquet`` if present, else ``.csv``; ``FileNotFoundError`` otherwise."""
    base = Path(directory)
    for suffix in (".parquet", ".csv"):
        candidate = base / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(2, f"no {stem}.parquet or {stem}.csv", str(base))


def read_trace(run_dir: str | Path, name: str) -> Table:
    """Read the ``events``, ``rounds`` or ``devices`` table of a run directory."""
    if name not in TRACE_TABLES:
        raise ValueError(f"unknown trace table {name!r} (expected one of {', '.join(TRACE_TABLES)})")
    return read_table_file(find_table(run_dir, name))


def read_summary(run_dir: str | Path) -> dict[str, Any]:
    """The run's ``summary.json`` (JSON nulls stay ``None``)."""
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise FileNotFoundError(2, "no summary.json (unfinished or not a run directory)", str(path))
    with path.open(encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data


def read_scenario(run_dir: str | Path) -> dict[str, Any]:
    """The resolved ``scenario.yaml`` of a run directory, as plain YAML data."""
    path = Path(run_dir) / "scenario.yaml"
    if not path.is_file():
        raise FileNotFoundError(2, "no scenario.yaml", str(path))
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping")
    return data


def as_float(value: Any) -> float:
    """``None``/missing -> NaN, anything numeric -> float (YAML may give ``'1e3'`` strings)."""
    if value is None:
        return math.nan
    return float(value)


def is_run_dir(path: str | Path) -> bool:
    """Whether ``path`` looks like a run directory (it has a rounds table)."""
    base = Path(path)
    return any((base / f"rounds{suffix}").is_file() for suffix in (".parquet", ".csv"))


def is_comparison_dir(path: str | Path) -> bool:
    """Whether ``path`` holds a comparison file written by ``cosim compare``."""
    base = Path(path)
    return any((base / f"{COMPARISON_STEM}{suffix}").is_file() for suffix in (".parquet", ".csv"))


@dataclass
class Comparison:
    """A comparison file: ``table`` rows, the ``varied`` key columns, ``meta`` from ``comparison.json``."""

    root: Path
    table: Table
    varied: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.table["repeat"])

    def cell_values(self, row: int) -> tuple[str, ...]:
        """The varied values of row ``row``, in ``varied`` order."""
        return tuple(str(self.table[key][row]) for key in self.varied)

    def cells(self) -> list[tuple[str, ...]]:
        """Distinct varied-value tuples in order of first appearance."""
        return list(dict.fromkeys(self.cell_values(row) for row in range(len(self))))

    def rows_of(self, cell: tuple[str, ...]) -> list[int]:
        """Row indices of one cell (its repeats)."""
        return [row for row in range(len(self)) if self.cell_values(row) == cell]

    def run_dir(self, row: int) -> Path:
        """Absolute run directory of row ``row`` (stored relative to the comparison directory)."""
        path = Path(str(self.table["run_dir"][row]))
        return path if path.is_absolute() else self.root / path


def _csv_header(path: Path) -> list[str]:
    with path.open(encoding="utf-8", newline="") as handle:
        return next(csv.reader(handle), [])


def read_comparison(directory: str | Path) -> Comparison:
    """Read ``comparison.parquet`` (or ``.csv``) and ``comparison.json`` from ``directory``."""
    root = Path(directory)
    path = find_table(root, COMPARISON_STEM)
    if path.suffix == ".csv":
        header = _csv_header(path)
        table = read_table_file(path, tuple(c for c in header if c not in COMPARISON_FIXED or c == "run_dir"))
    else:
        table = read_table_file(path)
    missing = [c for c in COMPARISON_FIXED if c not in table]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
    for name in COMPARISON_METRICS:
        table[name] = table[name].astype(float)
    varied = [c for c in table if c not in COMPARISON_FIXED]
    for name in varied:
        table[name] = np.array([str(v) for v in table[name]], dtype=object)
    meta: dict[str, Any] = {}
    meta_path = root / f"{COMPARISON_STEM}.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    return Comparison(root=root, table=table, varied=varied, meta=meta)


# ----------------------------------------------------------------------------- DataFrames
#: dtypes of the ``events`` table (the schema ``cosim.trace.EVENT_SCHEMA`` writes); ``kind`` is categorical.
EVENT_DTYPES: dict[str, str] = {
    "time_s": "float64",
    "round": "int64",
    "device": "int64",
    "cell": "int64",
    "kind": "category",
    "bytes": "int64",
    "rate_bps": "float64",
    "energy_j": "float64",
    "duration_s": "float64",
    "detail": "str",
}
#: String columns read as categoricals, per trace table.
CATEGORICAL_COLUMNS: dict[str, tuple[str, ...]] = {"events": ("kind",), "rounds": (), "devices": ("profile",)}


def _typed(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """Give a trace frame its dtypes: the events schema, categoricals, ``str`` text, no object columns."""
    if name == "events":
        missing = [c for c in EVENT_DTYPES if c not in frame.columns]
        if missing:
            raise ValueError(f"events table: missing column(s) {', '.join(missing)}")
        frame["detail"] = frame["detail"].fillna("")
        frame = frame.astype({c: ("str" if t == "category" else t) for c, t in EVENT_DTYPES.items()})
    for column in frame.columns:
        if frame[column].dtype == object:
            frame[column] = frame[column].astype("str")
    for column in CATEGORICAL_COLUMNS.get(name, ()):
        if column in frame.columns:
            values = frame[column].astype("str")
            frame[column] = pd.Categorical(values, categories=sorted(values.unique()))
    return frame


def read_frame(path: str | Path) -> pd.DataFrame:
    """One ``.parquet`` or ``.csv`` file as a DataFrame (columns as written; text as ``str``)."""
    file = Path(path)
    if file.suffix == ".parquet":
        return pd.read_parquet(file)
    if file.suffix != ".csv":
        raise ValueError(f"{file}: expected a .parquet or .csv file")
    return pd.read_csv(file, keep_default_na=False, na_values=["", "nan", "NaN", "-nan", "null"])


def read_trace_frame(run_dir: str | Path, name: str) -> pd.DataFrame:
    """The ``events``, ``rounds`` or ``devices`` table of a run directory as a typed DataFrame.

    Parquet when present, else CSV; both give the same frame: ``events`` has the
    :data:`EVENT_DTYPES`, ``kind`` (and ``devices.profile``) are categoricals with
    sorted categories, numeric columns are int64/float64 (an int column with nulls,
    or an all-null column, is float64 NaN), booleans are bool, text is ``str``.
    """
    if name not in TRACE_TABLES:
        raise ValueError(f"unknown trace table {name!r} (expected one of {', '.join(TRACE_TABLES)})")
    return _typed(read_frame(find_table(run_dir, name)), name)


def read_comparison_frame(directory: str | Path) -> pd.DataFrame:
    """``comparison.parquet`` (or ``.csv``) of a ``cosim compare`` directory as a DataFrame.

    One row per cell and repeat: a ``str`` column per varied key (values as given to
    ``--vary``), ``repeat``, ``seed``, ``run_dir`` and the :data:`COMPARISON_METRICS`.
    ``frame.attrs``: ``varied`` (the key columns, in order), ``out`` (the directory)
    and ``meta`` (``comparison.json``, empty when absent).
    """
    root = Path(directory)
    path = find_table(root, COMPARISON_STEM)
    if path.suffix == ".csv":
        header = list(pd.read_csv(path, nrows=0).columns)
        text = {c: "str" for c in header if c not in COMPARISON_FIXED or c == "run_dir"}
        frame = pd.read_csv(path, dtype=text, keep_default_na=False, na_values={
            c: ["", "nan", "NaN", "null"] for c in header if c not in text})
    else:
        frame = pd.read_parquet(path)
    missing = [c for c in COMPARISON_FIXED if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
    varied = [c for c in frame.columns if c not in COMPARISON_FIXED]
    frame = frame.astype({c: "str" for c in [*varied, "run_dir"]})
    meta_path = root / f"{COMPARISON_STEM}.json"
    meta: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    frame.attrs.update(varied=varied, out=str(root), meta=meta)
    return frame
