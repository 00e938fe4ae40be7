"""The algorithm contract: a server half (``Algorithm``) and a client half (``Client``).

They meet only through ``Payload``s (Flower style). The engine asks the algorithm for a
device's ``downlink`` payload and stored ``device_state``, hands (device, state,
payload, seed) to an executor that calls the pure ``Client.local_update`` anywhere (this
process or a worker), then ``commit``s each arrived ``LocalResult`` and ``aggregate``s
the uplinks. ``cost_model`` gives bytes and FLOPs without training (surrogate mode).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence

import torch
from torch import nn

from learning.algorithms.training import TrainParams, derive_seed, evaluate_accuracy
from learning.flops import vit_flops_per_sample
from learning.models import MODELS, build_model, resolve_model_config
from learning.payload import DENSE_ENCODINGS, Payload, dense_payload

if TYPE_CHECKING:  # pragma: no cover
    from learning.data import FederatedData

__all__ = [
    "LocalResult",
    "CostModel",
    "EvalResult",
    "Client",
    "Algorithm",
    "COMMON_PARAMS",
    "ENCODING_PARAMS",
    "mean_finite",
    "model_payload_bytes",
    "StaleUpdate",
    "STALE_RULES",
]

#: How ``Algorithm.apply_updates`` folds weighted updates into the server state.
STALE_RULES = ("mix", "delta")

#: How each algorithm's dense payloads go on the wire (``learning.payload.DENSE_ENCODINGS``),
#: settable for every algorithm so that a comparison can use one encoding for all.
#: Algorithms with a sparse uplink of their own (``fedavg_topk``) keep it.
ENCODING_PARAMS: dict[str, str] = {"downlink_encoding": "fp32", "uplink_encoding": "fp32"}

#: hyper-parameters shared by every algorithm, with their defaults (see ``TrainParams``).
COMMON_PARAMS: dict[str, Any] = {**asdict(TrainParams()), **ENCODING_PARAMS}


@dataclass
class LocalResult:
    """Outcome of one local update.

    Attributes:
        device: device index.
        state: the device's new state (picklable, only what the device keeps; may be None).
        uplink: payload sent to the server, or None for algorithms that do not communicate.
        flops: forward+backward FLOPs executed [FLOP] (analytic per-sample count x samples processed).
        samples: the device's number of training samples (the aggregation weight).
        metrics: e.g. ``train_loss``, ``train_accuracy``, ``samples_processed``.
    """

    device: int
    state: Any
    uplink: Payload | None
    flops: int
    samples: int
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class StaleUpdate:
    """One arrived update, computed from a server state that may have moved on since.

    Attributes:
        device: device index.
        uplink: what the device sent.
        sent: the downlink payload it trained from (the server state of ``version_sent``).
        samples: the device's training samples.
        staleness: server versions applied between sending and applying (τ >= 0).
        weight: w >= 0, chosen by the server mode (e.g. mixing·s(τ), or n_i·s(τ)/Σn).
    """

    device: int
    uplink: Payload
    sent: Payload | None
    samples: int
    staleness: int
    weight: float


@dataclass(frozen=True)
class CostModel:
    """Bytes and FLOPs of one update without training (the engine's surrogate mode).

    ``flops = flops_per_sample * samples * epochs`` for a device with ``samples`` examples.
    """

    downlink_bytes: int
    uplink_bytes: int
    flops_per_sample: int
    epochs: float


@dataclass
class EvalResult:
    """Evaluation of the current models.

    Attributes:
        per_device_accuracy: device -> accuracy of that device's model (personal, or the
            global one) on its own test split (NaN for a device without test samples).
        global_accuracy: the global model on ``fd.global_test()``; None without a global model.
        mean_accuracy: unweighted mean of the finite per-device accuracies.
        per_device_val_accuracy: device -> accuracy of the same model on its validation
            split (NaN without validation samples); for choosing hyper-parameters.
        val_accuracy: unweighted mean of the finite per-device validation accuracies
            (NaN when no device has a validation split).
    """

    per_device_accuracy: dict[int, float]
    global_accuracy: float | None
    mean_accuracy: float
    per_device_val_accuracy: dict[int, float] = field(default_factory=dict)
    val_accuracy: float = math.nan

    @classmethod
    def of_models(cls, data: Any, models: Callable[[int], nn.Module], devices: Sequence[int],
                  batch_size: int, global_accuracy: float | None = None) -> "EvalResult":
        """Evaluate ``models(d)`` on device ``d``'s test and validation splits for each device."""
        test: dict[int, float] = {}
        val: dict[int, float] = {}
        for d in devices:
            model = models(d)
            test[d] = evaluate_accuracy(model, *data.test(d), batch_size=batch_size)
            val[d] = evaluate_accuracy(model, *data.val(d), batch_size=batch_size) if hasattr(data, "val") \
                else math.nan
        return cls(test, global_accuracy, mean_finite(list(test.values())), val, mean_finite(list(val.values())))


def mean_finite(values: Sequence[float]) -> float:
    """Mean of the finite values (NaN when there are none)."""
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


class Client:
    """Client half: holds the federated data, model config and hyper-parameters.

    Picklable and sent once to every worker; the model is built lazily per process and
    reused across calls (it is dropped when pickling). ``local_update`` must be pure: its
    result depends only on its arguments and the constructor's inputs.
    """

    def __init__(self, data: "FederatedData", model_config: dict[str, Any], params: dict[str, Any]) -> None:
        self.data = data
        self.model_config = resolve_model_config(model_config)
        self.params = dict(params)
        self.train_params = TrainParams.from_params(self.params)
        self.input_shape = tuple(data.input_shape)
        self.num_classes = int(data.num_classes)
        self.flops_per_sample = vit_flops_per_sample(self.model_config, self.input_shape, self.num_classes)
        self._model: nn.Module | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_model"] = None
        return state

    def model(self) -> nn.Module:
        """This process's working model (built once, parameters overwritten by each update)."""
        if self._model is None:
            self._model = build_model(self.model_config, self.input_shape, self.num_classes, seed=0)
        return self._model

    def local_update(self, device: int, state: Any, payload: Payload | None, seed: int) -> LocalResult:
        """Run one local update of ``device``. PURE: same inputs, same result."""
        raise NotImplementedError

    def reply(self, tensors: dict[str, torch.Tensor], received: Payload | None) -> Payload:
        """The uplink carrying ``tensors`` in ``uplink_encoding``, tagged with the round of
        the ``received`` downlink (0 without one)."""
        round_idx = int(received.config.get("round", 0)) if received is not None else 0
        return dense_payload(tensors, self.params.get("uplink_encoding", "fp32"), {"round": round_idx})


class Algorithm(ABC):
    """Server half of a federated algorithm.

    Args:
        data: the federated data set.
        model_config: model config (``learning.models``).
        params: algorithm hyper-parameters; unknown keys raise ``ValueError``.
        seed: root seed; device ``d``'s initial state is drawn from ``derive_seed(seed, d)``.
    """

    name: ClassVar[str]
    communicates: ClassVar[bool]
    personalized: ClassVar[bool]
    #: whether ``apply_updates`` is implemented (the non-sync server modes need it).
    stale_updates: ClassVar[bool] = False
    #: algorithm-specific hyper-parameters and their defaults (added to ``COMMON_PARAMS``).
    extra_params: ClassVar[dict[str, Any]] = {}
    #: whether ``join_new_device`` can fit a device held out of training; else why not.
    holdout_supported: ClassVar[bool] = True
    holdout_unsupported: ClassVar[str] = ""

    def __init__(self, data: "FederatedData", model_config: dict[str, Any], params: dict[str, Any], seed: int) -> None:
        self.data = data
        self.model_config = resolve_model_config(model_config)
        self.params = self.resolve_params(params)
        self.train_params = TrainParams.from_params(self.params)
        self.seed = int(seed)
        self._states: dict[int, Any] = {}
        self._client: Client | None = None

    # ----------------------------------------------------------------- params
    @classmethod
    def default_params(cls) -> dict[str, Any]:
        """All hyper-parameters with their defaults."""
        return {**COMMON_PARAMS, **cls.extra_params}

    @classmethod
    def resolve_params(cls, params: dict[str, Any] | None) -> dict[str, Any]:
        """``params`` completed with defaults; unknown keys and values ``check_params``
        rejects raise ``ValueError``."""
        params = dict(params or {})
        defaults = cls.default_params()
        unknown = sorted(set(params) - set(defaults))
        if unknown:
            raise ValueError(
                f"unknown {cls.name} parameter {unknown[0]!r}; allowed keys: {sorted(defaults)}"
            )
        for key, value in params.items():
            default = defaults[key]
            if _is_number(default) and not _is_number(value):
                raise ValueError(f"{key}={value!r} is not a number ({cls.name}'s default: {default!r})")
        resolved = {**defaults, **params}
        TrainParams.from_params(resolved)  # validates the common ones
        for key in ENCODING_PARAMS:
            if resolved[key] not in DENSE_ENCODINGS:
                raise ValueError(f"{cls.name} parameter {key}={resolved[key]!r} not allowed; "
                                 f"allowed: {list(DENSE_ENCODINGS)}")
        cls.check_params(resolved)
        return resolved

    @classmethod
    def check_params(cls, resolved: dict[str, Any]) -> None:
        """Range checks of this algorithm's ``extra_params`` in ``resolved`` (override; raise
        ``ValueError`` naming the key)."""

    # ----------------------------------------------------------------- helpers
    def device_seed(self, device: int, stream: int = 0) -> int:
        """Seed of ``device``'s initial state; ``stream`` separates independent draws (0: device
        init, 1: server init)."""
        return derive_seed(self.seed, int(device), int(stream))

    def new_model(self, seed: int = 0) -> nn.Module:
        """A freshly initialised model drawn from ``seed``."""
        return build_model(self.model_config, tuple(self.data.input_shape), int(self.data.num_classes), seed=seed)

    @abstractmethod
    def make_client(self) -> Client:
        """Construct this algorithm's client half."""

    @abstractmethod
    def initial_state(self, device: int) -> Any:
        """A device's state before its first update (seeded from ``device_seed``)."""

    # ----------------------------------------------------------------- contract
    def client(self) -> Client:
        """The client half; the same object on every call (executors key their pools on it)."""
        if self._client is None:
            self._client = self.make_client()
        return self._client

    def device_state(self, device: int) -> Any:
        """The stored state of ``device``, created lazily on first use."""
        device = int(device)
        if device not in self._states:
            self._states[device] = self.initial_state(device)
        return self._states[device]

    def downlink(self, device: int, round_idx: int) -> Payload | None:
        """What the server sends ``device`` in round ``round_idx`` (None: nothing)."""
        return None

    def send(self, tensors: dict[str, torch.Tensor], round_idx: int) -> Payload:
        """A downlink carrying ``tensors`` in ``downlink_encoding`` for round ``round_idx``."""
        return dense_payload(tensors, self.params["downlink_encoding"], {"round": int(round_idx)})

    def commit(self, result: LocalResult) -> None:
        """Store ``result.state`` as its device's state (only for updates that arrived)."""
        self._states[int(result.device)] = result.state

    def aggregate(self, uplinks: dict[int, tuple[Payload, int]], round_idx: int) -> None:
        """Fold the arrived uplinks (device -> (payload, samples)) into the server state."""
        return None

    def apply_updates(self, updates: Sequence[StaleUpdate], rule: str, server_lr: float = 1.0) -> None:
        """Fold updates computed from possibly older server states into the server state.

        The asynchronous server modes call this instead of ``aggregate`` (which stays the
        synchronous round's rule). With x the server state, y_i the uplinked state, x_i
        the state the device received and w_i its weight:

        - ``"mix"`` (FedAsync, Xie et al. 2019): x ← (1 − Σ w_i) x + Σ w_i y_i;
        - ``"delta"`` (FedBuff, Nguyen et al. 2022): x ← x + η Σ w_i (y_i − x_i), η = ``server_lr``.

        Algorithms that define no such rule keep ``stale_updates = False`` and raise.
        """
        raise NotImplementedError(f"{self.name} has no stale-update rule: it runs only in fl.mode sync")

    def join_new_device(self, device: int, round_idx: int, seed: int) -> None:
        """Fit ``device``, held out of training, to the current server state (new-device
        generalization): one local update from the downlink it would get in ``round_idx``,
        committed as its state, with nothing aggregated, so the server (global model,
        hypernetwork, threshold mean) stays frozen. The update fits the algorithm's own
        personalization: PFL-TPS its embedding (through the frozen hypernetwork's
        linearisation), personal FFLs, thresholds and SAL residual; fedavg_ft the
        fine-tuned global model; FedPer/FedRep the head; Ditto the personal model; local
        training a model from scratch. Global-model algorithms keep nothing and their new
        devices are evaluated with the global model.

        Raises:
            NotImplementedError: ``holdout_supported`` is False (the reason is in the message).
        """
        if not self.holdout_supported:
            raise NotImplementedError(f"{self.name} cannot fit a held-out device: {self.holdout_unsupported}")
        payload = self.downlink(device, round_idx)
        self.commit(self.client().local_update(int(device), self.device_state(device), payload, int(seed)))

    def device_model(self, device: int) -> nn.Module:
        """The model ``device`` holds now (personalized algorithms); a device that never took
        part gets its initial model, built without being stored."""
        raise NotImplementedError(f"{self.name} has no per-device model")

    def evaluate(self, devices: Sequence[int] | None = None) -> EvalResult:
        """Each device's own model (``device_model``) on its own test split; no global model.

        Algorithms with a global model override this.
        """
        return EvalResult.of_models(self.data, self.device_model, self._devices(devices),
                                    self.train_params.eval_batch_size)

    @classmethod
    @abstractmethod
    def cost_model(
        cls, model_config: dict[str, Any], params: dict[str, Any], input_shape: tuple[int, int, int], num_classes: int
    ) -> CostModel:
        """Bytes and FLOPs of one update, without data or training."""

    def _devices(self, devices: Sequence[int] | None) -> list[int]:
        return list(range(self.data.n_devices)) if devices is None else [int(d) for d in devices]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def model_payload_bytes(model_config: dict[str, Any], input_shape: tuple[int, int, int], num_classes: int,
                        encoding: str = "fp32", config: dict[str, Any] | None = None) -> int:
    """Wire bytes of a dense payload of all model parameters (no memory allocated)."""
    cfg = resolve_model_config(model_config)
    with torch.device("meta"):
        model = MODELS[cfg["name"]](tuple(input_shape), int(num_classes),
                                    **{k: v for k, v in cfg.items() if k != "name"})
    return Payload(dict(model.state_dict()), encoding, dict(config or {})).wire_bytes
