"""Batched plans of pFedHN's and pFedHN-PC's local updates (``learning.execution.plan``):
whole-model cross-entropy training (``learning.execution.plain_plan.PlainPlan``) from the
received tensors, results built as ``PFedHNClient`` / ``PFedHNPCClient`` build them.

* pFedHN: starts from the downlinked θ_i = HN(e_i); uplinks Δθ_i = θ_sent − θ_trained
  (``Client.reply``: ``uplink_encoding``, the downlink's round); keeps nothing.
* pFedHN-PC: starts from the downlinked body_i plus the device's own head (its state);
  uplinks Δbody_i and keeps the trained head.

Reached through ``PFedHNClient.batched_plan()`` / ``PFedHNPCClient.batched_plan()`` (lazy
import: the executor never imports this module).
"""

from __future__ import annotations

import torch

from learning.algorithms.base import LocalResult
from learning.algorithms.pfedhn import sent_minus_trained
from learning.algorithms.pfedhn_pc import body_and_head
from learning.execution.plain_plan import PlainPlan
from learning.execution.plan import DeviceInit, DeviceStats, Task

__all__ = ["PFedHNPlan", "PFedHNPCPlan"]


class PFedHNPlan(PlainPlan):
    """pFedHN: train the generated model θ_i; uplink Δθ_i = θ_sent − θ_trained."""

    def start(self, task: Task) -> dict[str, torch.Tensor]:
        return self.received(task, "pfedhn")

    def finish(self, task: Task, init: DeviceInit, final: dict[str, torch.Tensor], stats: DeviceStats) -> LocalResult:
        device, _, payload, _ = task
        trained = self.trained(init, final)
        delta = sent_minus_trained(payload.tensors, trained)  # type: ignore[union-attr]
        return LocalResult(int(device), None, self.client.reply(delta, payload), self.flops(stats),
                           int(init.y.shape[0]), stats.metrics())


class PFedHNPCPlan(PlainPlan):
    """pFedHN-PC: train body_i + the device's head; uplink Δbody_i, keep the trained head."""

    def start(self, task: Task) -> dict[str, torch.Tensor]:
        device, state, payload, _ = task
        return body_and_head(device, state, payload)

    def finish(self, task: Task, init: DeviceInit, final: dict[str, torch.Tensor], stats: DeviceStats) -> LocalResult:
        device, state, payload, _ = task
        trained = self.trained(init, final)
        delta = sent_minus_trained(payload.tensors, trained)  # type: ignore[union-attr]
        head = {k: trained[k] for k in state}
        return LocalResult(int(device), head, self.client.reply(delta, payload), self.flops(stats),
                           int(init.y.shape[0]), stats.metrics())
