"""Round-boundary checkpoints: everything a run needs to continue bit-identically.

A checkpoint is one pickle written atomically (`checkpoint.pkl` in the run directory)
at the end of a round: simulated time, the world-tick counter, every random generator,
the world (mobility, shadowing, fading, LOS draws), the fleet's batteries and energy
accounts, the selection policy, the algorithm's server and device states, the
schedulers' rate histories, the trace rows so far and the run counters. The
federated data set is not stored: it is rebuilt from the scenario (it is a pure
function of the scenario and seed) and re-attached on load by a persistent id, which
keeps checkpoints small. Objects shared between components (a generator held by both
the world and the rng table) stay shared because they are pickled in one dump.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

CHECKPOINT_NAME = "checkpoint.pkl"
FORMAT_VERSION = 1
_DATA_ID = "federated-data"


class _Pickler(pickle.Pickler):
    def __init__(self, file, data: Any) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._data = data

    def persistent_id(self, obj: Any) -> str | None:
        return _DATA_ID if self._data is not None and obj is self._data else None


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, data: Any) -> None:
        super().__init__(file)
        self._data = data

    def persistent_load(self, pid: str) -> Any:
        if pid != _DATA_ID:
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        return self._data


def save_checkpoint(path: Path, state: dict[str, Any], data: Any = None) -> None:
    """Write `state` atomically to `path` (temp file + rename); `data` is left out."""
    buffer = io.BytesIO()
    _Pickler(buffer, data).dump({"format_version": FORMAT_VERSION, **state})
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(buffer.getbuffer())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path, data: Any = None) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint`, re-attaching `data`."""
    with open(path, "rb") as f:
        state = _Unpickler(f, data).load()
    version = state.pop("format_version", None)
    if version != FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format {version!r}, this cosim reads {FORMAT_VERSION}")
    return state
