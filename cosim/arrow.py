"""Arrow arrays built from their buffers, so that writing a trace never imports pandas.

``pyarrow.array`` first asks whether its input is a pandas object (``pandas_api.is_series``),
for lists and numpy arrays alike, and that question imports pandas: about 0.2 s at the end
of every run (pyarrow 26), for nothing. ``arrow_array`` builds the array ``pyarrow.array``
would give (``Array.equals`` it; tested) from numpy buffers with ``Array.from_buffers``, for
the four column types a trace has: float64, int64, bool and string, ``None`` a null.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["arrow_array"]

_INT32_MAX = int(np.iinfo(np.int32).max)


def arrow_array(values: Sequence[Any] | np.ndarray, kind: "pa.DataType") -> "pa.Array":
    """``values`` (a list or 1-D array; ``None`` is a null) as an Arrow array of ``kind``:
    ``pa.float64()``, ``pa.int64()``, ``pa.bool_()`` or ``pa.string()``."""
    import pyarrow as pa

    n = len(values)
    typed = isinstance(values, np.ndarray) and values.dtype != object
    valid = None if typed else np.fromiter((v is not None for v in values), dtype=bool, count=n)
    if valid is not None and valid.all():
        valid = None
    if kind == pa.string():
        encoded = [b"" if v is None else v.encode("utf-8") for v in values]
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=n), out=offsets[1:])
        if offsets[-1] > _INT32_MAX:
            raise ValueError(f"string column of {int(offsets[-1])} bytes exceeds Arrow string's 2 GiB")
        buffers = [offsets.astype(np.int32), np.frombuffer(b"".join(encoded), dtype=np.uint8)]
    elif kind in (pa.float64(), pa.int64(), pa.bool_()):
        dtype = {pa.float64(): np.float64, pa.int64(): np.int64, pa.bool_(): np.bool_}[kind]
        if valid is None and (typed or n == 0):
            data = np.asarray(values)
            if data.dtype != dtype:
                cast = data.astype(dtype)
                if not np.array_equal(cast, data):  # e.g. a uint64 beyond int64: pyarrow refuses it too
                    raise ValueError(f"arrow_array: {data.dtype} values do not fit {kind}")
                data = cast
        else:
            data = np.array([False if v is None else v for v in values], dtype=dtype)
        buffers = [np.packbits(data, bitorder="little") if kind == pa.bool_() else np.ascontiguousarray(data)]
    else:
        raise TypeError(f"arrow_array: unsupported type {kind} (float64, int64, bool or string)")
    validity = None if valid is None else pa.py_buffer(np.packbits(valid, bitorder="little"))
    null_count = 0 if valid is None else int(n - np.count_nonzero(valid))
    return pa.Array.from_buffers(kind, n, [validity, *(pa.py_buffer(b) for b in buffers)], null_count=null_count)
