"""Local-only training: every device trains its own model, nothing is communicated.

Device state = its personal model's ``state_dict`` (created lazily from a seed derived
from (seed, device)); downlink and uplink are None. The usual lower bound on
collaboration and upper bound on personalisation for PFL comparisons.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from learning.algorithms.base import Algorithm, Client, CostModel, LocalResult
from learning.algorithms.training import TrainParams, clone_state, train_local
from learning.flops import vit_flops_per_sample
from learning.payload import Payload

__all__ = ["LocalOnly", "LocalClient"]


class LocalClient(Client):
    """Trains the device's own model (passed in as ``state``)."""

    def local_update(self, device: int, state: Any, payload: Payload | None, seed: int) -> LocalResult:
        """Pure local update: personal state_dict -> new personal state_dict, no uplink."""
        if state is None:
            raise ValueError(f"local device {device} needs its state (a state_dict)")
        model = self.model()
        model.load_state_dict(state)
        x, y = self.data.train(device)
        stats = train_local(model, x, y, self.train_params, seed)
        return LocalResult(
            device=int(device),
            state=clone_state(model),
            uplink=None,
            flops=self.flops_per_sample * stats.samples_processed,
            samples=int(y.shape[0]),
            metrics=stats.metrics(),
        )


class LocalOnly(Algorithm):
    """Each device trains its personal model alone."""

    name: ClassVar[str] = "local"
    communicates: ClassVar[bool] = False
    personalized: ClassVar[bool] = True

    def __init__(self, data: Any, model_config: dict[str, Any], params: dict[str, Any], seed: int) -> None:
        super().__init__(data, model_config, params, seed)
        self._model = self.new_model(seed=0)

    def make_client(self) -> Client:
        return LocalClient(self.data, self.model_config, self.params)

    def initial_state(self, device: int) -> Any:
        """The personal model's initial state_dict, drawn from ``device_seed(device)``."""
        model = self.new_model(seed=self.device_seed(device))
        return {k: v.detach() for k, v in model.state_dict().items()}

    def device_model(self, device: int) -> nn.Module:
        """The device's own model (untrained devices: their initial model, not stored)."""
        self._model.load_state_dict(self._states[device] if device in self._states else self.initial_state(device))
        return self._model

    @classmethod
    def cost_model(cls, model_config: dict[str, Any], params: dict[str, Any], input_shape: tuple[int, int, int],
                   num_classes: int) -> CostModel:
        """No bytes; dense FLOPs."""
        resolved = cls.resolve_params(params)
        return CostModel(
            downlink_bytes=0,
            uplink_bytes=0,
            flops_per_sample=vit_flops_per_sample(model_config, input_shape, num_classes),
            epochs=float(TrainParams.from_params(resolved).local_epochs),
        )
