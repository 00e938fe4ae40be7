"""How tasks and results travel between this process and pool workers.

- ``dumps``: plain pickle bytes (``pickle.loads`` reads them), tensors that own their
  storage as numpy arrays (``_TensorPickler``: one memory copy each way instead of torch's
  ``torch.save`` per storage).
- ``pack`` / ``unpack``: the same pickle with every array's memory out of band, written to
  an anonymous in-memory file (``os.memfd_create``) whose descriptor travels with the
  small rest (``multiprocessing``'s fd passing). The data is copied once into the file and
  once out of it, instead of through pickle bytes, a pipe and the pool's own pickler
  (several copies of a round's 100+ MB of PFL-TPS Jacobians). Where there are no memory
  files or no fd passing (not Linux), ``pack`` returns ``dumps`` bytes, and ``unpack``
  reads both. Nothing is left behind if a process dies: the file lives as long as a
  descriptor of it.
"""

from __future__ import annotations

import io
import os
import pickle
from multiprocessing import reduction
from typing import Any

import torch

__all__ = ["dumps", "pack", "unpack"]

#: tensor dtypes that travel as numpy arrays (the others through torch's own pickling).
_NUMPY_DTYPES = frozenset({torch.float16, torch.float32, torch.float64, torch.complex64, torch.complex128,
                           torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8, torch.bool})


def _owns_storage(t: torch.Tensor) -> bool:
    """A plain CPU tensor, no autograd, exactly covering its storage (not a view of more) in
    C or Fortran order (e.g. a transposed matrix: numpy pickles both without a copy)."""
    return (type(t) is torch.Tensor and t.device.type == "cpu" and t.layout == torch.strided
            and not t.requires_grad and t.dtype in _NUMPY_DTYPES and not t.is_conj() and not t.is_neg()
            and t.storage_offset() == 0 and t.untyped_storage().nbytes() == t.numel() * t.element_size()
            and (t.is_contiguous() or t.permute(*reversed(range(t.dim()))).is_contiguous()))


def _tensor_from_array(array: Any) -> torch.Tensor:
    """A tensor pickled by ``dumps`` (it owns the array's memory, writable)."""
    return torch.from_numpy(array if array.flags.writeable else array.copy())


class _TensorPickler(pickle.Pickler):
    """Pickles a tensor that owns its whole storage as its numpy array: one memory copy
    each way. torch's own tensor pickling serializes every storage with ``torch.save``
    and reads it back the same way, several times slower on the MB-sized tensors of a
    round's tasks (PFL-TPS sends a 2 MB Jacobian per device). Other tensors (views,
    parameters, autograd, other dtypes) are pickled by torch as before."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, torch.Tensor) and _owns_storage(obj):
            return _tensor_from_array, (obj.numpy(),)
        return NotImplemented


def dumps(obj: Any) -> bytes:
    """``obj`` as plain pickle bytes (how tasks and results travel to and from the pool);
    ``pickle.loads`` reads them. Tensors that own their storage travel as numpy arrays
    (``_TensorPickler``): same values, dtype and shape, each its own writable memory (two
    such tensors sharing one storage would arrive as two copies; the tasks and results of
    local updates hold none)."""
    # Plain pickle (tensor data copied into the bytes): the pool's own pickler would move
    # every tensor into a shared-memory segment, which costs more than the copy for the
    # few-hundred-kB states and payloads of a task.
    buf = io.BytesIO()
    _TensorPickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buf.getvalue()


#: whether ``pack`` can use an in-memory file (Linux) and pass its descriptor.
MEMFD = hasattr(os, "memfd_create") and bool(getattr(reduction, "HAVE_SEND_HANDLE", False))


def pack(obj: Any) -> Any:
    """``obj`` ready to travel to another process of this machine: ``(head, sizes, fd)`` with
    the arrays' memory in an in-memory file (see the module docstring), or ``dumps(obj)``
    where that is not available. Read it back with ``unpack``, once."""
    if not MEMFD:
        return dumps(obj)
    buffers: list[pickle.PickleBuffer] = []
    head = io.BytesIO()
    _TensorPickler(head, protocol=5, buffer_callback=buffers.append).dump(obj)
    views = [b.raw() for b in buffers]
    fd = os.memfd_create("cosim-pack", os.MFD_CLOEXEC)
    try:
        with open(fd, "wb", closefd=False, buffering=0) as f:
            for view in views:
                _write_all(f, view)
        shared = reduction.DupFd(fd)  # a duplicate travels; ours can go
    finally:
        os.close(fd)
    return head.getvalue(), [v.nbytes for v in views], shared


def _write_all(f: Any, view: memoryview) -> None:
    done = 0
    while done < view.nbytes:
        done += f.write(view[done:])


def unpack(packed: Any) -> Any:
    """The object ``pack`` (or ``dumps``) made; each array in memory of its own."""
    if isinstance(packed, bytes):
        return pickle.loads(packed)
    head, sizes, shared = packed
    buffers = [bytearray(n) for n in sizes]
    fd = shared.detach()
    try:  # explicit offsets: every duplicate of the file shares one file position
        offset = 0
        for buf in buffers:
            view, done = memoryview(buf), 0
            while done < len(buf):
                n = os.preadv(fd, [view[done:]], offset + done)
                if not n:
                    raise EOFError(f"packed data ended after {offset + done} of {sum(sizes)} bytes")
                done += n
            offset += len(buf)
    finally:
        os.close(fd)
    return pickle.loads(head, buffers=buffers)
