"""FedProx (Li et al., MLSys 2020): FedAvg with a proximal term in the local objective.

The device minimises ``CE(w) + μ/2 · ‖w − w_global‖²`` where ``w_global`` is the model it
received; everything else (payloads, aggregation, evaluation) is FedAvg's, so ``FedProx``
only swaps the client (Flower's ``FedProx(FedAvg)``). With μ = 0 the update equals
FedAvg's bit for bit (the term's gradient is exactly zero).

FLOPs are counted as FedAvg's: the proximal term and its gradient are O(parameters)
element-wise work per step, which the FLOP convention (matmuls only, see
``learning.flops``) does not count.

Also home of two helpers shared by the other baselines: ``proximal_loss`` (the
regulariser closure, reused by Ditto) and ``train_metrics`` (the ``LocalResult`` metrics).
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar

import torch
from torch import nn

from learning.algorithms.base import Client, LocalResult
from learning.algorithms.fedavg import FedAvg, FedAvgClient
from learning.algorithms.training import TrainStats, clone_state, train_local
from learning.payload import Payload

__all__ = ["FedProx", "FedProxClient", "proximal_loss", "train_metrics"]


def proximal_loss(model: nn.Module, anchor: dict[str, torch.Tensor], mu: float) -> Callable[[], torch.Tensor]:
    """A closure returning ``mu/2 · Σ_p ‖p − anchor[p]‖²`` over ``model``'s trainable parameters.

    Args:
        model: the model being trained (its parameters are read at every call).
        anchor: name -> tensor the parameters are pulled towards (detached copies are taken).
        mu: strength μ >= 0.
    """
    if mu < 0:
        raise ValueError(f"proximal strength must be >= 0, got {mu}")
    pairs = [(p, anchor[name].detach().clone()) for name, p in model.named_parameters() if p.requires_grad]

    def loss() -> torch.Tensor:
        total = torch.zeros(())
        for p, a in pairs:
            total = total + (p - a).pow(2).sum()
        return 0.5 * float(mu) * total

    return loss


def train_metrics(*stats: TrainStats) -> dict[str, float]:
    """``LocalResult.metrics`` of one update: the first training's loss/accuracy and the
    samples processed by all of them."""
    return {
        "train_loss": stats[0].loss,
        "train_accuracy": stats[0].accuracy,
        "samples_processed": float(sum(s.samples_processed for s in stats)),
    }


class FedProxClient(FedAvgClient):
    """FedAvg's client with the proximal term μ/2 ‖w − w_global‖² added to every batch loss."""

    def local_update(self, device: int, state: Any, payload: Payload | None, seed: int) -> LocalResult:
        """Pure local update: payload (global model) -> uplink (updated model)."""
        if payload is None:
            raise ValueError(f"fedprox device {device} needs a downlink payload")
        model = self.model()
        model.load_state_dict(payload.tensors)
        x, y = self.data.train(device)
        prox = proximal_loss(model, payload.tensors, float(self.params["mu"]))
        stats = train_local(model, x, y, self.train_params, seed, extra_loss=prox)
        uplink = self.reply(clone_state(model), payload)
        return LocalResult(int(device), None, uplink, self.flops_per_sample * stats.samples_processed,
                           int(y.shape[0]), train_metrics(stats))


class FedProx(FedAvg):
    """FedAvg whose devices solve the proximal local problem (parameter ``mu``, default 0.01)."""

    name: ClassVar[str] = "fedprox"
    extra_params: ClassVar[dict[str, Any]] = {"mu": 0.01}

    @classmethod
    def check_params(cls, resolved: dict[str, Any]) -> None:
        if not float(resolved["mu"]) >= 0:
            raise ValueError(f"fedprox parameter mu must be >= 0, got {resolved['mu']}")

    def make_client(self) -> Client:
        return FedProxClient(self.data, self.model_config, self.params)

