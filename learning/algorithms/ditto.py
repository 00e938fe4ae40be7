"""Ditto (Li et al., ICML 2021): a FedAvg global model plus a regularised personal model.

downlink  : the global model w, dense in ``downlink_encoding`` (fp32 by default) (FedAvg's).
client    : (1) trains a copy of w for ``local_epochs`` (plain FedAvg local training, seed
            ``seed``) and uploads it (``uplink_encoding``); (2) trains its personal model v (device state)
            for ``local_epochs`` on ``CE(v) + λ/2 ‖v − w‖²`` with w the RECEIVED global
            model (seed ``derive_seed(seed, 1)``), and keeps v.
aggregate : FedAvg (sample-weighted mean of the uploaded global models).
evaluate  : each device's personal model v on its own test split (its initial v, drawn
            from ``device_seed(d)``, until it has trained); no global model is reported
            (the contract's ``personalized`` rule).
FLOPs     : both trainings, 2 × dense per sample per epoch; the cost model says
            ``flops_per_sample = F_dense`` and ``epochs = 2·local_epochs``.
Device memory: one personal model (the state dict, 4 B per parameter).
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from learning.algorithms.base import Algorithm, Client, CostModel, LocalResult
from learning.algorithms.fedavg import FedAvg, FedAvgClient
from learning.algorithms.fedprox import proximal_loss, train_metrics
from learning.algorithms.training import clone_state, derive_seed, evaluate_accuracy, train_local
from learning.payload import Payload

__all__ = ["Ditto", "DittoClient"]


class DittoClient(FedAvgClient):
    """Global-model training (uploaded) then personal-model training (kept)."""

    def local_update(self, device: int, state: Any, payload: Payload | None, seed: int) -> LocalResult:
        """Pure local update: (global w, personal v) -> (uplink w', new v)."""
        if payload is None or state is None:
            raise ValueError(f"ditto device {device} needs a downlink payload and its personal model")
        model = self.model()
        x, y = self.data.train(device)
        model.load_state_dict(payload.tensors)
        global_stats = train_local(model, x, y, self.train_params, seed)
        uplink = self.reply(clone_state(model), payload)
        model.load_state_dict(state)
        reg = proximal_loss(model, payload.tensors, float(self.params["lam"]))
        personal_stats = train_local(model, x, y, self.train_params, derive_seed(seed, 1), extra_loss=reg)
        processed = global_stats.samples_processed + personal_stats.samples_processed
        metrics = train_metrics(personal_stats, global_stats)
        metrics["global_train_loss"] = global_stats.loss
        return LocalResult(int(device), clone_state(model), uplink, self.flops_per_sample * processed,
                           int(y.shape[0]), metrics)


class Ditto(FedAvg):
    """FedAvg global model + per-device personal models pulled towards it (parameter ``lam``)."""

    name: ClassVar[str] = "ditto"
    stale_updates: ClassVar[bool] = False  # not yet checked in the asynchronous server modes
    personalized: ClassVar[bool] = True
    extra_params: ClassVar[dict[str, Any]] = {"lam": 0.1}

    @classmethod
    def check_params(cls, resolved: dict[str, Any]) -> None:
        if not float(resolved["lam"]) >= 0:
            raise ValueError(f"ditto parameter lam must be >= 0, got {resolved['lam']}")

    def make_client(self) -> Client:
        return DittoClient(self.data, self.model_config, self.params)

    def initial_state(self, device: int) -> Any:
        """The personal model's initial state dict, drawn from ``device_seed(device)``."""
        return {k: v.detach() for k, v in self.new_model(seed=self.device_seed(device)).state_dict().items()}

    def commit(self, result: LocalResult) -> None:
        """Store the device's personal model."""
        Algorithm.commit(self, result)

    # Personal models are what Ditto is judged on: the base evaluation, not FedAvg's global one.
    evaluate = Algorithm.evaluate

    def device_model(self, device: int) -> nn.Module:
        """The device's personal model (evaluated; the global one is not reported)."""
        self._model.load_state_dict(self._states[device] if device in self._states else self.initial_state(device))
        return self._model

    def global_accuracy(self) -> float:
        """The FedAvg global model on ``fd.global_test()`` (not part of ``evaluate``)."""
        self._model.load_state_dict(self.global_state)
        return evaluate_accuracy(self._model, *self.data.global_test(), batch_size=self.train_params.eval_batch_size)

    @classmethod
    def cost_model(cls, model_config: dict[str, Any], params: dict[str, Any], input_shape: tuple[int, int, int],
                   num_classes: int) -> CostModel:
        """FedAvg's bytes; two dense trainings per update."""
        base = super().cost_model(model_config, params, input_shape, num_classes)
        return CostModel(base.downlink_bytes, base.uplink_bytes, base.flops_per_sample, 2.0 * base.epochs)
