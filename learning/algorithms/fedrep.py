"""FedRep (Collins et al., ICML 2021): shared representation, personal head, trained in turn.

Payloads, aggregation and evaluation are FedPer's (body shared and FedAvg'd, head
personal). Only the local update differs: first the head alone for ``head_epochs``
(default 9) with the body frozen, then the body alone for ``local_epochs`` with the head
frozen, each with a fresh optimizer. The default follows the reference implementation
(lgcollins/FedRep, ``--local_ep 10 --local_rep_ep 1``: of 10 local epochs the first
``10 − 1 = 9`` train the head only and the last one the representation): with cosim's
default ``local_epochs: 1`` that is 9 head epochs, then 1 body epoch. Head epochs are
cheap (forward + the head's weight gradient), and counted as such.

FLOPs are counted as executed (convention of ``learning.flops``):
  head pass : the full forward, and backward only the head's weight gradient, because
              nothing below the head requires a gradient: F_h = F_fwd + 2·dim·C;
  body pass : the full forward+backward except the (frozen) head's weight gradient:
              F_b = F_dense − 2·dim·C.
A local update costs F_h·round(head_epochs·n) + F_b·round(local_epochs·n). The cost model
reports ``flops_per_sample = F_dense`` and ``epochs = (head_epochs·F_h + local_epochs·F_b)
/ F_dense`` (dense-equivalent passes), whose product with n is that count.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import nn

from learning.algorithms.base import Client, CostModel
from learning.algorithms.fedper import FedPer, FedPerClient
from learning.algorithms.training import TrainStats, derive_seed, train_local
from learning.flops import vit_flops_per_sample
from learning.models import resolve_model_config

__all__ = ["FedRep", "FedRepClient", "fedrep_pass_flops"]


def fedrep_pass_flops(model_config: dict[str, Any], input_shape: tuple[int, int, int],
                      num_classes: int) -> tuple[int, int]:
    """(F_h, F_b): FLOPs of one sample in a head pass and in a body pass [FLOP] (module docstring)."""
    dim = int(resolve_model_config(model_config)["dim"])
    head_grad = 2 * dim * int(num_classes)
    forward = vit_flops_per_sample(model_config, input_shape, num_classes, backward=False)
    dense = vit_flops_per_sample(model_config, input_shape, num_classes)
    return forward + head_grad, dense - head_grad


def _freeze(model: nn.Module, trainable: set[str]) -> None:
    for name, p in model.named_parameters():
        p.requires_grad_(name in trainable)


class FedRepClient(FedPerClient):
    """Head epochs (body frozen), then body epochs (head frozen)."""

    def train(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int) -> tuple[list[TrainStats], int]:
        """Train head then body in place; returns (body stats, head stats) and the FLOPs executed."""
        shared = {n for n, _ in model.named_parameters()} - set(self.personal_names())
        head_hp = dataclasses.replace(self.train_params, local_epochs=float(self.params["head_epochs"]))
        f_head, f_body = fedrep_pass_flops(self.model_config, self.input_shape, self.num_classes)
        try:
            _freeze(model, set(self.personal_names()))
            head = train_local(model, x, y, head_hp, derive_seed(seed, 1))
            _freeze(model, shared)
            body = train_local(model, x, y, self.train_params, seed)
        finally:
            _freeze(model, shared | set(self.personal_names()))  # the working model is reused
        return [body, head], f_head * head.samples_processed + f_body * body.samples_processed


class FedRep(FedPer):
    """FedPer's split with FedRep's alternating local update (parameter ``head_epochs``)."""

    name: ClassVar[str] = "fedrep"
    extra_params: ClassVar[dict[str, Any]] = {"head_epochs": 9.0}

    @classmethod
    def check_params(cls, resolved: dict[str, Any]) -> None:
        if not float(resolved["head_epochs"]) > 0:
            raise ValueError(f"fedrep parameter head_epochs must be > 0, got {resolved['head_epochs']}")

    def make_client(self) -> Client:
        return FedRepClient(self.data, self.model_config, self.params)

    @classmethod
    def cost_model(cls, model_config: dict[str, Any], params: dict[str, Any], input_shape: tuple[int, int, int],
                   num_classes: int) -> CostModel:
        """FedPer's bytes; FLOPs as executed (dense-equivalent epochs, module docstring)."""
        resolved = cls.resolve_params(params)
        base = super().cost_model(model_config, resolved, input_shape, num_classes)
        f_head, f_body = fedrep_pass_flops(model_config, input_shape, num_classes)
        per_n = float(resolved["head_epochs"]) * f_head + float(resolved["local_epochs"]) * f_body
        return dataclasses.replace(base, epochs=per_n / base.flops_per_sample)
