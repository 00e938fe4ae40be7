"""FedPer (Arivazhagan et al., 2019): a personal classification head, a federated body.

Parameters are split with ``learning.models.param_groups``: group ``head`` is personal and
never leaves the device; every other parameter (embed, norm, SAL, FFL) is shared.

downlink  : the shared parameters, dense in ``downlink_encoding`` (fp32 by default), ``config={"round": r}``.
client    : loads shared (payload) + personal head (device state), trains the whole model
            ``local_epochs``, uploads the shared parameters (``uplink_encoding``) and keeps the new head.
aggregate : FedAvg over the shared parameters (sample-weighted mean).
evaluate  : device d's model = shared parameters + d's head (its initial head, drawn from
            ``device_seed(d)``, until it has trained) on d's test split.
FLOPs     : dense forward+backward per sample per epoch (everything is trained).

``FedRep`` (``learning.algorithms.fedrep``) derives from these classes and only changes
how the local update trains.
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import torch
from torch import nn

from learning.algorithms.base import Algorithm, Client, CostModel, LocalResult
from learning.algorithms.fedavg import FedAvg, FedAvgClient
from learning.algorithms.fedprox import train_metrics
from learning.algorithms.training import TrainParams, TrainStats, clone_state, train_local
from learning.flops import vit_flops_per_sample
from learning.models import MODELS, param_groups, resolve_model_config
from learning.payload import Payload

__all__ = ["FedPer", "FedPerClient", "PERSONAL_GROUPS", "meta_state_dict", "split_names"]

#: parameter groups that stay on the device in FedPer / FedRep.
PERSONAL_GROUPS: tuple[str, ...] = ("head",)


def split_names(model: nn.Module, personal_groups: Sequence[str] = PERSONAL_GROUPS) -> tuple[list[str], list[str]]:
    """(shared, personal) parameter names of ``model`` in ``named_parameters`` order."""
    groups = param_groups(model)
    personal = {n for g in personal_groups for n in groups[g]}
    names = [n for n, _ in model.named_parameters()]
    return [n for n in names if n not in personal], [n for n in names if n in personal]


def meta_state_dict(model_config: dict[str, Any], input_shape: tuple[int, int, int],
                    num_classes: int) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """The model built on the ``meta`` device and its state dict (shapes only, no memory)."""
    cfg = resolve_model_config(model_config)
    with torch.device("meta"):
        model = MODELS[cfg["name"]](tuple(input_shape), int(num_classes),
                                    **{k: v for k, v in cfg.items() if k != "name"})
    return model, dict(model.state_dict())


class FedPerClient(FedAvgClient):
    """Trains shared body + personal head; uploads the body, keeps the head."""

    def personal_names(self) -> list[str]:
        """Names of the personal (head) parameters."""
        return split_names(self.model())[1]

    def train(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int) -> tuple[list[TrainStats], int]:
        """Train ``model`` in place; returns the training stats and the FLOPs executed.
        FedPer: every parameter for ``local_epochs`` (dense FLOPs)."""
        stats = train_local(model, x, y, self.train_params, seed)
        return [stats], self.flops_per_sample * stats.samples_processed

    def local_update(self, device: int, state: Any, payload: Payload | None, seed: int) -> LocalResult:
        """Pure local update: (shared parameters, personal head) -> (uplink shared, new head)."""
        if payload is None or state is None:
            raise ValueError(f"{type(self).__name__} device {device} needs a downlink payload and its head")
        model = self.model()
        model.load_state_dict({**payload.tensors, **state})
        x, y = self.data.train(device)
        stats, flops = self.train(model, x, y, seed)
        trained = clone_state(model)
        personal = self.personal_names()
        uplink = self.reply({k: trained[k] for k in payload.tensors}, payload)
        return LocalResult(int(device), {k: trained[k] for k in personal}, uplink, int(flops),
                           int(y.shape[0]), train_metrics(*stats))


class FedPer(FedAvg):
    """FedAvg of everything but the classification head, which each device keeps."""

    name: ClassVar[str] = "fedper"
    stale_updates: ClassVar[bool] = False  # its aggregate is not FedAvg's: no stale-update rule
    personalized: ClassVar[bool] = True

    def __init__(self, data: Any, model_config: dict[str, Any], params: dict[str, Any], seed: int) -> None:
        super().__init__(data, model_config, params, seed)
        self.shared_names, self.personal_names = split_names(self._model)
        self.global_state = {k: self.global_state[k] for k in self.shared_names}

    def make_client(self) -> Client:
        return FedPerClient(self.data, self.model_config, self.params)

    def initial_state(self, device: int) -> Any:
        """Device's initial head, drawn from ``device_seed(device)``."""
        state = self.new_model(seed=self.device_seed(device)).state_dict()
        return {k: state[k].detach().clone() for k in self.personal_names}

    def commit(self, result: LocalResult) -> None:
        """Store the device's new head."""
        Algorithm.commit(self, result)

    # Judged on personal models: the base evaluation, not FedAvg's global one.
    evaluate = Algorithm.evaluate

    def device_model(self, device: int) -> nn.Module:
        """Device ``device``'s model: shared parameters + its head (initial head if untrained,
        built without being stored)."""
        head = self._states[device] if device in self._states else self.initial_state(device)
        self._model.load_state_dict({**self.global_state, **head})
        return self._model

    def global_model(self) -> nn.Module:
        """Not defined: the head is personal."""
        raise NotImplementedError(f"{self.name} has no global model (personal heads)")

    @classmethod
    def shared_payload_bytes(cls, model_config: dict[str, Any], input_shape: tuple[int, int, int],
                             num_classes: int, encoding: str = "fp32") -> int:
        """Wire bytes of the shared-parameter payload in ``encoding`` (with the round in config)."""
        model, state = meta_state_dict(model_config, input_shape, num_classes)
        shared, _ = split_names(model)
        return Payload({k: state[k] for k in shared}, encoding, {"round": 0}).wire_bytes

    @classmethod
    def cost_model(cls, model_config: dict[str, Any], params: dict[str, Any], input_shape: tuple[int, int, int],
                   num_classes: int) -> CostModel:
        """Shared parameters down and up (in ``downlink_encoding`` / ``uplink_encoding``); dense FLOPs."""
        resolved = cls.resolve_params(params)
        down, up = (cls.shared_payload_bytes(model_config, input_shape, num_classes, resolved[key])
                    for key in ("downlink_encoding", "uplink_encoding"))
        return CostModel(down, up, vit_flops_per_sample(model_config, input_shape, num_classes),
                         float(TrainParams.from_params(resolved).local_epochs))
