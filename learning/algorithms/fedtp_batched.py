"""Batched plan of FedTP's local update (``learning.execution.plan``): whole-model
cross-entropy training (``learning.execution.plain_plan.PlainPlan``) from the downlinked
rest + generated SAL_i; the uplink is ``fedtp_uplink`` of the trained model (the rest under
the parameter names in the model's order, ΔSAL_i = SAL_sent − SAL_trained under
``"delta." + name``, ``uplink_encoding``), as ``FedTPClient`` builds it.

Reached through ``FedTPClient.batched_plan()`` (lazy import: the executor never imports
this module).
"""

from __future__ import annotations

import torch

from learning.algorithms.base import Client, LocalResult
from learning.algorithms.fedtp import fedtp_uplink, generated_names
from learning.execution.plain_plan import PlainPlan
from learning.execution.plan import DeviceInit, DeviceStats, Task

__all__ = ["FedTPPlan"]


class FedTPPlan(PlainPlan):
    """FedTP: train rest + SAL_i; uplink the trained rest and ΔSAL_i."""

    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self.sal = generated_names(self.template)

    def start(self, task: Task) -> dict[str, torch.Tensor]:
        return self.received(task, "fedtp")

    def finish(self, task: Task, init: DeviceInit, final: dict[str, torch.Tensor], stats: DeviceStats) -> LocalResult:
        device, _, payload, _ = task
        trained = self.trained(init, final, self.state_keys)  # model.state_dict()'s order
        round_idx = int(payload.config.get("round", 0))  # type: ignore[union-attr]
        uplink = fedtp_uplink(trained, payload.tensors, self.sal, round_idx,  # type: ignore[union-attr]
                              self.client.params["uplink_encoding"])
        return LocalResult(int(device), None, uplink, self.flops(stats), int(init.y.shape[0]), stats.metrics())
