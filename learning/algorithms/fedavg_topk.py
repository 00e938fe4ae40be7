"""FedAvg with top-k sparsified uplinks and error feedback (Stich et al., NeurIPS 2018;
Aji & Heafield, EMNLP 2017).

downlink  : the global model w, dense in ``downlink_encoding`` (fp32 by default) (FedAvg's).
client    : trains a copy of w for ``local_epochs`` into w'; forms a = r + (w' − w) over
            all parameters flattened in ``state_dict`` order (r: the device's residual,
            zeros before its first update); sends the k = max(1, ceil(k_fraction · P))
            entries of a largest in magnitude as one flat tensor ``"update"`` (P,) in
            ``index_sparse`` encoding (4 + 8k body bytes); keeps r' = a − sent.
aggregate : w ← w + Σ_i (n_i/n) u_i (sample-weighted mean of the sparse updates).
evaluate  : the global model (not personalised).
FLOPs     : dense (top-k selection is not a matmul).
Device state: the residual, lazily created at the first update, P float32 values
(4·P bytes, 288 kB for the 72 k-parameter default ViT).

Bytes are deterministic: k is fixed by ``k_fraction``. Only if fewer than k entries of a
are non-zero does the payload carry fewer (the encoding drops exact zeros; the cost
model then is an upper bound).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from learning.algorithms.base import Algorithm, Client, CostModel, LocalResult
from learning.algorithms.fedavg import FedAvg, FedAvgClient
from learning.algorithms.fedper import meta_state_dict
from learning.algorithms.fedprox import train_metrics
from learning.payload import Payload

__all__ = ["FedAvgTopK", "TopKClient", "topk_count", "topk_split", "UPDATE_KEY"]

#: name of the flat sparse update tensor in the uplink.
UPDATE_KEY = "update"


def topk_count(num_params: int, k_fraction: float) -> int:
    """k = max(1, ceil(k_fraction · num_params)) (at most ``num_params``)."""
    return min(int(num_params), max(1, math.ceil(float(k_fraction) * int(num_params) - 1e-9)))


def topk_split(acc: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(sent, residual) of a flat vector: ``sent`` keeps the k entries largest in magnitude
    (others 0), ``residual = acc − sent`` (exactly 0 where sent)."""
    idx = torch.topk(acc.abs(), k, sorted=False).indices
    sent = torch.zeros_like(acc)
    sent[idx] = acc[idx]
    residual = acc.clone()
    residual[idx] = 0.0
    return sent, residual


def flatten(state: dict[str, torch.Tensor]) -> torch.Tensor:
    """Concatenate a state dict's tensors (float32, dict order) into one (P,) vector."""
    return torch.cat([v.detach().reshape(-1).to(torch.float32) for v in state.values()])


def unflatten(flat: torch.Tensor, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of ``flatten`` with the names, shapes and dtypes of ``like``."""
    parts = torch.split(flat, [v.numel() for v in like.values()])
    return {k: p.reshape(v.shape).to(v.dtype) for (k, v), p in zip(like.items(), parts)}


class TopKClient(FedAvgClient):
    """FedAvg training; uplinks the top-k of (residual + update) and keeps the rest."""

    def local_update(self, device: int, state: Any, payload: Payload | None, seed: int) -> LocalResult:
        """Pure local update: (global w, residual r) -> (sparse uplink, residual r')."""
        model, stats = self.train_received("fedavg_topk", device, payload, seed)
        trained = model.state_dict()
        acc = flatten({k: trained[k] for k in payload.tensors}) - flatten(payload.tensors)
        if state is not None:
            acc = acc + state
        sent, residual = topk_split(acc, topk_count(acc.numel(), float(self.params["k_fraction"])))
        uplink = Payload({UPDATE_KEY: sent}, "index_sparse", {"round": int(payload.config.get("round", 0))})
        return LocalResult(int(device), residual, uplink, self.flops_per_sample * stats.samples_processed,
                           self.data.num_train(device), train_metrics(stats))


class FedAvgTopK(FedAvg):
    """FedAvg whose uplink is the error-compensated top-k update (parameter ``k_fraction``)."""

    name: ClassVar[str] = "fedavg_topk"
    stale_updates: ClassVar[bool] = False  # its aggregate is not FedAvg's: no stale-update rule
    extra_params: ClassVar[dict[str, Any]] = {"k_fraction": 0.01}

    @classmethod
    def check_params(cls, resolved: dict[str, Any]) -> None:
        if not 0 < float(resolved["k_fraction"]) <= 1:
            raise ValueError(f"fedavg_topk parameter k_fraction must be in (0, 1], got {resolved['k_fraction']}")
        if resolved["uplink_encoding"] != "fp32":
            raise ValueError(f"fedavg_topk parameter uplink_encoding={resolved['uplink_encoding']!r} not allowed; "
                             "allowed: ['fp32'] (its uplink is its own index_sparse top-k with float32 values)")

    def make_client(self) -> Client:
        return TopKClient(self.data, self.model_config, self.params)

    def commit(self, result: LocalResult) -> None:
        """Store the device's residual."""
        Algorithm.commit(self, result)

    def aggregate(self, uplinks: dict[int, tuple[Payload, int]], round_idx: int) -> None:
        """w ← w + Σ_i (n_i/n) u_i (float64 accumulation); no-op without uplinks or samples."""
        items = [(p, n) for p, n in uplinks.values() if n > 0]
        if not items:
            return
        total = float(sum(n for _, n in items))
        mean = torch.zeros(sum(v.numel() for v in self.global_state.values()), dtype=torch.float64)
        for p, n in items:
            mean += p.tensors[UPDATE_KEY].to(torch.float64) * (n / total)
        new = flatten(self.global_state).to(torch.float64) + mean
        self.global_state = unflatten(new, self.global_state)

    @classmethod
    def cost_model(cls, model_config: dict[str, Any], params: dict[str, Any], input_shape: tuple[int, int, int],
                   num_classes: int) -> CostModel:
        """FedAvg's downlink and FLOPs; uplink = one index_sparse tensor with k values."""
        resolved = cls.resolve_params(params)
        base = super().cost_model(model_config, resolved, input_shape, num_classes)
        _, state = meta_state_dict(model_config, input_shape, num_classes)
        n = sum(v.numel() for v in state.values())
        example = torch.zeros(n)
        example[: topk_count(n, float(resolved["k_fraction"]))] = 1.0
        up = Payload({UPDATE_KEY: example}, "index_sparse", {"round": 0}).wire_bytes
        return CostModel(base.downlink_bytes, up, base.flops_per_sample, base.epochs)
