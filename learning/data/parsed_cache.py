"""On-disk cache of a dataset's parsed arrays, shared by the file-based loaders.

Decompressing and checking a dataset's source files costs about a second per run, so the
parsed arrays are kept in one file per source folder under ``<cache root>/parsed/``. The
file holds one line of JSON (format version, the *key* identifying the sources it was
built from, and per array its role, dtype, shape and CRC-32), then the arrays' raw bytes
in that order, nothing after them. A cache is used only while its key matches (the
loaders put each source file's resolved path, size, modification time and expected
digest in it) and every array's CRC-32 matches; it is written atomically (temp file +
rename), and a cache that cannot be written (read-only home) is skipped silently.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

__all__ = ["PARSED_VERSION", "file_key", "parsed_path", "read_parsed", "write_parsed"]

#: Format version; a cache with another version is ignored (and rewritten).
PARSED_VERSION = 2


def parsed_path(cache_root: Path, stem: str, folder: Path) -> Path:
    """``<cache_root>/parsed/<stem>-<hash of folder's resolved path>.bin``."""
    digest = hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:16]
    return cache_root / "parsed" / f"{stem}-{digest}.bin"


def file_key(files: Iterable[tuple[Path, str]]) -> str:
    """Identity of source files: per (path, expected digest) its resolved path, size,
    modification time [ns] and the digest, one line each."""
    parts = []
    for path, digest in files:
        st = path.stat()
        parts.append(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{digest}")
    return "\n".join(parts)


def read_parsed(path: Path, key: str, roles: Iterable[str]) -> dict[str, np.ndarray] | None:
    """The cached arrays if ``path`` holds exactly ``roles`` for ``key`` with matching
    CRC-32s, else None (any read or format problem also gives None)."""
    try:
        with open(path, "rb") as handle:
            meta = json.loads(handle.readline())
            if meta.get("version") != PARSED_VERSION or meta.get("key") != key:
                return None
            arrays: dict[str, np.ndarray] = {}
            for spec in meta["arrays"]:
                dtype, shape = np.dtype(spec["dtype"]), tuple(int(n) for n in spec["shape"])
                size = int(np.prod(shape)) * dtype.itemsize
                raw = handle.read(size)
                if len(raw) != size or zlib.crc32(raw) != spec["crc32"]:
                    return None
                arrays[spec["role"]] = np.frombuffer(raw, dtype=dtype).reshape(shape)
            if handle.read(1):
                return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return arrays if set(arrays) == set(roles) else None


def write_parsed(path: Path, key: str, arrays: dict[str, np.ndarray]) -> None:
    """Write the arrays and their CRC-32s atomically; errors are ignored (cache only)."""
    parts = {role: np.ascontiguousarray(a) for role, a in arrays.items()}
    meta = {"version": PARSED_VERSION, "key": key,
            "arrays": [{"role": role, "dtype": a.dtype.str, "shape": list(a.shape), "crc32": zlib.crc32(a)}
                       for role, a in parts.items()]}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            handle.write(json.dumps(meta).encode() + b"\n")
            for a in parts.values():
                handle.write(a.tobytes())
        os.replace(tmp, path)
    except OSError:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
