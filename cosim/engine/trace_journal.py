"""The trace journal: the trace rows of a checkpointed run, appended once each.

A checkpoint does not carry the trace rows (re-pickling every row at every checkpoint is
quadratic in rounds). Instead, at each checkpoint the rows recorded since the previous
one are appended to ``checkpoint-trace.jsonl`` in the run directory as one JSON line
(``{"events": {column: [values]}, "rounds": {...}, "updates": {...}}``; JSON floats
round-trip exactly, NaN and infinities included), and the checkpoint stores the journal's
length and a hash chain over its lines (``h_k = sha256(h_{k-1} || line_k)``). A resume
reads the journal up to that length, checks the chain, rebuilds the recorder and cuts
off anything after it (rows of a checkpoint whose write did not complete). JSON is read
with ``json.loads``: the journal cannot run code either.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from cosim.trace import TraceRecorder

JOURNAL_NAME = "checkpoint-trace.jsonl"
_TABLES = ("events", "rounds", "updates", "devices")
_EMPTY_CHAIN = hashlib.sha256(b"cosim trace journal").hexdigest()


def _columns(recorder: TraceRecorder) -> dict[str, dict[str, list[Any]]]:
    return {"events": recorder._events, "rounds": recorder._rounds.columns,
            "updates": recorder._updates.columns, "devices": recorder._devices.columns}


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"trace value {value!r} of type {type(value).__name__} cannot be journaled")


class TraceJournal:
    """Appends a recorder's new rows to ``path``; restores a recorder from it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.rows = dict.fromkeys(_TABLES, 0)  # rows of each table already in the journal
        self.length = 0  # bytes of the journal that belong to this run
        self.chain = _EMPTY_CHAIN

    @property
    def position(self) -> tuple[int, str]:
        """(length in bytes, hash chain): what a checkpoint records."""
        return self.length, self.chain

    def append(self, recorder: TraceRecorder) -> tuple[int, str]:
        """Append the rows recorded since the last call; return the new `position`.

        Written at the recorded length (anything after it, e.g. a line cut short by a full
        disk, is overwritten) and fsynced; the position only moves when the write succeeded.
        """
        new: dict[str, dict[str, list[Any]]] = {}
        counts = {}
        for table, columns in _columns(recorder).items():
            start = self.rows[table]
            new[table] = {key: list(values[start:]) for key, values in columns.items()}
            counts[table] = len(next(iter(columns.values()))) if columns else 0
        line = json.dumps(new, separators=(",", ":"), default=_plain).encode() + b"\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.ftruncate(fd, self.length)
            os.lseek(fd, self.length, os.SEEK_SET)
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(self.path)) from None
        finally:
            os.close(fd)
        self.length += len(line)
        self.chain = hashlib.sha256(bytes.fromhex(self.chain) + line).hexdigest()
        self.rows = counts
        return self.position

    def restore(self, position: tuple[int, str], events_level: str) -> TraceRecorder:
        """The recorder holding the journal's rows up to `position` (verified); the journal is
        cut to that length. Raises `ValueError` (one line) when it is missing, short or altered."""
        from cosim.engine.checkpoint import CheckpointError

        length, chain = int(position[0]), str(position[1])
        recorder = TraceRecorder(events=events_level)
        try:
            with open(self.path, "rb") as f:
                blob = f.read(length)
        except FileNotFoundError:
            blob = b""
        if len(blob) < length:
            raise CheckpointError(f"{self.path}: trace journal is missing or truncated ({len(blob)} of {length} bytes)")
        digest = _EMPTY_CHAIN
        tables = _columns(recorder)
        counts = dict.fromkeys(_TABLES, 0)
        for line in blob.splitlines(keepends=True):
            digest = hashlib.sha256(bytes.fromhex(digest) + line).hexdigest()
        if digest != chain:
            raise CheckpointError(f"{self.path}: trace journal does not match the checkpoint (edited or corrupt)")
        for line in blob.splitlines():
            chunk = json.loads(line)
            for table in _TABLES:
                for key, values in chunk.get(table, {}).items():
                    tables[table].setdefault(key, []).extend(values)
        for table, columns in tables.items():
            counts[table] = len(next(iter(columns.values()))) if columns else 0
        if os.path.exists(self.path):
            os.truncate(self.path, length)
        self.length, self.chain, self.rows = length, chain, counts
        return recorder

    def discard(self) -> None:
        """Remove the journal (the run finished, or starts from scratch)."""
        self.path.unlink(missing_ok=True)
        self.rows = dict.fromkeys(_TABLES, 0)
        self.length, self.chain = 0, _EMPTY_CHAIN
