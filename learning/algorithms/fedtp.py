"""FedTP (Li et al., IEEE TNNLS 2023): hypernetwork-generated self-attention, FedAvg for the rest.

Server state: the global values of every non-SAL parameter ("rest": embed, norm, FFL,
head) and a ``HyperServer`` (``learning.algorithms.pfedhn``) whose hypernetwork
(embedding → MLP trunk → one linear head per SAL tensor; ``pfl_tps.hypernetwork``)
generates each device's attention QKV projection weight of every block (``*.qkv.weight``),
as the reference ``ViTHyper`` does (zhyczy/FedTP models/Hypernetworks.py: one
``to_qkv_value_list`` head per layer, one hidden layer, embedding width 128); the QKV
bias and the output projection are FedAvg'd with the rest.

downlink  : rest (global) + SAL_i = HN(e_i), dense in ``downlink_encoding`` (fp32 by default), all under the parameter names.
client    : trains the whole model ``local_epochs``; uplinks the trained rest under the
            parameter names and ΔSAL_i = SAL_sent − SAL_trained under ``"delta." + name``
            (``uplink_encoding``). Devices keep nothing.
aggregate : rest ← sample-weighted mean of the uplinked rests (FedAvg); the hypernetwork
            takes one step with the VJPs of the ΔSAL_i, φ's weighted by client data
            share n_i/n (``HyperServer.step``: clipped, SGD).
evaluate  : rest + HN(e_i) on device i's test split; no global model.
FLOPs     : dense (the device trains the full model).
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import torch
from torch import nn

from learning.algorithms.base import Algorithm, Client, CostModel, LocalResult
from learning.algorithms.fedavg import FedAvg, FedAvgClient, weighted_average
from learning.algorithms.fedper import meta_state_dict
from learning.algorithms.fedprox import train_metrics
from learning.algorithms.pfedhn import HN_PARAMS, HyperServer, check_hn_params, join_by_embedding_fit, make_hyper_server
from learning.algorithms.pfl_tps.hypernetwork import SalSpec
from learning.algorithms.training import TrainParams
from learning.flops import vit_flops_per_sample
from learning.models import param_groups
from learning.payload import Payload, dense_payload

__all__ = ["FedTP", "FedTPClient", "DELTA_PREFIX", "fedtp_uplink"]

#: name prefix of the ΔSAL tensors in the uplink.
DELTA_PREFIX = "delta."

#: FedTP's hypernetwork: trunk shallower than pFedHN's (one hidden layer), embedding width
#: 128 (the reference's default), otherwise pFedHN's server settings.
FEDTP_HN_PARAMS: dict[str, Any] = {**HN_PARAMS, "hn_layers": 2, "embedding_dim": 128}


def generated_names(model: nn.Module) -> list[str]:
    """The parameters FedTP's hypernetwork generates: each block's attention QKV weight."""
    return [n for n in param_groups(model)["sal"] if n.endswith("qkv.weight")]


def fedtp_uplink(trained: dict[str, torch.Tensor], sent: dict[str, torch.Tensor], sal: Sequence[str],
                 round_idx: int, encoding: str = "fp32") -> Payload:
    """Uplink: trained non-SAL tensors + ``delta.<sal>`` = sent − trained, in ``encoding``."""
    return _uplink(trained, {k: (sent[k] - trained[k]).detach().clone() for k in sal}, round_idx, encoding)


def _uplink(trained: dict[str, torch.Tensor], deltas: dict[str, torch.Tensor], round_idx: int,
            encoding: str) -> Payload:
    """The uplink of ``fedtp_uplink`` from its SAL deltas (name -> sent − trained)."""
    tensors = {k: v.detach().clone() for k, v in trained.items() if k not in deltas}
    tensors.update({DELTA_PREFIX + k: d for k, d in deltas.items()})
    return dense_payload(tensors, encoding, {"round": int(round_idx)})


class FedTPClient(FedAvgClient):
    """Trains rest + generated SAL; uplinks the rest and ΔSAL."""

    def batched_plan(self) -> Any:
        """The batched executor's plan of this update (``fedtp_batched.FedTPPlan``), or None
        for a subclass (its update may differ; it must provide its own plan to be batched)."""
        if type(self) is not FedTPClient:
            return None
        from learning.algorithms.fedtp_batched import FedTPPlan  # lazy: torch.func only when batched

        return FedTPPlan(self)

    def local_update(self, device: int, state: Any, payload: Payload | None, seed: int) -> LocalResult:
        """Pure local update: (rest, SAL_i) -> (rest', ΔSAL_i)."""
        model, stats = self.train_received("fedtp", device, payload, seed)
        uplink = fedtp_uplink(model.state_dict(), payload.tensors, generated_names(model),
                              int(payload.config.get("round", 0)), self.params["uplink_encoding"])
        return LocalResult(int(device), None, uplink, self.flops_per_sample * stats.samples_processed,
                           self.data.num_train(device), train_metrics(stats))


class FedTP(FedAvg):
    """FedAvg of the non-SAL parameters + a hypernetwork for each device's SAL."""

    name: ClassVar[str] = "fedtp"
    stale_updates: ClassVar[bool] = False  # its aggregate is not FedAvg's: no stale-update rule
    personalized: ClassVar[bool] = True
    extra_params: ClassVar[dict[str, Any]] = dict(FEDTP_HN_PARAMS)

    def __init__(self, data: Any, model_config: dict[str, Any], params: dict[str, Any], seed: int) -> None:
        super().__init__(data, model_config, params, seed)
        self.sal_names = generated_names(self._model)
        self.global_state = {k: v for k, v in self.global_state.items() if k not in set(self.sal_names)}
        shapes = dict(self._model.named_parameters())
        spec = SalSpec(tuple(self.sal_names), tuple(tuple(shapes[n].shape) for n in self.sal_names))
        self.server: HyperServer = make_hyper_server(self, spec, None)

    @classmethod
    def check_params(cls, resolved: dict[str, Any]) -> None:
        check_hn_params(cls.name, resolved)

    def make_client(self) -> Client:
        return FedTPClient(self.data, self.model_config, self.params)

    def downlink(self, device: int, round_idx: int) -> Payload | None:
        """Global rest + HN(e_i) SAL, dense in ``downlink_encoding``."""
        return self.send({**self.global_state, **self.server.generate(device)}, round_idx)

    def aggregate(self, uplinks: dict[int, tuple[Payload, int]], round_idx: int) -> None:
        """FedAvg of the rest; one hypernetwork step from the ΔSAL's (data-share weighted)."""
        items = [(int(d), p, int(n)) for d, (p, n) in uplinks.items() if n > 0]
        if not items:
            return
        self.global_state = weighted_average([{k: p.tensors[k] for k in self.global_state} for _, p, _ in items],
                                             [n for _, _, n in items])
        self.server.step([(d, {k: p.tensors[DELTA_PREFIX + k] for k in self.sal_names}, float(n))
                          for d, p, n in items])

    # Judged on personal models: the base evaluation, not FedAvg's global one.
    evaluate = Algorithm.evaluate

    def join_new_device(self, device: int, round_idx: int, seed: int) -> None:
        """Fit the new device's embedding with φ and the global rest frozen (``join_by_embedding_fit``)."""
        join_by_embedding_fit(self, self.server, device, round_idx, seed,
                              lambda uplink: {k: uplink.tensors[DELTA_PREFIX + k] for k in self.sal_names})

    def device_model(self, device: int) -> nn.Module:
        """Global rest + HN(e_device) SAL (loaded into the server's evaluation model)."""
        self._model.load_state_dict({**self.global_state, **self.server.generate(device)})
        return self._model

    def global_model(self) -> nn.Module:
        """Not defined: every device has its own SAL."""
        raise NotImplementedError("fedtp has no global model (generated SAL per device)")

    @classmethod
    def cost_model(cls, model_config: dict[str, Any], params: dict[str, Any], input_shape: tuple[int, int, int],
                   num_classes: int) -> CostModel:
        """Exact payload sizes from meta tensors; dense FLOPs."""
        resolved = cls.resolve_params(params)
        model, state = meta_state_dict(model_config, input_shape, num_classes)
        sal = generated_names(model)
        down = Payload(dict(state), resolved["downlink_encoding"], {"round": 0}).wire_bytes
        # A delta has its tensor's shape: no arithmetic on meta tensors (it imports torch._dynamo).
        up = _uplink(state, {k: state[k] for k in sal}, 0, resolved["uplink_encoding"]).wire_bytes
        return CostModel(down, up, vit_flops_per_sample(model_config, input_shape, num_classes),
                         float(TrainParams.from_params(resolved).local_epochs))

