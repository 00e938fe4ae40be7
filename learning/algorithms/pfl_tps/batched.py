"""Batched plan of the PFL-TPS local update (see ``learning.execution.batched`` and
``learning.algorithms.pfl_tps.client``): the same update, written functionally for ``vmap``.

* The masked FFL layers run as ``_VmapMaskedLinear``: ``pruning.masked_weight`` (the
  value ``W ⊙ 1[|W| > t]`` with DST's or the straight-through gradients, written with
  plain differentiable operations), the same function the sequential client runs, since
  a legacy ``autograd.Function`` cannot run under ``torch.func`` transforms.
* The linearised SAL ``θ = θ0 + J (e − ê) [+ r]`` is computed per device inside the vmapped
  forward; θ0, J, ê are per-device constants; the embedding e (and the personal residual
  r when ``sal_residual`` is on) are trained.
* Near-empty layers of the received thresholds are reset before training. Per step, FLOPs
  and the time-averaged density are counted from the mask density of every still-training
  device before its forward; after each optimizer step thresholds are clamped to >= 0
  (``prune_clamp`` only) and those of a layer keeping at most ``prune_reset_density`` of
  its weights are reset to 0 — the same rules as the sequential client, vectorised over
  the device axis.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import torch
import torch.nn.functional as F

from learning.algorithms.base import LocalResult
from learning.algorithms.pfl_tps.client import PFLTPSClient
from learning.algorithms.pfl_tps.pruning import ThresholdMaskedLinear, masked_weight
from learning.algorithms.pfl_tps.wire import device_uplink, received_tensors, threshold_key
from learning.execution.batched_vit import stacked_vit_forward, supports_stacked
from learning.execution.plan import BatchedPlan, DeviceInit, DeviceStats, Task
from learning.flops import vit_flops_per_sample

__all__ = ["PFLTPSPlan"]

EMBEDDING = "_embedding"  # name of the trainable embedding among the stacked tensors
RESIDUAL = "_sal_residual"  # name of the personal SAL residual among the stacked tensors


def _masked(threshold: torch.Tensor, gradient: str, _name: str, weight: torch.Tensor) -> torch.Tensor:
    return masked_weight(weight, threshold, gradient)


class _VmapMaskedLinear(ThresholdMaskedLinear):
    """``ThresholdMaskedLinear`` with a ``vmap``-compatible forward (same parameters)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, masked_weight(self.weight, self.threshold, self.gradient), self.bias)


@functools.lru_cache(maxsize=65536)
def _flops(model_config: tuple[tuple[str, Any], ...], input_shape: tuple[int, int, int], num_classes: int,
           density: tuple[float, ...] | None) -> int:
    return int(vit_flops_per_sample(dict(model_config), input_shape, num_classes,
                                    ffl_density=list(density) if density is not None else None))


class PFLTPSPlan(BatchedPlan):
    """Functional PFL-TPS local update (all three SAL modes, pruning on or off)."""

    counts_step_flops = True

    def __init__(self, client: PFLTPSClient) -> None:  # type: ignore[override]
        super().__init__(client)
        self.cfg = client.cfg
        net = client.model()
        self.layer_names: list[str] = list(net.layer_names)
        self.thr_names = [threshold_key(n) for n in self.layer_names]
        self.spec = net.spec
        self.linear = bool(net.linear_sal)
        self.residual = bool(net.has_residual)
        self.has_extra_loss = bool(self.layer_names)
        self.vit_names = [n for n, _ in net.vit.named_parameters()]
        sal = set(self.spec.names)
        self.train_names = [n for n in self.vit_names if not (self.linear and n in sal)]
        self.state_names = [n for n in self.vit_names
                            if n not in set(self.thr_names) and not (self.cfg.hypernetwork_enabled and n in sal)]
        self.twin = copy.deepcopy(net.vit)
        for mod in self.twin.modules():
            if isinstance(mod, ThresholdMaskedLinear):
                mod.__class__ = _VmapMaskedLinear
        self.twin.train()
        self.stacked = supports_stacked(self.twin)
        self._flops_key = (tuple(sorted(client.model_config.items())), tuple(client.input_shape),
                           int(client.num_classes))

    # ----------------------------------------------------------------- setup
    def prepare(self, task: Task) -> DeviceInit:
        device, state, payload, _ = task
        cfg = self.cfg
        tensors = received_tensors(cfg, device, state, payload)
        full: dict[str, torch.Tensor] = dict(state["params"])
        thr = ({n: tensors[threshold_key(n)] for n in self.layer_names} if cfg.shares_thresholds
               else state["thresholds"])
        full.update({threshold_key(n): thr[n] for n in self.layer_names})
        if cfg.hypernetwork_enabled:
            full.update(self.spec.split(tensors["sal_theta"].detach().to(torch.float32)))
        params = {n: full[n].detach().to(torch.float32).clone() for n in self.train_names}
        consts: dict[str, torch.Tensor] = {}
        if self.linear:
            params[EMBEDDING] = state["embedding"].detach().to(torch.float32).clone()
            if self.residual:
                params[RESIDUAL] = state["sal_residual"].detach().to(torch.float32).clone()
            consts = {"theta0": tensors["sal_theta"], "jac_t": tensors["sal_jacobian"].t(),
                      "anchor": tensors["embedding_anchor"]}
            # J transposed, contiguous (d, n_sal): both products with it stream rows (see linear_theta).
            consts = {k: v.detach().to(torch.float32).contiguous() for k, v in consts.items()}
        x, y = self.client.data.train(int(device))
        one = {n: params[n].unsqueeze(0) for n in self._mask_names()}  # views: resets land in params
        load_resets = int(self._reset(one, 1, clamp=False)[0]) if self.layer_names else 0
        start = self._densities(one, 1, "density")
        return DeviceInit(params, consts, x, y, {"full": full, "density_start": start[0], "load_resets": load_resets})

    def hyper(self, name: str) -> tuple[float, float]:
        if name == EMBEDDING:
            return self.cfg.embedding_lr, 0.0
        if name in self.thr_names:
            return self.hp.lr, 0.0
        return self.hp.lr, self.hp.weight_decay

    def linear_theta(self, params: dict[str, torch.Tensor], consts: dict[str, torch.Tensor]) -> torch.Tensor:
        """The linearised SAL θ0 + J (e − ê) [+ r]: (n_sal,) for one device, or (m, n_sal)
        from stacked tensors (one ``baddbmm``, θ0 added inside it).

        J is held transposed (``jac_t``, (d, n_sal) per device): (e − ê)ᵀ Jᵀ and, in the
        backward pass, Jᵀ's product with the gradient of θ both read it row by row. On
        urban_50dev's PFL-TPS (n_sal = 33,280, d = 16; 25 devices stacked hold 53 MB of
        Jacobians, read twice a step) the forward and backward products took 30.6 ms of CPU
        time per step with J (n_sal, d) as received (``J @ shift``) and 5.9 ms this way
        (microbenchmark, 1 thread, under load)."""
        shift = (params[EMBEDDING] - consts["anchor"]).unsqueeze(-2)  # (..., 1, d)
        if shift.dim() == 3:  # stacked
            theta = torch.baddbmm(consts["theta0"].unsqueeze(1), shift, consts["jac_t"]).squeeze(1)
        else:
            theta = consts["theta0"] + (shift @ consts["jac_t"]).squeeze(-2)
        return theta + params[RESIDUAL] if self.residual else theta

    # ----------------------------------------------------------------- per device (vmapped)
    def forward(self, params: dict[str, torch.Tensor], consts: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        vit = {n: params[n] for n in self.train_names}
        if self.linear:
            vit.update(self.spec.split(self.linear_theta(params, consts)))
        return torch.func.functional_call(self.twin, vit, (x,))

    def forward_stacked(self, params: dict[str, torch.Tensor], consts: dict[str, torch.Tensor],
                        x: torch.Tensor) -> torch.Tensor:
        vit = {n: params[n] for n in self.train_names}
        if self.linear:
            theta = self.linear_theta(params, consts)
            m = theta.shape[0]
            parts = theta.split(self.spec.numels, dim=1)
            vit.update({n: p.reshape(m, *s) for n, p, s in zip(self.spec.names, parts, self.spec.shapes)})
        hooks = {f"{n}.weight": functools.partial(_masked, vit[threshold_key(n)], self.cfg.prune_gradient)
                 for n in self.layer_names}
        return stacked_vit_forward(self.twin, vit, x, hooks)  # type: ignore[arg-type]

    def extra_loss(self, params: dict[str, torch.Tensor], consts: dict[str, torch.Tensor]) -> torch.Tensor:
        total = torch.zeros(())
        for name in self.thr_names:
            total = total + torch.exp(-params[name]).sum()
        return self.cfg.prune_lambda * total

    # ----------------------------------------------------------------- per step (stacked)
    def _mask_names(self) -> list[str]:
        return [f"{n}.weight" for n in self.layer_names] + self.thr_names

    @torch.no_grad()
    def _densities(self, params: dict[str, torch.Tensor], m: int, mode: str) -> list[list[float]]:
        """Per device of ``[0, m)``, each layer's density (``"density"``, ``"rows"`` or ``"dense"``)."""
        if mode == "dense":
            return [[1.0] * len(self.layer_names) for _ in range(m)]
        cols = []
        for name in self.layer_names:
            keep = params[f"{name}.weight"][:m].abs() > params[threshold_key(name)][:m].unsqueeze(-1)
            dens = keep.float().mean(dim=(1, 2)) if mode == "density" else keep.any(dim=2).float().mean(dim=1)
            cols.append(dens.tolist())
        return [list(row) for row in zip(*cols)] if cols else [[] for _ in range(m)]

    def step_flops(self, params: dict[str, torch.Tensor], m: int) -> list[int]:
        if not self.layer_names:
            return [_flops(*self._flops_key, None)] * m
        rows = self._densities(params, m, self.cfg.pruning_flops)
        return [_flops(*self._flops_key, tuple(r)) for r in rows]

    def step_density(self, params: dict[str, torch.Tensor], m: int) -> list[float] | None:
        if not self.layer_names:
            return None
        return [sum(row) / len(row) for row in self._densities(params, m, "density")]

    @torch.no_grad()
    def post_step(self, params: dict[str, torch.Tensor], m: int) -> torch.Tensor | None:
        if not self.layer_names:
            return None
        return self._reset(params, m, self.cfg.prune_clamp)

    @torch.no_grad()
    def _reset(self, params: dict[str, torch.Tensor], m: int, clamp: bool) -> torch.Tensor:
        """In place, devices ``[0, m)``: clamp thresholds to >= 0 (``clamp``), then reset the
        thresholds of every layer keeping <= ``prune_reset_density``; resets per device (m,)."""
        resets = torch.zeros(m, dtype=torch.int64, device=params[self.thr_names[0]].device)
        for name in self.layer_names:
            t = params[threshold_key(name)][:m]
            if clamp:
                t.clamp_(min=0.0)
            dens = (params[f"{name}.weight"][:m].abs() > t.unsqueeze(-1)).float().mean(dim=(1, 2))
            reset = dens.double() <= self.cfg.prune_reset_density
            t.masked_fill_(reset.unsqueeze(-1), 0.0)
            resets += reset.to(torch.int64)
        return resets

    # ----------------------------------------------------------------- result
    def finish(self, task: Task, init: DeviceInit, final: dict[str, torch.Tensor], stats: DeviceStats) -> LocalResult:
        device, _, payload, _ = task
        cfg = self.cfg
        merged = {**init.extra["full"], **final}
        new_state: dict[str, Any] = {
            "params": {n: merged[n].clone() for n in self.state_names},
            "thresholds": {n: merged[threshold_key(n)].clone() for n in self.layer_names},
        }
        if self.linear:
            new_state["embedding"] = final[EMBEDDING].clone()
            if self.residual:
                new_state["sal_residual"] = final[RESIDUAL].clone()
        delta = None
        if cfg.hypernetwork_enabled:  # the SAL the device holds after training (kept, never sent)
            if self.linear:
                sal = self.linear_theta(final, init.consts)
            else:
                sal = self.spec.flatten({n: merged[n] for n in self.spec.names})
            new_state["sal"] = sal.detach().clone()
            if cfg.sal_update == "delta":
                delta = sal - payload.tensors["sal_theta"]  # type: ignore[union-attr]
        round_idx = int(payload.config.get("round", 0)) if payload is not None else 0
        uplink = device_uplink(cfg, new_state, delta, round_idx)
        metrics = {"train_loss": stats.loss, "train_accuracy": stats.accuracy,
                   "samples_processed": float(stats.samples_processed)}
        if self.layer_names:
            start = init.extra["density_start"]
            end = self._densities({n: merged[n].unsqueeze(0) for n in self._mask_names()}, 1, "density")[0]
            mean = stats.density_mean if stats.density_mean is not None else sum(start) / len(start)
            metrics.update({"ffl_density_start": sum(start) / len(start), "ffl_density": sum(end) / len(end),
                            "ffl_density_mean": mean,
                            "threshold_resets": float(stats.resets + init.extra["load_resets"])})
        return LocalResult(int(device), new_state, uplink, int(stats.flops or 0), int(init.y.shape[0]), metrics)
