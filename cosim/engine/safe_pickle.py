"""A pickle dialect for checkpoints that cannot run code when it is read.

A plain ``pickle.load`` calls whatever callable the file names (``os.system``,
``builtins.eval``, ``torch.storage._load_from_bytes`` -- which is a full
``torch.load(weights_only=False)``), so a crafted checkpoint runs any command. Here the
writer (:class:`SafePickler`) turns every object into calls of a handful of
reconstructors, and the reader (:class:`SafeUnpickler`) resolves *only* those globals
(``find_class``); anything else fails with one line naming the global.

The invariant that makes this safe: every callable a checkpoint can reach is harmless
whatever arguments it gets (the arguments can only be built from the same callables,
plain Python values and the federated data set re-attached by id). The entries, and why
each is harmless:

- ``cosim.engine.safe_pickle._new_object(name)``: ``cls.__new__(cls)`` for a class in the
  allow-list (:func:`allowed_classes`: the project's own state classes listed in
  :data:`STATE_CLASSES`, the classes registered in the algorithm / selection / mobility /
  path-loss / model registries, and those added with :func:`allow_class`). It never runs
  ``__init__`` with file-chosen arguments; the object's attributes are then filled in by
  pickle's BUILD step (``__setstate__`` of these classes only copies a dict, and the
  default sets attributes). Classes are never handed out as objects, so a file cannot
  call a constructor.
- ``_array(dtype, shape, order, data)`` / ``_scalar(dtype, data)``: a numpy array / scalar
  from raw bytes, for dtypes without Python objects (``numpy.ndarray(..., buffer=...)``
  itself would build an *object* array out of raw pointers, so numpy's own
  ``_reconstruct``/``ndarray``/``dtype`` globals are not allowed).
  ``_object_array(shape, items)`` builds an object array from already-unpickled items.
- ``_tensor(dtype, shape, perm, data, requires_grad, parameter)``: a CPU tensor (or
  ``nn.Parameter``) of an allow-listed dtype from raw bytes; no hooks, no storages.
- ``_partial(name, args, keywords)``: ``functools.partial`` of a function named in
  :data:`PARTIAL_FUNCTIONS` (pure arithmetic helpers), never of an arbitrary callable.
- ``numpy.random._pickle.__generator_ctor`` / ``__bit_generator_ctor``, the bit
  generator classes and ``SeedSequence`` / ``__pyx_unpickle_SeedSequence``: numpy's
  generator reconstructors; they only build generators of numpy's own bit generator
  types and set their state.
- ``collections.OrderedDict``, ``collections.defaultdict`` and the builtin types
  ``float``, ``int``, ``bool``, ``complex``, ``list``, ``dict``, ``set``, ``frozenset``,
  ``tuple``: containers and the default factories of ``defaultdict``s; called with any
  of the objects above they only build containers.

Deliberately absent: ``builtins.eval``/``exec``/``getattr``/``__import__``, ``os``,
``posix``, ``subprocess``, ``functools.partial`` itself, ``copyreg``, ``torch._utils``
and ``torch.storage`` rebuilders, every class's constructor, numpy's array
reconstructors. A crafted file can still describe *wrong data* (and make a resumed run
fail or compute nonsense), as a crafted scenario can; it cannot make cosim call
anything else. The writer checks the same allow-list, so a checkpoint it writes is one
the reader accepts (a new state class fails at the first checkpoint, naming the class
and :func:`allow_class`).
"""

from __future__ import annotations

import copyreg
import functools
import importlib
import inspect
import io
import pickle
from typing import Any

import numpy as np

#: The project's own classes a checkpoint may hold (``module:qualname``), besides the
#: registered algorithms, selection policies, mobility and path-loss models and models.
STATE_CLASSES: tuple[str, ...] = (
    "cosim.engine.availability:Availability",
    "cosim.engine.dvfs_budget:UplinkRateAverage",
    "cosim.engine.fleet:Fleet",
    "cosim.engine.flows:Flow",
    "cosim.engine.learning_side:RoundWork",
    "cosim.engine.links:LinkBudget",
    "cosim.engine.semi_sync:SemiSyncServer",
    "cosim.engine.server_modes:AsyncServer",
    "cosim.engine.server_modes:Participation",
    "cosim.engine.server_modes:_RoundStats",
    "cosim.engine.simulation:_RoundState",
    "cosim.engine.world:World",
    "cosim.trace:TraceRecorder",
    "cosim.trace:_FreeTable",
    "learning.algorithms.base:EvalResult",
    "learning.algorithms.base:LocalResult",
    "learning.algorithms.ditto:DittoClient",
    "learning.algorithms.fedavg:FedAvgClient",
    "learning.algorithms.fedavg_ft:FedAvgFTClient",
    "learning.algorithms.fedavg_topk:TopKClient",
    "learning.algorithms.fedper:FedPerClient",
    "learning.algorithms.fedprox:FedProxClient",
    "learning.algorithms.fedrep:FedRepClient",
    "learning.algorithms.fedtp:FedTPClient",
    "learning.algorithms.local:LocalClient",
    "learning.algorithms.pfedhn:HyperServer",
    "learning.algorithms.pfedhn:PFedHNClient",
    "learning.algorithms.pfedhn_pc:PFedHNPCClient",
    "learning.algorithms.pfl_tps.client:PFLTPSClient",
    "learning.algorithms.pfl_tps.client:PFLTPSConfig",
    "learning.algorithms.pfl_tps.client:PFLTPSNet",
    "learning.algorithms.pfl_tps.hypernetwork:HyperNetwork",
    "learning.algorithms.pfl_tps.hypernetwork:SalSpec",
    "learning.algorithms.pfl_tps.pruning:ThresholdMaskedLinear",
    "learning.algorithms.training:TrainParams",
    "learning.models.vit:Block",
    "learning.models.vit:FeedForward",
    "learning.models.vit:SelfAttention",
    "learning.optim:Optimizer",
    "learning.payload:Payload",
    "radio.abstraction:LinkAbstraction",
    "radio.channel:BlockFading",
    "radio.channel:GudmundsonShadowing",
    # third-party building blocks of the state above
    "networkx.classes.graph:Graph",
    "networkx.classes.reportviews:NodeView",
    "networkx.classes.reportviews:EdgeView",
    "torch.nn.modules.activation:GELU",
    "torch.nn.modules.activation:ReLU",
    "torch.nn.modules.container:ModuleList",
    "torch.nn.modules.container:Sequential",
    "torch.nn.modules.dropout:Dropout",
    "torch.nn.modules.linear:Identity",
    "torch.nn.modules.linear:Linear",
    "torch.nn.modules.normalization:LayerNorm",
)
#: Registries whose classes are state classes too: (module, attribute).
_REGISTRIES = (
    ("learning.algorithms", "ALGORITHMS"),
    ("cosim.engine.policies", "SELECTION_POLICIES"),
    ("radio.mobility", "MOBILITY"),
    ("radio.pathloss", "MODELS"),
    ("learning.models", "MODELS"),
)
#: Functions a checkpointed ``functools.partial`` may wrap (pure arithmetic).
PARTIAL_FUNCTIONS: tuple[str, ...] = ("learning.algorithms.pfl_tps.client:_net_flops_per_sample",)
_TORCH_DTYPES = ("float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool",
                 "complex64", "complex128")
_BUILTINS = ("float", "int", "bool", "complex", "list", "dict", "set", "frozenset", "tuple")
_NUMPY_GLOBALS = (
    ("numpy.random._pickle", "__generator_ctor"),
    ("numpy.random._pickle", "__bit_generator_ctor"),
    ("numpy.random._pcg64", "PCG64"),
    ("numpy.random._pcg64", "PCG64DXSM"),
    ("numpy.random._mt19937", "MT19937"),
    ("numpy.random._philox", "Philox"),
    ("numpy.random._sfc64", "SFC64"),
    ("numpy.random.bit_generator", "SeedSequence"),
    ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
)
_RECONSTRUCTORS = ("_new_object", "_array", "_scalar", "_object_array", "_tensor", "_partial")

_extra_classes: dict[str, type] = {}


class CheckpointSafetyError(pickle.UnpicklingError):
    """A checkpoint names a global outside the allow-list (or holds an unsupported value)."""


def _name(obj: Any) -> str:
    return f"{obj.__module__}:{obj.__qualname__}"


def allow_class(cls: type) -> type:
    """Let checkpoints hold instances of ``cls`` (a plugin's state class); returns ``cls``.

    Only do this for plain data classes: the reader creates them with ``cls.__new__`` and
    sets their attributes (or calls their ``__setstate__``) from the file.
    """
    if not isinstance(cls, type):
        raise TypeError(f"allow_class: expected a class, got {cls!r}")
    _extra_classes[_name(cls)] = cls
    return cls


def _resolve(path: str) -> Any:
    module, _, qualname = path.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def allowed_classes() -> dict[str, type]:
    """``module:qualname`` -> class of every class a checkpoint may instantiate."""
    classes: dict[str, type] = {}
    for path in STATE_CLASSES:
        try:
            cls = _resolve(path)
        except (ImportError, AttributeError):  # an optional layer that is not installed
            continue
        classes[_name(cls)] = cls
    for module, attribute in _REGISTRIES:
        try:
            registry = getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError):
            continue
        for cls in registry.values():
            if isinstance(cls, type):
                classes[_name(cls)] = cls
    classes.update(_extra_classes)
    return classes


@functools.lru_cache(maxsize=None)
def _partial_functions() -> dict[str, Any]:
    return {path: _resolve(path) for path in PARTIAL_FUNCTIONS}


# ----------------------------------------------------------------------------- reconstructors
_loading_classes: dict[str, type] | None = None  # allowed_classes() while SafeUnpickler.load runs


def _new_object(name: str) -> Any:
    classes = _loading_classes if _loading_classes is not None else allowed_classes()
    cls = classes.get(name) if isinstance(name, str) else None
    if cls is None:
        raise CheckpointSafetyError(f"class {name} is not allowed in a checkpoint")
    return cls.__new__(cls)


def _plain_dtype(text: str) -> np.dtype:
    dtype = np.dtype(str(text))
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise CheckpointSafetyError(f"array dtype {text!r} is not allowed in a checkpoint")
    return dtype


def _array(dtype: str, shape: tuple, order: str, data: bytes) -> np.ndarray:
    if order not in ("C", "F"):
        raise CheckpointSafetyError(f"array order {order!r} is not allowed in a checkpoint")
    flat = np.frombuffer(bytes(data), dtype=_plain_dtype(dtype))
    return flat.reshape(tuple(int(n) for n in shape), order=order).copy(order=order)


def _scalar(dtype: str, data: bytes) -> np.generic:
    return np.frombuffer(bytes(data), dtype=_plain_dtype(dtype))[0].copy()


def _object_array(shape: tuple, items: list) -> np.ndarray:
    array = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        array[i] = item
    return array.reshape(tuple(int(n) for n in shape))


def _tensor(dtype: str, shape: tuple, perm: tuple, data: bytes, requires_grad: bool, parameter: bool):
    import torch

    if dtype not in _TORCH_DTYPES:
        raise CheckpointSafetyError(f"tensor dtype {dtype!r} is not allowed in a checkpoint")
    shape, perm = tuple(int(n) for n in shape), tuple(int(p) for p in perm)
    if sorted(perm) != list(range(len(shape))):
        raise CheckpointSafetyError(f"tensor permutation {perm!r} does not match shape {shape!r}")
    kind = getattr(torch, dtype)
    raw = bytearray(data)
    flat = torch.frombuffer(raw, dtype=kind) if raw else torch.empty(0, dtype=kind)
    stored = flat.reshape([shape[p] for p in perm]).clone()
    inverse = [perm.index(d) for d in range(len(shape))]
    tensor = stored.permute(inverse) if perm else stored
    if parameter:
        return torch.nn.Parameter(tensor, requires_grad=bool(requires_grad))
    return tensor.requires_grad_(bool(requires_grad)) if requires_grad else tensor


def _partial(name: str, args: tuple, keywords: dict) -> functools.partial:
    func = _partial_functions().get(name)
    if func is None:
        raise CheckpointSafetyError(f"function {name} is not allowed in a checkpoint")
    return functools.partial(func, *args, **dict(keywords))


@functools.lru_cache(maxsize=None)
def _allowed_globals() -> frozenset[tuple[str, str]]:
    entries = {(__name__, name) for name in _RECONSTRUCTORS}
    entries |= {("collections", "OrderedDict"), ("collections", "defaultdict")}
    entries |= {("builtins", name) for name in _BUILTINS}
    entries |= set(_NUMPY_GLOBALS)
    return frozenset(entries)


# ----------------------------------------------------------------------------- writer
def _tensor_reduction(tensor) -> tuple:
    import torch

    parameter = type(tensor) is torch.nn.Parameter
    if type(tensor) not in (torch.Tensor, torch.nn.Parameter) or tensor.layout != torch.strided:
        raise TypeError(f"cannot checkpoint a {type(tensor).__name__} with layout {tensor.layout}")
    if tensor.__dict__:
        raise TypeError(f"cannot checkpoint a tensor with Python attributes {sorted(tensor.__dict__)}")
    dtype = str(tensor.dtype).removeprefix("torch.")
    if dtype not in _TORCH_DTYPES:
        raise TypeError(f"cannot checkpoint a tensor of dtype {tensor.dtype}")
    data = tensor.detach().cpu()
    perm = tuple(range(data.dim()))
    if not data.is_contiguous():  # keep a transposed/permuted dense layout as it is
        order = tuple(sorted(perm, key=lambda d: (-data.stride(d), -data.shape[d])))
        if data.permute(order).is_contiguous():
            perm = order
    stored = data.permute(perm).contiguous() if perm else data.contiguous()
    raw = stored.reshape(-1).view(torch.uint8).numpy().tobytes() if stored.numel() else b""
    return _tensor, (dtype, tuple(data.shape), perm, raw, bool(tensor.requires_grad), parameter)


def _array_reduction(array: np.ndarray) -> tuple:
    if array.dtype.hasobject:
        if array.dtype != np.dtype(object):
            raise TypeError(f"cannot checkpoint an array of dtype {array.dtype}")
        return _object_array, (array.shape, list(array.reshape(-1)))
    _plain_dtype(array.dtype.str)
    order = "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"
    return _array, (array.dtype.str, array.shape, order, array.tobytes(order=order))


class SafePickler(pickle.Pickler):
    """Writes objects as calls of the reconstructors above; refuses anything the reader would.

    ``data`` (the federated data set) is written as a persistent id and re-attached on load.
    """

    def __init__(self, file, data: Any = None, data_id: str = "federated-data") -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._data, self._data_id = data, data_id
        self._classes = allowed_classes()
        self._torch = None

    def persistent_id(self, obj: Any) -> str | None:
        return self._data_id if self._data is not None and obj is self._data else None

    def reducer_override(self, obj: Any) -> Any:  # noqa: C901 - one branch per kind of value
        kind = type(obj)
        if kind is np.ndarray:
            return _array_reduction(obj)
        if isinstance(obj, np.generic):
            if obj.dtype.hasobject:
                raise TypeError(f"cannot checkpoint a numpy scalar of dtype {obj.dtype}")
            return _scalar, (obj.dtype.str, obj.tobytes())
        if kind.__module__.startswith("torch"):
            import torch

            if isinstance(obj, torch.Tensor):
                return _tensor_reduction(obj)
        if kind is functools.partial:
            name = _name(obj.func) if hasattr(obj.func, "__qualname__") else repr(obj.func)
            if name not in _partial_functions():
                raise TypeError(f"cannot checkpoint functools.partial of {name}")
            return _partial, (name, obj.args, dict(obj.keywords))
        if isinstance(obj, type) or inspect.isroutine(obj) or kind.__name__ == "cython_function_or_method":
            module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
            if (module, qualname) not in _allowed_globals():
                raise TypeError(f"cannot checkpoint a reference to {module}.{qualname}: not in the allow-list of "
                                "cosim.engine.safe_pickle")
            return NotImplemented
        name = f"{kind.__module__}:{kind.__qualname__}"
        if name in self._classes:
            reduced = obj.__reduce_ex__(pickle.HIGHEST_PROTOCOL)
            if not (isinstance(reduced, tuple) and reduced[0] is copyreg.__newobj__ and reduced[1] == (kind,)
                    and all(item is None for item in reduced[3:])):
                raise TypeError(f"cannot checkpoint {name}: it has a custom __reduce__")
            return _new_object, (name,), reduced[2] if len(reduced) > 2 else None
        if kind.__module__ in ("builtins", "collections") or kind.__module__.startswith("numpy.random"):
            return NotImplemented  # containers and numpy generators: pickled natively, globals checked above
        raise TypeError(f"cannot checkpoint an object of class {name}: not in the allow-list "
                        "(cosim.engine.safe_pickle.STATE_CLASSES, or allow_class() for a plugin's class)")


class SafeUnpickler(pickle.Unpickler):
    """Reads what :class:`SafePickler` writes; resolves no global outside the allow-list."""

    def __init__(self, file, data: Any = None, data_id: str = "federated-data") -> None:
        super().__init__(file)
        self._data, self._data_id = data, data_id

    def load(self) -> Any:
        global _loading_classes
        _loading_classes = allowed_classes()
        try:
            return super().load()
        finally:
            _loading_classes = None

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _allowed_globals():
            raise CheckpointSafetyError(f"global {module}.{name} is not allowed in a checkpoint")
        return super().find_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        if pid != self._data_id:
            raise CheckpointSafetyError(f"unknown persistent id {pid!r}")
        return self._data


def dumps(obj: Any, data: Any = None) -> bytes:
    """``obj`` as safe-pickle bytes (``data`` written by reference)."""
    buffer = io.BytesIO()
    SafePickler(buffer, data).dump(obj)
    return buffer.getvalue()


def loads(payload: bytes, data: Any = None) -> Any:
    """The object :func:`dumps` wrote (``data`` re-attached)."""
    return SafeUnpickler(io.BytesIO(payload), data).load()

