"""IDX file parsing (the MNIST / Fashion-MNIST container format) with numpy only.

Format (http://yann.lecun.com/exdb/mnist/): a 4-byte magic number ``00 00 TT NN``
where ``TT`` is the element type code and ``NN`` the number of dimensions, then ``NN``
big-endian uint32 dimension sizes, then the elements in C order, big-endian.
Files may be gzip-compressed; compression is detected from the gzip magic bytes,
not from the file name.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

__all__ = ["IDX_DTYPES", "IdxFormatError", "parse_idx", "read_idx", "read_maybe_gzip"]

#: IDX element type code -> big-endian numpy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"


class IdxFormatError(ValueError):
    """Raised when bytes are not a well-formed IDX file."""


def read_maybe_gzip(path: str | Path) -> bytes:
    """Read a file, transparently decompressing it when it starts with the gzip magic.

    Args:
        path: file to read.

    Returns:
        The (decompressed) file contents.
    """
    raw = Path(path).read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise IdxFormatError(f"{path}: corrupt gzip stream ({exc})") from exc
    return raw


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of an (uncompressed) IDX file.

    Args:
        data: full file contents.
        source: name used in error messages.

    Returns:
        Array of shape ``dims`` in native byte order (uint8 stays uint8).

    Raises:
        IdxFormatError: bad magic, unknown type code, or size mismatch.
    """
    if len(data) < 4:
        raise IdxFormatError(f"{source}: {len(data)} bytes is too short for an IDX header")
    if data[0] != 0 or data[1] != 0:
        raise IdxFormatError(
            f"{source}: bad IDX magic {data[:4].hex()} (first two bytes must be 0000)"
        )
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise IdxFormatError(f"{source}: unknown IDX type code 0x{code:02X} (known: {known})")
    if ndim == 0:
        raise IdxFormatError(f"{source}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IdxFormatError(
            f"{source}: {len(data)} bytes is too short for a {ndim}-D IDX header ({header} bytes)"
        )
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise IdxFormatError(
            f"{source}: size {len(data)} bytes does not match header dims {dims} of "
            f"{dtype.name} (expected {expected} bytes)"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw).

    Args:
        path: the file.

    Returns:
        Array of shape ``dims`` declared by the header, e.g. (N, 28, 28) uint8 images
        or (N,) uint8 labels.
    """
    return parse_idx(read_maybe_gzip(path), source=str(path))
