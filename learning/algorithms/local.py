"""Local-only training: every device trains its own model, nothing is communicated.

Device state = its personal model's ``state_dict`` (created lazily from a seed derived
from (seed, device)); downlink and uplink are None. The usual lower bound on
collaboration and upper bound on personalisation for PFL comparisons.
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

from learning.algorithms.base import Algorithm, Client, CostModel, EvalResult, LocalResult, mean_finite
from learning.algorithms.training import TrainParams, clone_state, evaluate_accuracy, train_local
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

    def evaluate(self, devices: Sequence[int] | None = None) -> EvalResult:
        """Each device's own model on its own test split (untrained devices: their initial
        model, built without being stored)."""
        bs = self.train_params.eval_batch_size
        per_device: dict[int, float] = {}
        for d in self._devices(devices):
            state = self._states[d] if d in self._states else self.initial_state(d)
            self._model.load_state_dict(state)
            per_device[d] = evaluate_accuracy(self._model, *self.data.test(d), batch_size=bs)
        return EvalResult(per_device, None, mean_finite(list(per_device.values())))

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
