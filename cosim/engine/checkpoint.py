"""Round-boundary checkpoints: everything a run needs to continue bit-identically, in a
file that cannot run code when it is read and that a resume verifies before using.

A checkpoint (`checkpoint.pkl` in the run directory, written atomically at the end of a
round) holds: simulated time, the world-tick counter, every random generator, the world
(mobility, shadowing, fading, LOS draws), the fleet's batteries and energy accounts, the
selection policy, the algorithm's server and device states, the schedulers' rate
histories and the run counters. Two things are not in it:

- the federated data set: rebuilt from the scenario (a pure function of scenario and
  seed) and re-attached on load by a persistent id;
- the trace rows: they are appended, as JSON lines, to the append-only journal
  `checkpoint-trace.jsonl` (:mod:`cosim.engine.trace_journal`); the checkpoint stores the
  journal's length and hash chain at that round, so checkpointing every round stays
  linear in rounds (re-pickling every row each round was quadratic: 2,000 rounds took
  64 s instead of 6 s).

File layout::

    COSIM-CHECKPOINT\\n
    {"format_version": 2, "scenario_sha256": ..., "run_id": ..., "rounds_done": ...,
     "journal_bytes": ..., "journal_sha256": ..., "payload_bytes": ..., "sha256": ...}\\n
    <payload: the state in the safe pickle dialect of cosim.engine.safe_pickle>

``sha256`` covers the header's other fields and the payload, so a flipped bit anywhere is
caught; ``scenario_sha256`` (:func:`cosim.engine.rundir.scenario_sha256`) ties the
checkpoint to the resolved scenario of its run and ``run_id`` to the run directory's
marker. Any mismatch, truncation, other format version or unreadable content raises
:class:`CheckpointError` with one line. Objects shared between components (a generator
held by both the world and the rng table) stay shared because they are pickled in one dump.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cosim.engine import safe_pickle
from cosim.scenario.text import escape_controls
from cosim.trace import write_atomic

CHECKPOINT_NAME = "checkpoint.pkl"
FORMAT_VERSION = 2
MAGIC = b"COSIM-CHECKPOINT\n"
_MAX_HEADER_BYTES = 4096


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: corrupt, truncated, foreign, or of another format.
    The message is one line (control characters in a path are escaped)."""

    def __init__(self, message: str) -> None:
        super().__init__(escape_controls(str(message)))


def _digest(header: dict[str, Any], payload: bytes) -> str:
    fields = {key: value for key, value in header.items() if key != "sha256"}
    h = hashlib.sha256(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode())
    h.update(payload)
    return h.hexdigest()


def save_checkpoint(path: Path, state: dict[str, Any], data: Any = None, *, scenario_sha256: str = "",
                    run_id: str = "", journal: tuple[int, str] = (0, "")) -> None:
    """Write `state` to `path` atomically (temp file, fsync, rename; a failed write leaves
    the previous checkpoint as it was and no temp file). `data` is written by reference;
    `journal` is the trace journal's (length in bytes, hash chain) at this state."""
    try:
        payload = safe_pickle.dumps(state, data)
    except TypeError as exc:  # a class outside the allow-list (e.g. a plugin's helper class): one line, exit 2
        first = (str(exc).splitlines() or [""])[0]
        raise CheckpointError(f"{path}: cannot write the checkpoint: {first}") from None
    header: dict[str, Any] = {
        "format_version": FORMAT_VERSION, "scenario_sha256": scenario_sha256, "run_id": run_id,
        "rounds_done": int(state.get("rounds_done", 0)), "journal_bytes": int(journal[0]),
        "journal_sha256": journal[1], "payload_bytes": len(payload),
    }
    header["sha256"] = _digest(header, payload)
    line = json.dumps(header, sort_keys=True).encode() + b"\n"

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(MAGIC)
            f.write(line)
            f.write(payload)

    write_atomic(path, write)
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_checkpoint(path: Path) -> tuple[dict[str, Any], bytes]:
    """The verified (header, payload) of the checkpoint at `path`; `CheckpointError` when the
    file is empty, truncated, corrupt or of another format. Nothing is unpickled here."""
    with open(path, "rb") as f:
        blob = f.read()
    where = f"{path}: "
    if not blob:
        raise CheckpointError(f"{where}checkpoint is empty (a write was cut short?)")
    if not blob.startswith(MAGIC):
        if blob[:len(MAGIC)] == MAGIC[:len(blob)]:
            raise CheckpointError(f"{where}checkpoint is truncated ({len(blob)} bytes)")
        raise CheckpointError(f"{where}not a cosim checkpoint of format {FORMAT_VERSION} "
                              "(written by another program or an older cosim)")
    end = blob.find(b"\n", len(MAGIC), len(MAGIC) + _MAX_HEADER_BYTES)
    if end < 0:
        raise CheckpointError(f"{where}checkpoint is truncated or corrupt (no header)")
    try:
        header = json.loads(blob[len(MAGIC):end])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{where}checkpoint is corrupt (unreadable header)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{where}checkpoint is corrupt (header is not a mapping)")
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{where}checkpoint format {version!r}, this cosim reads {FORMAT_VERSION}")
    payload = blob[end + 1:]
    expected = header.get("payload_bytes")
    if not isinstance(expected, int) or len(payload) != expected:
        state = "truncated" if isinstance(expected, int) and len(payload) < expected else "corrupt"
        raise CheckpointError(f"{where}checkpoint is {state} ({len(payload)} payload bytes, header says {expected})")
    if header.get("sha256") != _digest(header, payload):
        raise CheckpointError(f"{where}checkpoint is corrupt (SHA-256 mismatch)")
    return header, payload


def check_owner(path: Path, header: dict[str, Any], scenario_sha256: str, run_id: str | None) -> None:
    """`CheckpointError` unless the checkpoint belongs to the run with this scenario and run id."""
    if header.get("scenario_sha256") != scenario_sha256:
        raise CheckpointError(
            f"{path}: checkpoint was written for another scenario (scenario.yaml edited, or the checkpoint "
            f"copied from another run): scenario hash {str(header.get('scenario_sha256'))[:12]} != "
            f"{scenario_sha256[:12]}; start the run again without --resume")
    if run_id is not None and header.get("run_id") != run_id:
        raise CheckpointError(f"{path}: checkpoint belongs to another run (run id {header.get('run_id')!r}, "
                              f"this directory's run is {run_id!r})")


def load_checkpoint(path: Path, data: Any = None) -> dict[str, Any]:
    """The state a `save_checkpoint` wrote, `data` re-attached (verified; see `read_checkpoint`).

    The state's ``"journal"`` item is the (length, hash chain) of the trace journal."""
    header, payload = read_checkpoint(path)
    try:
        state = safe_pickle.loads(payload, data)
    except safe_pickle.CheckpointSafetyError as exc:
        raise CheckpointError(f"{path}: refused: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any failure to decode is a bad checkpoint
        first = (str(exc).splitlines() or [""])[0]
        raise CheckpointError(f"{path}: checkpoint is unreadable ({type(exc).__name__}: {first})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: checkpoint is corrupt (state is a {type(state).__name__})")
    state["journal"] = (int(header.get("journal_bytes", 0)), str(header.get("journal_sha256", "")))
    return state
