"""The contract between the batched executor and an algorithm: a ``BatchedPlan`` is the
functional description of one algorithm's local update (see ``learning.execution.batched``).

Algorithms that want their updates batched write a plan beside themselves (PFL-TPS:
``learning.algorithms.pfl_tps.batched``; pFedHN and pFedHN-PC:
``learning.algorithms.pfedhn_batched``; FedTP: ``learning.algorithms.fedtp_batched``) and
import only this module, ``learning.execution.plain_plan`` (whole-model cross-entropy
training from given tensors) and ``learning.execution.batched_vit``; the executor never
imports an algorithm's plan, it asks the client (``Client.batched_plan()``, imported lazily
there) or its registry of exact client types (FedAvg, local-only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from learning.algorithms.base import Client, LocalResult
from learning.algorithms.training import TrainParams
from learning.payload import Payload

__all__ = ["Task", "DeviceInit", "DeviceStats", "BatchedPlan"]

#: one local update's inputs: (device, device state, downlink payload, seed).
Task = tuple[int, Any, "Payload | None", int]


@dataclass
class DeviceInit:
    """One task, prepared: trainable ``params``, constant ``consts`` (both name -> tensor,
    fed to the forward), training data ``x`` (n, C, H, W) / ``y`` (n,) and ``extra`` (plan
    specific)."""

    params: dict[str, torch.Tensor]
    consts: dict[str, torch.Tensor]
    x: torch.Tensor
    y: torch.Tensor
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class DeviceStats:
    """What batched training did for one device (as ``TrainStats`` plus per-step counters)."""

    samples_processed: int
    loss: float
    accuracy: float
    flops: int | None  # summed per-step FLOPs (plans that count per step), else None
    resets: int
    density_mean: float | None = None  # mean over steps of ``step_density`` (plans that report it)

    def metrics(self) -> dict[str, float]:
        """The ``LocalResult.metrics`` of a single training (as ``TrainStats.metrics``)."""
        return {"train_loss": self.loss, "train_accuracy": self.accuracy,
                "samples_processed": float(self.samples_processed)}


class BatchedPlan:
    """The functional description of one algorithm's local update (override per algorithm).

    The executor calls ``prepare`` per task, stacks the results, trains with ``forward``
    under ``vmap`` or with ``forward_stacked`` (+ ``extra_loss``) and ``hyper``'s optimizer
    groups, calls ``step_flops`` before and ``post_step`` after every step, and builds each
    result with ``finish``.
    """

    #: True when ``extra_loss`` contributes to the training loss.
    has_extra_loss: bool = False
    #: True when ``step_flops`` counts FLOPs per step (else ``finish`` counts them).
    counts_step_flops: bool = False
    #: True when ``forward_stacked`` computes all devices at once (else ``forward`` is vmapped).
    stacked: bool = False

    def __init__(self, client: Client) -> None:
        self.client = client
        self.hp: TrainParams = client.train_params

    def supported(self) -> bool:
        """Whether this client's updates can be batched (dropout must be off)."""
        return float(self.client.model_config.get("dropout", 0.0)) == 0.0

    def prepare(self, task: Task) -> DeviceInit:
        raise NotImplementedError

    def hyper(self, name: str) -> tuple[float, float]:
        """(lr, weight_decay) of trainable tensor ``name``."""
        return self.hp.lr, self.hp.weight_decay

    def forward(self, params: dict[str, torch.Tensor], consts: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """One device's logits (B, classes) from its (unstacked) tensors; run under ``vmap``."""
        raise NotImplementedError

    def forward_stacked(self, params: dict[str, torch.Tensor], consts: dict[str, torch.Tensor],
                        x: torch.Tensor) -> torch.Tensor:
        """All devices' logits (m, B, classes) from stacked tensors (m, ...) and x (m, B, ...):
        the value of ``vmap(forward)``, faster (used when ``stacked`` is True)."""
        raise NotImplementedError

    def extra_loss(self, params: dict[str, torch.Tensor], consts: dict[str, torch.Tensor]) -> torch.Tensor:
        """One device's regulariser (scalar); run under ``vmap``."""
        raise NotImplementedError

    def step_flops(self, params: dict[str, torch.Tensor], m: int) -> list[int] | None:
        """FLOPs per sample of devices ``[0, m)`` before this step (None: counted in ``finish``)."""
        return None

    def step_density(self, params: dict[str, torch.Tensor], m: int) -> list[float] | None:
        """A density per device of ``[0, m)`` before this step, averaged over the device's steps
        into ``DeviceStats.density_mean`` (None: not reported)."""
        return None

    def post_step(self, params: dict[str, torch.Tensor], m: int) -> torch.Tensor | None:
        """In-place projection after a step of devices ``[0, m)``; returns resets per device (m,)."""
        return None

    def finish(self, task: Task, init: DeviceInit, final: dict[str, torch.Tensor], stats: DeviceStats) -> LocalResult:
        raise NotImplementedError
