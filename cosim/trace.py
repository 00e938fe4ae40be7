"""Trace recording (events, rounds, devices tables) and atomic, deterministic writers.

``TraceRecorder`` keeps every table in memory as column lists, so appending an event
is a handful of ``list.append`` calls (thousands of events per round are cheap).
``write`` turns them into Arrow tables with explicit, stable dtypes and writes
Parquet (and CSV on request). Every file is written to ``.cosim-tmp-<pid>-<name>`` in the
target directory (a prefix only cosim uses, so its stale-temp cleanup never touches a user's file) and moved into place with ``os.replace``, so a reader never sees a
half-written file. Same rows give byte-identical files.

The ``events`` schema is fixed (:data:`EVENT_SCHEMA`); ``device``/``cell`` use
:data:`NO_ID` (-1) when an event concerns no device or cell. The ``rounds`` and
``devices`` tables take their columns from the first row; every later row must
have the same keys. Column dtypes are inferred from the values: bool -> bool,
int -> int64, float (or int/float mixed) -> float64, str -> string; ``None`` is a
null; an all-``None`` column is float64.

Event levels (``output.events``): ``all`` keeps every event; ``transfers`` drops the
world's per-device state events (:data:`WORLD_EVENT_KINDS`: handovers and availability
changes), which dominate the trace at scale, and keeps everything the FL work does;
``rounds`` keeps only round-level events (``device == NO_ID``: round start, aggregation,
...). Counters in the summary (e.g. ``handovers``) do not depend on the level.

pyarrow is imported when a table is built or written, not with this module (a run
records for minutes before it writes; ``EVENT_SCHEMA`` is built on first access).
Columns reach Arrow through ``cosim.arrow.arrow_array``, built from buffers: given a list
or a numpy array, ``pyarrow.array`` asks pandas whether it is a pandas object, which imports
pandas.
"""

from __future__ import annotations

import json
import math
import os
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cosim.arrow import arrow_array

if TYPE_CHECKING:
    import pyarrow as pa

#: ``device``/``cell`` value for events that concern no device or no cell.
NO_ID = -1

#: The ``events`` columns: (name, Arrow type name, nullable); see :func:`event_schema`.
EVENT_COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("time_s", "float64", False),
    ("round", "int64", False),
    ("device", "int64", False),
    ("cell", "int64", False),
    ("kind", "string", False),
    ("bytes", "int64", False),
    ("rate_bps", "float64", True),
    ("energy_j", "float64", False),
    ("duration_s", "float64", False),
    ("detail", "string", False),
)
#: ``output.events`` levels, from most to least detailed.
EVENT_LEVELS = ("all", "transfers", "rounds")
#: Event kinds about a device's radio/availability state rather than FL work (dropped by ``transfers``).
WORLD_EVENT_KINDS = frozenset({"handover", "available", "unavailable"})


@functools.lru_cache(maxsize=None)
def event_schema() -> pa.Schema:
    """The Arrow schema of the ``events`` table (built from :data:`EVENT_COLUMNS`)."""
    import pyarrow as pa

    return pa.schema([pa.field(name, getattr(pa, kind)(), nullable=nullable) for name, kind, nullable in EVENT_COLUMNS])


def __getattr__(name: str) -> Any:
    if name == "EVENT_SCHEMA":  # built lazily: importing this module does not import pyarrow
        return event_schema()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

TABLES = ("events", "rounds", "devices")
FORMATS = ("parquet", "csv")


# ----------------------------------------------------------------------------- atomic files
#: Prefix of every temp file cosim writes (only these are removed as stale temps).
TMP_PREFIX = ".cosim-tmp-"


def _tmp_path(path: Path) -> Path:
    return path.with_name(f"{TMP_PREFIX}{os.getpid()}-{path.name}")


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Run ``write(tmp)`` on a temp file beside ``path``, fsync it, then ``os.replace`` it.

    The temp file is removed if ``write`` fails, and the file at ``path`` is left as it
    was; an ``OSError`` without a file name (a full disk) or naming the temp file is
    raised naming ``path``.
    Parent directories are created.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(final)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename in (None, "", str(tmp)):
            # name the file being written, with the system's message (pyarrow's carries
            # only an errno and a generic text): "PATH: No space left on device"
            reason = os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc) or type(exc).__name__)
            raise OSError(exc.errno, reason, str(final)) from exc
        raise
    return final


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def to_json_safe(obj: Any) -> Any:
    """``obj`` with NaN/inf floats -> None, numpy scalars/arrays -> Python, tuples -> lists, paths -> str."""
    if isinstance(obj, (np.generic, np.ndarray)):
        obj = obj.tolist()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(key): to_json_safe(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json_safe(value) for value in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as JSON (sorted keys, indent 2, NaN/inf -> null) to ``path`` atomically."""
    text = json.dumps(to_json_safe(obj), sort_keys=True, indent=2, allow_nan=False) + "\n"
    return write_text_atomic(path, text)


# ----------------------------------------------------------------------------- tables
def _infer_type(name: str, values: Sequence[Any]) -> pa.DataType:
    import pyarrow as pa

    kinds = {type(v) for v in values if v is not None}
    if not kinds:
        return pa.float64()
    if all(issubclass(k, (bool, np.bool_)) for k in kinds):
        return pa.bool_()
    if any(issubclass(k, (bool, np.bool_)) for k in kinds):
        raise TypeError(f"column {name!r} mixes booleans with other types: {sorted(k.__name__ for k in kinds)}")
    if all(issubclass(k, (int, np.integer)) for k in kinds):
        return pa.int64()
    if all(issubclass(k, (int, float, np.integer, np.floating)) for k in kinds):
        return pa.float64()
    if all(issubclass(k, str) for k in kinds):
        return pa.string()
    raise TypeError(f"column {name!r} has unsupported or mixed types: {sorted(k.__name__ for k in kinds)}")


class _FreeTable:
    """Rows of a table whose columns are fixed by its first row."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.columns: dict[str, list[Any]] = {}

    def append(self, fields: Mapping[str, Any]) -> None:
        if not self.columns:
            if not fields:
                raise ValueError(f"{self.name} row has no fields")
            self.columns = {key: [] for key in fields}
        elif fields.keys() != self.columns.keys():
            missing = sorted(self.columns.keys() - fields.keys())
            extra = sorted(fields.keys() - self.columns.keys())
            raise ValueError(f"{self.name} row keys differ from the first row: missing {missing}, extra {extra}")
        for key, value in fields.items():
            self.columns[key].append(value)

    def set_columns(self, columns: Mapping[str, Any]) -> None:
        """Replace every row by whole columns (lists or 1-D numpy arrays of equal length);
        the result is the same table as appending the rows one by one."""
        lengths = {len(values) for values in columns.values()}
        if not columns or len(lengths) != 1:
            raise ValueError(f"{self.name} columns must be non-empty and of one length, got {sorted(lengths)}")
        self.columns = dict(columns)

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def table(self) -> pa.Table:
        import pyarrow as pa

        arrays = []
        fields = []
        for key, values in self.columns.items():
            if isinstance(values, np.ndarray):  # a whole column (``set_columns``): no per-value work
                kind = _ARRAY_TYPES.get(values.dtype.kind) or _infer_type(key, values)
            else:
                kind = _infer_type(key, values)  # an int in a float64 column: converted by arrow_array
            arrays.append(arrow_array(values, kind))
            fields.append(pa.field(key, kind))
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


class _ArrayTypes(dict):
    """numpy dtype kind -> Arrow type (built on first use: pyarrow is imported lazily)."""

    def get(self, kind: str, default: Any = None) -> Any:
        if not self:
            import pyarrow as pa

            self.update(b=pa.bool_(), i=pa.int64(), f=pa.float64())
        return super().get(kind, default)


_ARRAY_TYPES = _ArrayTypes()


class TraceRecorder:
    """In-memory trace of one run: ``events``, ``rounds`` and ``devices`` tables.

    Args:
        events: which events to keep, one of :data:`EVENT_LEVELS` (see the module docstring).
    """

    events_level: str = "all"  # class default: recorders pickled before levels existed read as "all"

    def __init__(self, events: str = "all") -> None:
        if events not in EVENT_LEVELS:
            raise ValueError(f"output.events {events!r}: allowed {list(EVENT_LEVELS)}")
        self.events_level = events
        self._events: dict[str, list[Any]] = {name: [] for name, _, _ in EVENT_COLUMNS}
        self._rounds = _FreeTable("rounds")
        self._devices = _FreeTable("devices")
        self._updates = _FreeTable("updates")  # non-sync server modes: one row per applied update

    def event(
        self,
        time_s: float,
        round: int,  # noqa: A002 - column name in the trace
        device: int,
        cell: int,
        kind: str,
        bytes: int = 0,  # noqa: A002 - column name in the trace
        rate_bps: float = math.nan,
        energy_j: float = 0.0,
        duration_s: float = 0.0,
        detail: str = "",
    ) -> None:
        """Append one event row (kept in insertion order) if the level keeps it (``keeps``).
        Use ``NO_ID`` for no device/cell."""
        if self.events_level != "all" and not self.keeps(kind, device):
            return
        columns = self._events
        columns["time_s"].append(float(time_s))
        columns["round"].append(int(round))
        columns["device"].append(int(device))
        columns["cell"].append(int(cell))
        columns["kind"].append(str(kind))
        columns["bytes"].append(int(bytes))
        columns["rate_bps"].append(float(rate_bps))
        columns["energy_j"].append(float(energy_j))
        columns["duration_s"].append(float(duration_s))
        columns["detail"].append(str(detail))

    def keeps(self, kind: str, device: int = 0) -> bool:
        """Whether an event of ``kind`` about ``device`` is recorded at this level."""
        if self.events_level == "all":
            return True
        if self.events_level == "rounds":
            return int(device) == NO_ID
        return kind not in WORLD_EVENT_KINDS

    def round_row(self, **fields: Any) -> None:
        """Append one row to ``rounds`` (same keys as the first row)."""
        self._rounds.append(fields)

    def device_row(self, **fields: Any) -> None:
        """Append one row to ``devices`` (same keys as the first row)."""
        self._devices.append(fields)

    def device_columns(self, **columns: Any) -> None:
        """Set the whole ``devices`` table from columns (lists or 1-D arrays, one row per
        device): O(devices) where ``device_row`` per device costs a dict per row."""
        self._devices.set_columns(columns)

    def update_row(self, **fields: Any) -> None:
        """Append one row to ``updates`` (written only when it has rows)."""
        self._updates.append(fields)

    def update_values(self, column: str) -> list[Any]:
        """The values of one ``updates`` column so far."""
        return list(self._updates.columns.get(column, []))

    def round_values(self, column: str) -> list[Any]:
        """The values of one ``rounds`` column so far (empty before the first round)."""
        return list(self._rounds.columns.get(column, []))

    @property
    def num_events(self) -> int:
        """Number of event rows recorded so far."""
        return len(self._events["time_s"])

    def events_table(self) -> pa.Table:
        """The ``events`` rows as an Arrow table with :data:`EVENT_SCHEMA`."""
        import pyarrow as pa

        schema = event_schema()
        arrays = [arrow_array(self._events[name], schema.field(name).type) for name, _, _ in EVENT_COLUMNS]
        return pa.Table.from_arrays(arrays, schema=schema)

    def tables(self) -> dict[str, pa.Table]:
        """The tables by name: ``events``, ``rounds``, ``devices``, and ``updates`` when it has rows."""
        tables = {"events": self.events_table(), "rounds": self._rounds.table(), "devices": self._devices.table()}
        if len(self._updates):
            tables["updates"] = self._updates.table()
        return tables

    def state(self) -> dict[str, Any]:
        """A deep, picklable copy of every recorded row (for checkpoints)."""
        return {
            "events": {key: list(values) for key, values in self._events.items()},
            "rounds": {key: list(values) for key, values in self._rounds.columns.items()},
            "devices": {key: list(values) for key, values in self._devices.columns.items()},
            "updates": {key: list(values) for key, values in self._updates.columns.items()},
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> TraceRecorder:
        """A recorder holding exactly the rows of a previous ``state()``."""
        recorder = cls()
        names = [name for name, _, _ in EVENT_COLUMNS]
        if set(state["events"]) != set(recorder._events):
            raise ValueError(f"event columns {sorted(state['events'])} do not match {names}")
        recorder._events = {name: list(state["events"][name]) for name in names}
        recorder._rounds.columns = {key: list(values) for key, values in state["rounds"].items()}
        recorder._devices.columns = {key: list(values) for key, values in state["devices"].items()}
        recorder._updates.columns = {key: list(values) for key, values in state.get("updates", {}).items()}
        return recorder

    def write(self, out_dir: str | Path, formats: Iterable[str] = ("parquet",)) -> list[Path]:
        """Write ``events``/``rounds``/``devices`` as ``.parquet`` and/or ``.csv`` into ``out_dir``.

        Returns the written paths. Writing is atomic per file and deterministic.
        """
        wanted = list(dict.fromkeys(formats))
        unknown = [fmt for fmt in wanted if fmt not in FORMATS]
        if unknown or not wanted:
            raise ValueError(f"trace formats {wanted!r}: must be a non-empty subset of {FORMATS}")
        directory = Path(out_dir)
        written: list[Path] = []
        for name, table in self.tables().items():
            if "parquet" in wanted:
                written.append(write_parquet_atomic(directory / f"{name}.parquet", table))
            if "csv" in wanted:
                written.append(write_csv_atomic(directory / f"{name}.csv", table))
        return written


def write_parquet_atomic(path: str | Path, table: pa.Table) -> Path:
    """Write ``table`` as Parquet atomically and deterministically (zstd, fixed row groups)."""
    import pyarrow.parquet as pq

    return write_atomic(
        path,
        lambda tmp: pq.write_table(
            table, tmp, compression="zstd", row_group_size=1 << 20, write_statistics=True, store_schema=True
        ),
    )


def write_csv_atomic(path: str | Path, table: pa.Table) -> Path:
    """Write ``table`` as CSV (header row, nulls empty) atomically."""
    import pyarrow.csv as pa_csv

    return write_atomic(path, lambda tmp: pa_csv.write_csv(table, tmp))
