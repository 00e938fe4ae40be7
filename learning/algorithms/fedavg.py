"""FedAvg (McMahan et al., AISTATS 2017): one global model, sample-weighted averaging.

downlink  : the global model, dense in ``downlink_encoding`` (fp32 by default), with ``config={"round": r}``.
client    : loads it, trains ``local_epochs`` on the device's data, sends the whole
            updated model back (dense in ``downlink_encoding`` (fp32 by default), same round in config). Devices keep no state.
aggregate : θ ← Σ_k n_k θ_k / Σ_k n_k over the arrived uplinks (n_k = their sample counts),
            accumulated in float64.
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import torch
from torch import nn

from learning.algorithms.base import (
    Algorithm,
    Client,
    CostModel,
    EvalResult,
    STALE_RULES,
    LocalResult,
    StaleUpdate,
    model_payload_bytes,
)
from learning.algorithms.training import TrainParams, TrainStats, clone_state, derive_seed, evaluate_accuracy, train_local
from learning.flops import vit_flops_per_sample
from learning.payload import Payload

__all__ = ["FedAvg", "FedAvgClient", "weighted_average"]


def weighted_average(states: Sequence[dict[str, torch.Tensor]], weights: Sequence[float]) -> dict[str, torch.Tensor]:
    """Σ_k w_k s_k / Σ_k w_k for every tensor name (float64 accumulation, original dtype out).

    Args:
        states: name -> tensor dicts with identical names and shapes.
        weights: non-negative weights (e.g. sample counts) with a positive sum.
    """
    if len(states) != len(weights) or not states:
        raise ValueError(f"need as many weights as states (>0), got {len(states)} and {len(weights)}")
    total = float(sum(weights))
    if not total > 0 or any(w < 0 for w in weights):
        raise ValueError(f"weights must be >= 0 with a positive sum, got {list(weights)}")
    out: dict[str, torch.Tensor] = {}
    for name, ref in states[0].items():
        acc = torch.zeros(ref.shape, dtype=torch.float64)
        for state, w in zip(states, weights):
            acc += state[name].to(torch.float64) * (float(w) / total)
        out[name] = acc.to(ref.dtype)
    return out


class FedAvgClient(Client):
    """Trains the received global model on the device's data and uploads it."""

    def train_received(self, name: str, device: int, payload: Payload | None, seed: int) -> tuple[nn.Module, TrainStats]:
        """The FedAvg-style client step: load the received model, train it on the device's data."""
        if payload is None:
            raise ValueError(f"{name} device {device} needs a downlink payload")
        model = self.model()
        model.load_state_dict(payload.tensors)
        x, y = self.data.train(device)
        return model, train_local(model, x, y, self.train_params, seed)

    def local_update(self, device: int, state: Any, payload: Payload | None, seed: int) -> LocalResult:
        """Pure local update: payload (global model) -> uplink (updated model)."""
        model, stats = self.train_received("fedavg", device, payload, seed)
        uplink = self.reply(clone_state(model), payload)
        return LocalResult(
            device=int(device),
            state=None,
            uplink=uplink,
            flops=self.flops_per_sample * stats.samples_processed,
            samples=self.data.num_train(device),
            metrics=stats.metrics(),
        )


def _check_updates(updates: Sequence[StaleUpdate], rule: str) -> list[StaleUpdate]:
    """The updates with positive weight; rejects an unknown rule or a negative weight."""
    if rule not in STALE_RULES:
        raise ValueError(f"stale-update rule {rule!r} is not one of {STALE_RULES}")
    bad = [u.weight for u in updates if not u.weight >= 0]
    if bad:
        raise ValueError(f"stale-update weights must be >= 0, got {bad[0]}")
    return [u for u in updates if u.weight > 0]


class FedAvg(Algorithm):
    """Federated averaging of one global model (devices keep no state)."""

    name: ClassVar[str] = "fedavg"
    communicates: ClassVar[bool] = True
    personalized: ClassVar[bool] = False
    stale_updates: ClassVar[bool] = True

    def __init__(self, data: Any, model_config: dict[str, Any], params: dict[str, Any], seed: int) -> None:
        super().__init__(data, model_config, params, seed)
        self._model = self.new_model(seed=derive_seed(self.seed, 0, 1))  # server stream 1
        self.global_state: dict[str, torch.Tensor] = {k: v.detach().clone() for k, v in self._model.state_dict().items()}

    def make_client(self) -> Client:
        return FedAvgClient(self.data, self.model_config, self.params)

    def initial_state(self, device: int) -> Any:
        return None

    def commit(self, result: LocalResult) -> None:
        """FedAvg devices keep nothing: nothing to store."""
        return None

    def downlink(self, device: int, round_idx: int) -> Payload | None:
        """The global model (the server never mutates these tensors in place)."""
        return self.send(self.global_state, round_idx)

    def aggregate(self, uplinks: dict[int, tuple[Payload, int]], round_idx: int) -> None:
        """Sample-weighted mean of the uplinked models; no-op without uplinks or samples."""
        items = [(p, n) for p, n in uplinks.values() if n > 0]
        if not items:
            return
        self.global_state = weighted_average([p.tensors for p, _ in items], [n for _, n in items])

    def apply_updates(self, updates: Sequence[StaleUpdate], rule: str, server_lr: float = 1.0) -> None:
        """FedAsync mixing or FedBuff deltas of whole models (see ``Algorithm.apply_updates``).

        Accumulates in float64 in the order of ``weighted_average``: with one version sent
        to everyone, weights n_i/Σn, η = 1 and rule ``delta`` the result is the FedAvg
        average up to float64 round-off (below float32 resolution).
        """
        if not self.stale_updates:
            super().apply_updates(updates, rule, server_lr)
        items = sorted(_check_updates(updates, rule), key=lambda u: u.device)  # FedAvg's order
        if not items:
            return
        if rule == "delta" and server_lr == 1.0 and self._is_fedavg_step(items):
            # Every update started from the current model with weights n_i/Σn: the step
            # x + Σ w_i (y_i − x) is the FedAvg average; computed as such, it is free of the
            # round-off of x − x (FedBuff with K = concurrency and τ = 0 is FedAvg exactly).
            self.global_state = weighted_average([u.uplink.tensors for u in items], [u.samples for u in items])
            return
        out: dict[str, torch.Tensor] = {}
        for name, ref in self.global_state.items():
            x = ref.to(torch.float64)
            mixed = torch.zeros(ref.shape, dtype=torch.float64)
            for u in items:
                mixed += u.uplink.tensors[name].to(torch.float64) * float(u.weight)
            if rule == "mix":
                new = x * (1.0 - sum(float(u.weight) for u in items)) + mixed
            else:
                base = torch.zeros(ref.shape, dtype=torch.float64)
                for u in items:
                    base += u.sent.tensors[name].to(torch.float64) * float(u.weight)
                new = x + float(server_lr) * (mixed - base)
            out[name] = new.to(ref.dtype)
        self.global_state = out

    def _is_fedavg_step(self, items: Sequence[StaleUpdate]) -> bool:
        """True when every update was sent the current state and w_i = n_i/Σn (Σw = 1)."""
        if any(u.sent is None or any(u.sent.tensors.get(k) is not v for k, v in self.global_state.items())
               for u in items):
            return False
        total_n = float(sum(u.samples for u in items))
        return total_n > 0 and all(abs(u.weight - u.samples / total_n) <= 1e-12 for u in items)

    def global_model(self) -> torch.nn.Module:
        """The server's evaluation model holding the current global parameters."""
        self._model.load_state_dict(self.global_state)
        return self._model

    def evaluate(self, devices: Sequence[int] | None = None) -> EvalResult:
        """Global model on every device's test split and on the global test set."""
        model = self.global_model()
        bs = self.train_params.eval_batch_size
        gx, gy = self.data.global_test()
        return EvalResult.of_models(self.data, lambda _d: model, self._devices(devices), bs,
                                    evaluate_accuracy(model, gx, gy, bs))

    @classmethod
    def cost_model(cls, model_config: dict[str, Any], params: dict[str, Any], input_shape: tuple[int, int, int],
                   num_classes: int) -> CostModel:
        """Dense model down and up in ``downlink_encoding`` / ``uplink_encoding`` (with the
        round in config), dense FLOPs."""
        resolved = cls.resolve_params(params)
        return CostModel(
            downlink_bytes=model_payload_bytes(model_config, input_shape, num_classes,
                                               resolved["downlink_encoding"], {"round": 0}),
            uplink_bytes=model_payload_bytes(model_config, input_shape, num_classes,
                                             resolved["uplink_encoding"], {"round": 0}),
            flops_per_sample=vit_flops_per_sample(model_config, input_shape, num_classes),
            epochs=float(TrainParams.from_params(resolved).local_epochs),
        )
