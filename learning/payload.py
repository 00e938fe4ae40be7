"""Payloads: named tensors plus per-round config, with an exact wire size in bytes.

The radio layer only ever sees ``Payload.wire_bytes``; it is computed arithmetically
and always equals ``len(payload.encode())``.

Binary format (little endian)::

    header   : magic b"CSP1" | encoding u8 | n_config u16 | n_tensors u32          (11 B)
    config   : per entry  name_len u16 | name utf-8 | tag u8 | value
               tag b"i": int64 (8 B) | b"f": float64 (8 B) | b"b": bool u8 (1 B)
               tag b"s": len u32 + utf-8
    tensors  : per entry  name_len u16 | name utf-8 | dtype u8 | ndim u8 | shape u32 x ndim | body

Floating-point tensors are encoded as the payload's encoding says (n = numel, k = nonzeros):

    fp32           : n x float32                                  4n B
    fp16           : n x float16                                  2n B
    bitmask_sparse : ceil(n/8) B mask (LSB-first) | k u32 | k x float32    ceil(n/8) + 4 + 4k B
    index_sparse   : k u32 | k x u32 flat indices | k x float32   4 + 8k B

Sparse values are kept in float32 (full precision: the sparsity is the saving). Non
floating tensors (integers, bool) are sent raw in their own dtype whatever the encoding.
On decode, tensors are cast back to the dtype recorded in their entry.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Union

import numpy as np
import torch

__all__ = ["ENCODINGS", "DENSE_ENCODINGS", "Payload", "ConfigValue", "as_received", "dense_payload"]

ENCODINGS: tuple[str, ...] = ("fp32", "fp16", "bitmask_sparse", "index_sparse")
#: Dense encodings an algorithm's ``downlink_encoding`` / ``uplink_encoding`` may choose.
DENSE_ENCODINGS: tuple[str, ...] = ("fp32", "fp16")

ConfigValue = Union[int, float, str, bool]

_MAGIC = b"CSP1"
_HEADER = struct.Struct("<4sBHI")
_DTYPES: tuple[torch.dtype, ...] = (
    torch.float32,
    torch.float16,
    torch.bfloat16,
    torch.float64,
    torch.int64,
    torch.int32,
    torch.int16,
    torch.int8,
    torch.uint8,
    torch.bool,
)
_DTYPE_CODE = {dt: i for i, dt in enumerate(_DTYPES)}


def _check_encoding(encoding: str) -> None:
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown payload encoding {encoding!r}; allowed: {list(ENCODINGS)}")


def _config_entry_bytes(name: str, value: ConfigValue) -> int:
    size = 2 + len(name.encode()) + 1
    if isinstance(value, bool):
        return size + 1
    if isinstance(value, (int, float)):
        return size + 8
    if isinstance(value, str):
        return size + 4 + len(value.encode())
    raise TypeError(f"config value {name}={value!r} must be int, float, str or bool")


def _body_bytes(t: torch.Tensor, encoding: str) -> int:
    n = t.numel()
    if not t.is_floating_point():
        return n * t.element_size()
    if encoding == "fp32":
        return 4 * n
    if encoding == "fp16":
        return 2 * n
    k = int(torch.count_nonzero(t))
    if encoding == "bitmask_sparse":
        return (n + 7) // 8 + 4 + 4 * k
    return 4 + 8 * k  # index_sparse


@dataclass
class Payload:
    """Named tensors sent over the air, plus small per-round settings.

    Attributes:
        tensors: name -> tensor (any shape; moved to CPU when encoded).
        encoding: one of ``ENCODINGS``; how floating-point tensors go on the wire.
        config: per-round settings (round number, ...); counted in ``wire_bytes``.
    """

    tensors: dict[str, torch.Tensor]
    encoding: str = "fp32"
    config: dict[str, ConfigValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_encoding(self.encoding)

    @classmethod
    def empty(cls, encoding: str = "fp32") -> "Payload":
        """A payload with no tensors and no config (header only)."""
        return cls({}, encoding)

    @property
    def num_elements(self) -> int:
        """Total number of tensor elements."""
        return sum(t.numel() for t in self.tensors.values())

    @property
    def wire_bytes(self) -> int:
        """Exact size of ``encode()`` [bytes], computed without serialising."""
        _check_encoding(self.encoding)
        size = _HEADER.size
        size += sum(_config_entry_bytes(k, v) for k, v in self.config.items())
        for name, t in self.tensors.items():
            size += 2 + len(name.encode()) + 2 + 4 * t.dim() + _body_bytes(t, self.encoding)
        return size

    def encode(self) -> bytes:
        """Serialise to the compact binary format described in the module docstring."""
        _check_encoding(self.encoding)
        out = [_HEADER.pack(_MAGIC, ENCODINGS.index(self.encoding), len(self.config), len(self.tensors))]
        for name, value in self.config.items():
            _config_entry_bytes(name, value)  # type check
            nb = name.encode()
            out.append(struct.pack("<H", len(nb)) + nb)
            if isinstance(value, bool):
                out.append(b"b" + struct.pack("<B", int(value)))
            elif isinstance(value, int):
                out.append(b"i" + struct.pack("<q", value))
            elif isinstance(value, float):
                out.append(b"f" + struct.pack("<d", value))
            else:
                vb = value.encode()
                out.append(b"s" + struct.pack("<I", len(vb)) + vb)
        for name, t in self.tensors.items():
            if t.dtype not in _DTYPE_CODE:
                raise TypeError(f"tensor {name!r} has unsupported dtype {t.dtype}")
            nb = name.encode()
            out.append(struct.pack("<H", len(nb)) + nb)
            out.append(struct.pack(f"<BB{t.dim()}I", _DTYPE_CODE[t.dtype], t.dim(), *t.shape))
            out.append(self._encode_body(t.detach().cpu()))
        return b"".join(out)

    def _encode_body(self, t: torch.Tensor) -> bytes:
        flat = t.reshape(-1)
        if not t.is_floating_point():
            return flat.contiguous().numpy().tobytes()
        if self.encoding == "fp32":
            return flat.to(torch.float32).numpy().astype("<f4", copy=False).tobytes()
        if self.encoding == "fp16":
            return flat.to(torch.float16).numpy().astype("<f2", copy=False).tobytes()
        nz = flat != 0
        values = flat[nz].to(torch.float32).numpy().astype("<f4", copy=False)
        count = struct.pack("<I", values.size)
        if self.encoding == "bitmask_sparse":
            mask = np.packbits(nz.numpy(), bitorder="little")
            return mask.tobytes() + count + values.tobytes()
        idx = torch.nonzero(nz).reshape(-1).numpy().astype("<u4")
        return count + idx.tobytes() + values.tobytes()

    @classmethod
    def decode(cls, data: bytes) -> "Payload":
        """Inverse of ``encode`` (fp16 is lossy; every other encoding round-trips exactly)."""
        magic, enc, n_config, n_tensors = _HEADER.unpack_from(data, 0)
        if magic != _MAGIC:
            raise ValueError(f"not a payload: magic {magic!r}")
        if enc >= len(ENCODINGS):
            raise ValueError(f"unknown encoding id {enc}")
        encoding = ENCODINGS[enc]
        pos = _HEADER.size
        config: dict[str, ConfigValue] = {}
        for _ in range(n_config):
            (ln,) = struct.unpack_from("<H", data, pos)
            name = data[pos + 2 : pos + 2 + ln].decode()
            pos += 2 + ln
            tag = data[pos : pos + 1]
            pos += 1
            if tag == b"b":
                config[name] = bool(data[pos])
                pos += 1
            elif tag == b"i":
                config[name] = struct.unpack_from("<q", data, pos)[0]
                pos += 8
            elif tag == b"f":
                config[name] = struct.unpack_from("<d", data, pos)[0]
                pos += 8
            elif tag == b"s":
                (lv,) = struct.unpack_from("<I", data, pos)
                config[name] = data[pos + 4 : pos + 4 + lv].decode()
                pos += 4 + lv
            else:
                raise ValueError(f"bad config tag {tag!r} for {name!r}")
        tensors: dict[str, torch.Tensor] = {}
        for _ in range(n_tensors):
            (ln,) = struct.unpack_from("<H", data, pos)
            name = data[pos + 2 : pos + 2 + ln].decode()
            pos += 2 + ln
            code, ndim = struct.unpack_from("<BB", data, pos)
            shape = struct.unpack_from(f"<{ndim}I", data, pos + 2)
            pos += 2 + 4 * ndim
            dtype = _DTYPES[code]
            tensors[name], pos = _decode_body(data, pos, dtype, tuple(shape), encoding)
        if pos != len(data):
            raise ValueError(f"trailing {len(data) - pos} bytes after payload")
        return cls(tensors, encoding, config)


def _decode_body(
    data: bytes, pos: int, dtype: torch.dtype, shape: tuple[int, ...], encoding: str
) -> tuple[torch.Tensor, int]:
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if not dtype.is_floating_point:
        np_dtype = np.uint8 if dtype == torch.bool else torch.empty(0, dtype=dtype).numpy().dtype
        size = n * np.dtype(np_dtype).itemsize
        arr = np.frombuffer(data, dtype=np_dtype, count=n, offset=pos).copy()
        return torch.from_numpy(arr).to(dtype).reshape(shape), pos + size
    if encoding in ("fp32", "fp16"):
        np_dtype = "<f4" if encoding == "fp32" else "<f2"
        arr = np.frombuffer(data, dtype=np_dtype, count=n, offset=pos).astype(np.float32)
        return torch.from_numpy(arr).to(dtype).reshape(shape), pos + n * np.dtype(np_dtype).itemsize
    flat = torch.zeros(n, dtype=torch.float32)
    if encoding == "bitmask_sparse":
        nbytes = (n + 7) // 8
        mask = np.unpackbits(np.frombuffer(data, np.uint8, nbytes, pos), count=n, bitorder="little")
        pos += nbytes
        (k,) = struct.unpack_from("<I", data, pos)
        values = np.frombuffer(data, "<f4", k, pos + 4).astype(np.float32)
        flat[torch.from_numpy(mask.astype(bool))] = torch.from_numpy(values)
        return flat.to(dtype).reshape(shape), pos + 4 + 4 * k
    (k,) = struct.unpack_from("<I", data, pos)
    idx = np.frombuffer(data, "<u4", k, pos + 4).astype(np.int64)
    values = np.frombuffer(data, "<f4", k, pos + 4 + 4 * k).astype(np.float32)
    flat[torch.from_numpy(idx)] = torch.from_numpy(values)
    return flat.to(dtype).reshape(shape), pos + 4 + 8 * k


def as_received(t: torch.Tensor, encoding: str) -> torch.Tensor:
    """The values a receiver decodes from ``t`` sent with ``encoding``: fp16 rounds a
    floating tensor to half precision (kept in its own dtype); anything else is a copy."""
    _check_encoding(encoding)
    if encoding == "fp16" and t.is_floating_point():
        return t.detach().to(torch.float16).to(t.dtype)
    return t.detach().clone()


def dense_payload(tensors: dict[str, torch.Tensor], encoding: str, config: dict[str, ConfigValue]) -> Payload:
    """A dense payload in ``encoding`` (one of ``DENSE_ENCODINGS``) carrying what the
    receiver decodes: with fp16 its floating tensors are rounded, so training and
    aggregation see the values that crossed the air. fp32 tensors are passed as given
    (not copied: callers hand over tensors they no longer mutate)."""
    if encoding not in DENSE_ENCODINGS:
        raise ValueError(f"dense payload encoding {encoding!r} not allowed; allowed: {list(DENSE_ENCODINGS)}")
    if encoding == "fp16":
        tensors = {k: as_received(v, encoding) for k, v in tensors.items()}
    return Payload(dict(tensors), encoding, dict(config))
