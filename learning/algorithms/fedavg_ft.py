"""FedAvg-FT: FedAvg whose devices fine-tune the received global model before using it.

The standard personalisation baseline of the pFL literature (e.g. Yu et al., "Salvaging
Federated Learning by Local Adaptation", 2020; Wang et al., "Federated Evaluation of
On-device Personalization", 2019): the federation trains one global model exactly as
FedAvg does, and each device evaluates its own copy of the global model after a few
local epochs of fine-tuning on its training split.

downlink  : the global model, dense in ``downlink_encoding`` (fp32 by default) (FedAvg's).
client    : from the received model θ, (1) fine-tunes a copy for ``finetune_epochs`` on the
            device's training split (own seed stream) and keeps it as its personal model,
            (2) trains θ for ``local_epochs`` as FedAvg does and uploads it. Both trainings
            run on the device: the reported FLOPs (and so the simulated compute time and
            energy) count the samples of both.
aggregate : FedAvg's sample-weighted mean.
evaluate  : each device's personal (fine-tuned) model on its own splits; a device that has
            not taken part yet holds no fine-tuned model and is evaluated with the current
            global model. ``finetune_epochs: 0`` keeps the received model unchanged.

``finetune_at: evaluation`` is the deployment-time protocol of the same papers: devices
train exactly as FedAvg (same uplink, FLOPs, time and energy), and every evaluation
fine-tunes a copy of the *current* global model on each evaluated device's training split
(seed stream 3 of the device: the same batches at every evaluation) before testing it.
That fine-tuning is a one-time deployment cost outside the simulated training, so it is
in no time or energy figure; it costs ``finetune_epochs`` epochs of every evaluated device
in wall time at every evaluation, so set ``learning.eval_every`` to the round count to fine-tune
once, at the end.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Sequence

from torch import nn

from learning.algorithms.base import Algorithm, Client, CostModel, EvalResult, LocalResult
from learning.algorithms.fedavg import FedAvg, FedAvgClient
from learning.algorithms.fedprox import train_metrics
from learning.algorithms.training import TrainParams, TrainStats, clone_state, derive_seed, train_local
from learning.payload import Payload

__all__ = ["FedAvgFT", "FedAvgFTClient"]


#: when the received model is fine-tuned: at every local update, or only for evaluation
FINETUNE_AT = ("update", "evaluation")


class FedAvgFTClient(FedAvgClient):
    """FedAvg's client that also fine-tunes the received model into the device's own."""

    def local_update(self, device: int, state: Any, payload: Payload | None, seed: int) -> LocalResult:
        """Pure local update: payload (global model) -> personal fine-tuned model (state) and
        the FedAvg uplink."""
        if payload is None:
            raise ValueError(f"fedavg_ft device {device} needs a downlink payload")
        if self.params["finetune_at"] == "evaluation":
            return super().local_update(device, state, payload, seed)
        epochs = float(self.params["finetune_epochs"])
        model = self.model()
        model.load_state_dict(payload.tensors)
        x, y = self.data.train(device)
        tuned: TrainStats | None = None
        if epochs > 0:
            hp = dataclasses.replace(self.train_params, local_epochs=epochs)
            tuned = train_local(model, x, y, hp, derive_seed(seed, 1))
        personal = clone_state(model)
        model, stats = self.train_received("fedavg_ft", device, payload, seed)
        uplink = self.reply(clone_state(model), payload)
        runs = (stats,) if tuned is None else (stats, tuned)
        metrics = train_metrics(*runs)
        if tuned is not None:
            metrics.update({"finetune_loss": tuned.loss, "finetune_accuracy": tuned.accuracy})
        flops = self.flops_per_sample * sum(s.samples_processed for s in runs)
        return LocalResult(int(device), personal, uplink, flops, int(y.shape[0]), metrics)


class FedAvgFT(FedAvg):
    """FedAvg + local fine-tuning of the global model (``finetune_epochs``, default 1), at
    every local update or, with ``finetune_at: evaluation``, only before evaluating."""

    name: ClassVar[str] = "fedavg_ft"
    personalized: ClassVar[bool] = True
    extra_params: ClassVar[dict[str, Any]] = {"finetune_epochs": 1.0, "finetune_at": "update"}

    @classmethod
    def check_params(cls, resolved: dict[str, Any]) -> None:
        epochs = resolved["finetune_epochs"]  # a number: resolve_params refuses anything else
        if not epochs >= 0:
            raise ValueError(f"finetune_epochs must be a number >= 0, got {epochs!r}")
        if resolved["finetune_at"] not in FINETUNE_AT:
            raise ValueError(f"finetune_at must be one of {', '.join(FINETUNE_AT)}, got {resolved['finetune_at']!r}")

    def make_client(self) -> Client:
        return FedAvgFTClient(self.data, self.model_config, self.params)

    def commit(self, result: LocalResult) -> None:
        """Keep the device's fine-tuned model (nothing with ``finetune_at: evaluation``)."""
        if self.params["finetune_at"] == "update":
            Algorithm.commit(self, result)

    def device_model(self, device: int) -> nn.Module:
        """The device's fine-tuned model; the current global model before its first update.
        With ``finetune_at: evaluation``, the current global model fine-tuned now."""
        if self.params["finetune_at"] == "evaluation":
            return self._finetuned_global(int(device))
        # A device whose update was started (device_state read, storing FedAvg's None) but
        # never arrived (outage, deadline, battery) still has no fine-tuned model.
        state = self._states.get(int(device))
        if state is not None:
            self._model.load_state_dict(state)
            return self._model
        return self.global_model()

    def _finetuned_global(self, device: int) -> nn.Module:
        model = self.global_model()
        epochs = float(self.params["finetune_epochs"])
        if epochs > 0:
            hp = dataclasses.replace(self.train_params, local_epochs=epochs)
            train_local(model, *self.data.train(device), hp, self.device_seed(device, 3))
        return model

    def evaluate(self, devices: Sequence[int] | None = None) -> EvalResult:
        """Each device's own model (``device_model``) on its own splits."""
        return Algorithm.evaluate(self, devices)

    @classmethod
    def cost_model(cls, model_config: dict[str, Any], params: dict[str, Any], input_shape: tuple[int, int, int],
                   num_classes: int) -> CostModel:
        """FedAvg's bytes; dense FLOPs over ``local_epochs + finetune_epochs`` (FedAvg's
        with ``finetune_at: evaluation``)."""
        resolved = cls.resolve_params(params)
        base = super().cost_model(model_config, params, input_shape, num_classes)
        if resolved["finetune_at"] == "evaluation":
            return base
        epochs = float(TrainParams.from_params(resolved).local_epochs) + float(resolved["finetune_epochs"])
        return dataclasses.replace(base, epochs=epochs)
