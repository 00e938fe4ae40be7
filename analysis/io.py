"""Reading cosim run directories and comparison directories into pandas DataFrames.

Parquet when present, else CSV (read by pandas); both give the same frame. Trace
tables get their dtypes from :func:`read_trace` (numeric columns int64/float64, an
int column with nulls or an all-null column float64 NaN, booleans bool, text ``str``,
``events.kind`` and ``devices.profile`` categorical).

A *run directory* (``cosim run``) holds ``summary.json``, ``scenario.yaml`` and the
``events``/``rounds``/``devices`` tables. A *comparison directory* (``cosim compare``)
holds ``comparison.parquet``/``.csv`` (one row per grid cell and repeat), an optional
``comparison.json`` with the grid description, and the runs under ``cells/``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

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
#: Prefix of a varied key's column when the key is itself a fixed column (``--vary seed=1,2``).
VARIED_PREFIX = "varied."


def varied_column(key: str) -> str:
    """Column of varied scenario ``key`` in a comparison file: the key, or ``varied.<key>`` for ``seed``.

    ``--vary seed=1,2`` varies the cell's base seed while the ``seed`` column holds each
    run's own seed (base + repeat), so the varied one is stored as ``varied.seed``.
    """
    return f"{VARIED_PREFIX}{key}" if key in COMPARISON_FIXED else key
#: Cells of a CSV file read as a missing value (pyarrow writes NaN as ``nan`` and nulls empty).
CSV_NA_VALUES = ("", "nan", "NaN", "-nan", "null")


def find_table(directory: str | Path, stem: str) -> Path:
    """``<directory>/<stem>.parquet`` if present, else ``.csv``; ``FileNotFoundError`` otherwise."""
    base = Path(directory)
    for suffix in (".parquet", ".csv"):
        candidate = base / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(2, f"no {stem}.parquet or {stem}.csv", str(base))


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


def require_finished(run_dir: str | Path) -> None:
    """Raise a one-line ``ValueError`` if the run directory has no ``summary.json`` (interrupted or running).

    An interrupted run has its rounds and events so far but an empty devices table
    (written at the end); the message says what is there and how to finish the run.
    """
    base = Path(run_dir)
    if (base / "summary.json").is_file():
        return
    present = sorted(p.name for p in base.iterdir() if p.is_file() and not p.name.startswith("."))
    try:
        done = len(read_table_file(find_table(base, "rounds")))
    except (OSError, ValueError):
        done = 0
    try:
        total = f" of {int(read_scenario(base)['fl']['rounds'])}"
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError):
        total = ""
    resume = f"; continue it with `cosim run --resume {base}`" if any(n.startswith("checkpoint") for n in present) else ""
    raise ValueError(f"{base}: incomplete run (interrupted or still running: no summary.json), {done}{total} "
                     f"rounds done; present: {', '.join(present) or 'nothing'}{resume}")


def is_comparison_dir(path: str | Path) -> bool:
    """Whether ``path`` holds a comparison file written by ``cosim compare``."""
    base = Path(path)
    return any((base / f"{COMPARISON_STEM}{suffix}").is_file() for suffix in (".parquet", ".csv"))


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
        detail = frame["detail"]  # an all-empty CSV column reads as float NaN
        frame["detail"] = detail.astype(object).where(detail.notna(), "")
        frame = frame.astype({c: ("str" if t == "category" else t) for c, t in EVENT_DTYPES.items()})
    for column in frame.columns:
        if frame[column].dtype == object:
            frame[column] = frame[column].astype("str")
    for column in CATEGORICAL_COLUMNS.get(name, ()):
        if column in frame.columns:
            values = frame[column].astype("str")
            frame[column] = pd.Categorical(values, categories=sorted(values.unique()))
    return frame


def read_table_file(path: str | Path) -> pd.DataFrame:
    """One ``.parquet`` or ``.csv`` file as a DataFrame (columns as written; text as ``str``)."""
    file = Path(path)
    if file.suffix == ".parquet":
        return pd.read_parquet(file)
    if file.suffix != ".csv":
        raise ValueError(f"{file}: expected a .parquet or .csv file")
    return pd.read_csv(file, keep_default_na=False, na_values=list(CSV_NA_VALUES))


def read_trace(run_dir: str | Path, name: str) -> pd.DataFrame:
    """The ``events``, ``rounds`` or ``devices`` table of a run directory as a typed DataFrame.

    Parquet when present, else CSV; both give the same frame: ``events`` has the
    :data:`EVENT_DTYPES`, ``kind`` (and ``devices.profile``) are categoricals with
    sorted categories, numeric columns are int64/float64 (an int column with nulls,
    or an all-null column, is float64 NaN), booleans are bool, text is ``str``.
    """
    if name not in TRACE_TABLES:
        raise ValueError(f"unknown trace table {name!r} (expected one of {', '.join(TRACE_TABLES)})")
    return _typed(read_table_file(find_table(run_dir, name)), name)


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
        frame = pd.read_csv(path, dtype=text, keep_default_na=False,
                            na_values={c: list(CSV_NA_VALUES) for c in header if c not in text})
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


@dataclass
class Comparison:
    """A comparison file: ``frame`` (its rows), the ``varied`` key columns, ``meta`` from ``comparison.json``.

    The metric columns of ``frame`` are float64 (NaN where undefined).
    """

    root: Path
    frame: pd.DataFrame
    varied: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frame)

    def cells(self) -> list[tuple[str, ...]]:
        """Distinct varied-value tuples in order of first appearance."""
        if not self.varied:
            return [()] if len(self.frame) else []
        unique = self.frame[self.varied].drop_duplicates()
        return [tuple(str(v) for v in row) for row in unique.itertuples(index=False)]

    def rows_of(self, cell: tuple[str, ...]) -> pd.DataFrame:
        """The rows of one cell (its repeats), in file order."""
        if not self.varied:
            return self.frame
        mask = (self.frame[self.varied] == pd.Series(cell, index=self.varied)).all(axis=1)
        return self.frame[mask]

    def run_dir(self, relative: str) -> Path:
        """Absolute run directory of a ``run_dir`` value (stored relative to the comparison directory)."""
        path = Path(relative)
        return path if path.is_absolute() else self.root / path


def read_comparison(directory: str | Path) -> Comparison:
    """Read ``comparison.parquet`` (or ``.csv``) and ``comparison.json`` from ``directory``."""
    frame = read_comparison_frame(directory)
    frame = frame.astype({name: "float64" for name in COMPARISON_METRICS})
    return Comparison(root=Path(directory), frame=frame, varied=list(frame.attrs["varied"]),
                      meta=dict(frame.attrs["meta"]))
