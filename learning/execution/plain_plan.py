"""The algorithm-independent half of every "plain" batched plan: cross-entropy training of a
whole model (every trainable parameter) started from given tensors (see
``learning.execution.plan`` for the contract, ``learning.execution.batched`` for the executor).

An algorithm whose local update is ``model.load_state_dict(start); train_local(model, ...)``
subclasses ``PlainPlan`` and writes only ``start`` (which tensors the model is loaded with)
and ``finish`` (how the ``LocalResult`` and uplink are built from the trained tensors).
Plain plans exist for FedAvg and local-only (``learning.execution.batched.PlainModelPlan``),
pFedHN and pFedHN-PC (``learning.algorithms.pfedhn_batched``) and FedTP
(``learning.algorithms.fedtp_batched``).

This module imports no algorithm, so an algorithm's plan module may import it.
"""

from __future__ import annotations

import torch

from learning.algorithms.base import Client, LocalResult
from learning.execution.batched_vit import stacked_vit_forward, supports_stacked
from learning.execution.plan import BatchedPlan, DeviceInit, DeviceStats, Task

__all__ = ["PlainPlan"]


class PlainPlan(BatchedPlan):
    """Plain cross-entropy training of the client's whole model from ``start(task)``.

    Trainable tensors are the model's parameters with ``requires_grad`` (as float32); every
    other start tensor (buffers) is a per-device constant. Models without buffers whose
    forward ``batched_vit`` supports train all devices at once (``stacked``), others under
    ``vmap(functional_call)``.
    """

    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self.template = client.model()
        self.names = [n for n, p in self.template.named_parameters() if p.requires_grad]
        #: the model's ``state_dict`` names, in its order (what ``model.state_dict()`` lists).
        self.state_keys = list(self.template.state_dict())
        self.stacked = supports_stacked(self.template) and not any(True for _ in self.template.buffers())

    def start(self, task: Task) -> dict[str, torch.Tensor]:
        """The tensors the sequential update loads into the model (raise on a bad task)."""
        raise NotImplementedError

    @staticmethod
    def received(task: Task, algorithm: str) -> dict[str, torch.Tensor]:
        """The tensors downlinked with ``task`` (a ``ValueError`` naming ``algorithm`` and the
        device when the task carries no payload)."""
        device, _, payload, _ = task
        if payload is None:
            raise ValueError(f"{algorithm} device {device} needs a downlink payload")
        return payload.tensors

    def prepare(self, task: Task) -> DeviceInit:
        start = self.start(task)
        params = {n: start[n].detach().to(torch.float32) for n in self.names}
        consts = {n: v.detach() for n, v in start.items() if n not in params}
        x, y = self.client.data.train(int(task[0]))
        return DeviceInit(params, consts, x, y, {"keys": list(start)})

    def forward(self, params: dict[str, torch.Tensor], consts: dict[str, torch.Tensor],
                x: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(self.template, {**params, **consts}, (x,))

    def forward_stacked(self, params: dict[str, torch.Tensor], consts: dict[str, torch.Tensor],
                        x: torch.Tensor) -> torch.Tensor:
        return stacked_vit_forward(self.template, {**params, **consts}, x)  # type: ignore[arg-type]

    @staticmethod
    def trained(init: DeviceInit, final: dict[str, torch.Tensor],
                keys: list[str] | None = None) -> dict[str, torch.Tensor]:
        """Copies of the trained model's tensors named ``keys`` (default: the start tensors'
        names, in their order): trained parameters from ``final``, the rest as started."""
        merged = {**init.consts, **final}
        return {k: merged[k].clone() for k in (init.extra["keys"] if keys is None else keys)}

    def flops(self, stats: DeviceStats) -> int:
        """Dense FLOPs of the update: the client's per-sample count x samples processed."""
        return self.client.flops_per_sample * stats.samples_processed

    def finish(self, task: Task, init: DeviceInit, final: dict[str, torch.Tensor], stats: DeviceStats) -> LocalResult:
        raise NotImplementedError
