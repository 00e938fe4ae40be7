"""pFedHN-PC (Shamsian et al., ICML 2021, §4 "personalized classifier"): the hypernetwork
generates the feature extractor, each device keeps its own classification head.

The personal-adaptation variant of pFedHN, the fair counterpart of PFL-TPS's personal SAL
residual: something personal that never leaves the device besides what the hypernetwork
makes. Parameters are split as in FedPer (``learning.models.param_groups``: group
``head`` is personal).

downlink  : body_i = HN(e_i), every non-head parameter, dense in ``downlink_encoding``.
client    : loads body_i + its own head (device state), trains the whole model with pFedHN's
            inner optimizer for ``local_epochs``; uplinks Δbody_i = body_sent − body_trained
            (``uplink_encoding``) and keeps the trained head.
aggregate : pFedHN's hypernetwork step on the Δbody_i (``HyperServer.step``).
evaluate  : HN(e_i) + device i's head (its initial head, drawn from ``device_seed(i)``,
            until it has trained) on device i's test split.
FLOPs     : dense (the whole model is trained).
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from learning.algorithms.base import Algorithm, Client, CostModel, LocalResult
from learning.algorithms.fedper import FedPer, split_names
from learning.algorithms.fedprox import train_metrics
from learning.algorithms.pfedhn import PFedHN, PFedHNClient, make_hyper_server, sent_minus_trained
from learning.algorithms.pfl_tps.hypernetwork import SalSpec
from learning.algorithms.training import TrainParams, clone_state, derive_seed, train_local
from learning.flops import vit_flops_per_sample
from learning.payload import Payload

__all__ = ["PFedHNPC", "PFedHNPCClient", "body_and_head"]


def body_and_head(device: int, state: Any, payload: Payload | None) -> dict[str, Any]:
    """The tensors a pFedHN-PC update starts from: the received body_i and the device's head."""
    if payload is None or state is None:
        raise ValueError(f"pfedhn_pc device {device} needs a downlink payload and its head")
    return {**payload.tensors, **state}


class PFedHNPCClient(PFedHNClient):
    """Trains the generated body with the device's own head; uplinks Δbody, keeps the head."""

    def batched_plan(self) -> Any:
        """The batched executor's plan of this update (``pfedhn_batched.PFedHNPCPlan``), or None
        for a subclass (its update may differ; it must provide its own plan to be batched)."""
        if type(self) is not PFedHNPCClient:
            return None
        from learning.algorithms.pfedhn_batched import PFedHNPCPlan  # lazy: torch.func only when batched

        return PFedHNPCPlan(self)

    def local_update(self, device: int, state: Any, payload: Payload | None, seed: int) -> LocalResult:
        """Pure local update: (body_i, head_i) -> (uplink Δbody_i, new head_i)."""
        model = self.model()
        model.load_state_dict(body_and_head(device, state, payload))
        x, y = self.data.train(device)
        stats = train_local(model, x, y, self.train_params, seed)
        trained = clone_state(model)
        head = {k: trained[k] for k in state}
        return LocalResult(int(device), head, self.reply(sent_minus_trained(payload.tensors, trained), payload),
                           self.flops_per_sample * stats.samples_processed, int(y.shape[0]), train_metrics(stats))


class PFedHNPC(PFedHN):
    """pFedHN whose hypernetwork generates everything but the classification head."""

    name: ClassVar[str] = "pfedhn_pc"

    def __init__(self, data: Any, model_config: dict[str, Any], params: dict[str, Any], seed: int) -> None:
        Algorithm.__init__(self, data, model_config, params, seed)
        self._model = self.new_model(seed=derive_seed(self.seed, 0, 1))  # server stream 1: base init
        self.body_names, self.head_names = split_names(self._model)
        state = self._model.state_dict()
        base = {k: state[k].detach().clone() for k in self.body_names}
        spec = SalSpec(tuple(base), tuple(tuple(v.shape) for v in base.values()))
        self.server = make_hyper_server(self, spec, base)

    def make_client(self) -> Client:
        return PFedHNPCClient(self.data, self.model_config, self.params)

    def initial_state(self, device: int) -> Any:
        """Device's initial head, drawn from ``device_seed(device)`` (as FedPer's)."""
        state = self.new_model(seed=self.device_seed(device)).state_dict()
        return {k: state[k].detach().clone() for k in self.head_names}

    def commit(self, result: LocalResult) -> None:
        """Store the device's trained head."""
        Algorithm.commit(self, result)

    def device_model(self, device: int) -> nn.Module:
        """HN(e_device) + the device's head (its initial head if untrained, not stored)."""
        head = self._states[device] if device in self._states else self.initial_state(device)
        self._model.load_state_dict({**self.server.generate(device), **head})
        return self._model

    @classmethod
    def cost_model(cls, model_config: dict[str, Any], params: dict[str, Any], input_shape: tuple[int, int, int],
                   num_classes: int) -> CostModel:
        """The body down (HN(e_i)) and up (Δbody) in ``downlink_encoding`` / ``uplink_encoding``; dense FLOPs."""
        resolved = cls.resolve_params(params)
        down, up = (FedPer.shared_payload_bytes(model_config, input_shape, num_classes, resolved[key])
                    for key in ("downlink_encoding", "uplink_encoding"))
        return CostModel(down, up, vit_flops_per_sample(model_config, input_shape, num_classes),
                         float(TrainParams.from_params(resolved).local_epochs))
