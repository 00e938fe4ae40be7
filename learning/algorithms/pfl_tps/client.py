"""PFL-TPS client half: the device's network and its pure local update (payloads: ``wire``).

The device network (``PFLTPSNet``) is a ViT whose FFL linear layers are
``ThresholdMaskedLinear`` (pruning on) and whose SAL comes from one of three sources:

* ``"linear"`` (hypernetwork on, ``sal_update="embedding"``): the linearised SAL
  ``θ(e) = θ_i + J_i (e − ê_i) + r_i`` computed with torch ops from the downlinked θ_i, J_i
  and anchor ê_i (the server's copy of e_i), so autograd flows into the trainable
  embedding e; the ViT's own SAL parameters are unused (frozen). r_i (``sal_residual``,
  on by default) is a personal offset the device trains and keeps, never sent: the
  hypernetwork proposes, the device refines. Without it the SAL can move only inside
  the d-dimensional span of J_i.
* ``"param"`` with θ from the downlink (``sal_update="delta"``): SAL trained directly.
* ``"param"`` with θ from the device state (hypernetwork off): SAL personal, never sent.

Local update: load the state (personal parameters, thresholds, embedding), replace the
thresholds by the downlinked server mean (devices continue from the mean), train with
a fresh optimizer (none of its state is kept across rounds) whose parameter groups are
personal weights and r_i (``lr``, ``weight_decay``), thresholds (``lr``, no decay) and the
embedding (``embedding_lr``, no decay). The FFL weights get DST's masked-layer gradient
(``prune_gradient: dst``) or the straight-through one (``ste``, DPF-style); see
``pruning``. A near-empty layer (<= ``prune_reset_density`` kept) has its thresholds reset
to 0 when loaded and after every step; ``prune_clamp`` also clamps thresholds to >= 0
after every step (off, as in DST). FLOPs are counted per step: every training forward adds
``batch × vit_flops_per_sample(ffl_density at that step)``; the linearisation's own
O(n_sal·d) work per step (< 1 % of a batch) is not counted. Metrics: ``ffl_density_start``
(first forward), ``ffl_density`` (after training), ``ffl_density_mean`` (mean over the
training forwards: the time average that sets the compute cost) and ``threshold_resets``.
"""

from __future__ import annotations

import functools

from dataclasses import MISSING, dataclass, fields
from typing import Any, Callable

import torch
from torch import nn

from learning.algorithms.base import Client, LocalResult
from learning.algorithms.pfl_tps.hypernetwork import SalSpec
from learning.algorithms.pfl_tps.pruning import (
    DENSITY_MODES,
    ThresholdMaskedLinear,
    GRADIENTS,
    ffl_densities,
    masked_layers,
    replace_ffl_linears,
    reset_thresholds_,
    sparsity_penalty,
)
from learning.algorithms.pfl_tps.wire import device_uplink, received_tensors, threshold_key
from learning.algorithms.training import TrainParams, train_local
from learning.flops import vit_flops_per_sample
from learning.models import build_model
from learning.optim import Optimizer
from learning.payload import DENSE_ENCODINGS, Payload

__all__ = ["PFLTPSConfig", "PFLTPSNet", "PFLTPSClient", "build_net"]

SAL_UPDATES: tuple[str, ...] = ("embedding", "delta")


@dataclass(frozen=True)
class PFLTPSConfig:
    """PFL-TPS hyper-parameters (validated; see ``PFLTPS.extra_params`` for defaults)."""

    pruning_enabled: bool
    prune_lambda: float
    prune_reset_density: float
    pruning_flops: str
    hypernetwork_enabled: bool
    sal_update: str
    embedding_dim: int
    embedding_init_std: float
    embedding_lr: float
    hn_hidden: int
    hn_layers: int
    hn_lr: float
    hn_momentum: float
    hn_weight_decay: float
    hn_grad_clip: float
    downlink_encoding: str
    uplink_encoding: str = "fp32"
    sal_residual: bool = True
    prune_gradient: str = "dst"
    prune_clamp: bool = False
    prune_share_thresholds: bool = True

    def __post_init__(self) -> None:
        if self.pruning_flops not in DENSITY_MODES:
            raise ValueError(f"unknown pruning_flops {self.pruning_flops!r}; allowed: {list(DENSITY_MODES)}")
        if self.prune_gradient not in GRADIENTS:
            raise ValueError(f"unknown prune_gradient {self.prune_gradient!r}; allowed: {list(GRADIENTS)}")
        for key in ("prune_clamp", "prune_share_thresholds"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"{key} must be true or false, got {getattr(self, key)!r}")
        if self.sal_update not in SAL_UPDATES:
            raise ValueError(f"unknown sal_update {self.sal_update!r}; allowed: {list(SAL_UPDATES)}")
        for key in ("downlink_encoding", "uplink_encoding"):
            if getattr(self, key) not in DENSE_ENCODINGS:
                raise ValueError(f"{key} must be one of {list(DENSE_ENCODINGS)}, got {getattr(self, key)!r}")
        if self.prune_lambda < 0 or not 0 <= self.prune_reset_density < 1:
            raise ValueError(f"need prune_lambda >= 0 and prune_reset_density in [0, 1), got "
                             f"{self.prune_lambda}, {self.prune_reset_density}")
        for key in ("embedding_dim", "hn_hidden", "hn_layers"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        for key in ("embedding_lr", "hn_lr", "hn_grad_clip"):
            if not float(getattr(self, key)) > 0:
                raise ValueError(f"{key} must be > 0, got {getattr(self, key)}")
        if self.embedding_init_std < 0 or self.hn_weight_decay < 0 or not 0 <= self.hn_momentum < 1:
            raise ValueError("need embedding_init_std >= 0, hn_weight_decay >= 0, hn_momentum in [0, 1)")

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "PFLTPSConfig":
        """Build from a resolved params dict (other keys ignored; fields with a default may be absent)."""
        return cls(**{f.name: params[f.name] for f in fields(cls) if f.name in params or f.default is MISSING})

    @property
    def linear_sal(self) -> bool:
        """True when the device trains its embedding through the linearised SAL."""
        return self.hypernetwork_enabled and self.sal_update == "embedding"

    @property
    def shares_thresholds(self) -> bool:
        """True when thresholds go up and their server mean comes down (pruning on and
        ``prune_share_thresholds``); else each device keeps its own."""
        return self.pruning_enabled and bool(self.prune_share_thresholds)

    @property
    def communicates(self) -> bool:
        """True when anything is sent (the hypernetwork or shared thresholds)."""
        return self.hypernetwork_enabled or self.shares_thresholds

    @property
    def has_residual(self) -> bool:
        """True when the linearised SAL gets a personal residual (``sal_residual``; the other
        modes already train the SAL itself on the device)."""
        return self.linear_sal and bool(self.sal_residual)


class PFLTPSNet(nn.Module):
    """The device network: ViT (masked FFL) + SAL source + per-step FLOP counter.

    Args:
        vit: the ViT (FFL layers already masked when pruning is on).
        spec: its SAL tensors.
        linear_sal: use θ0 + J (e − anchor) for the SAL (buffers ``theta0`` (n_sal,),
            ``jac`` (n_sal, d), ``anchor`` (d,), trainable ``embedding`` (d,)).
        embedding_dim: d.
        sal_residual: add a trainable personal residual ``sal_residual`` (n_sal,) to the
            linearised SAL (linear_sal only).
        flops_per_sample: callable(net) -> FLOPs of one sample at the current densities.
    """

    def __init__(self, vit: nn.Module, spec: SalSpec, linear_sal: bool, embedding_dim: int,
                 flops_per_sample: Callable[["PFLTPSNet"], int], sal_residual: bool = False) -> None:
        super().__init__()
        self.vit = vit
        self.spec = spec
        self.linear_sal = linear_sal
        self.layers: list[ThresholdMaskedLinear] = [m for _, m in masked_layers(vit)]
        self.layer_names: list[str] = [n for n, _ in masked_layers(vit)]
        self.flops_per_sample = flops_per_sample
        self.flops_count = 0
        self.density_sum = 0.0  # Σ over training forwards of the mean FFL layer density
        self.density_steps = 0
        self.has_residual = bool(sal_residual and linear_sal)
        if self.has_residual:
            self.sal_residual = nn.Parameter(torch.zeros(spec.total))
        if linear_sal:
            self.register_buffer("theta0", torch.zeros(spec.total))
            self.register_buffer("jac", torch.zeros(spec.total, embedding_dim))
            self.register_buffer("anchor", torch.zeros(embedding_dim))
            self.embedding = nn.Parameter(torch.zeros(embedding_dim))
            params = dict(vit.named_parameters())
            for name in spec.names:
                params[name].requires_grad_(False)

    def sal_theta(self) -> torch.Tensor:
        """Flat SAL θ (n_sal,) in use: θ0 + J (e − anchor) [+ residual] (linear) or the ViT's own."""
        if self.linear_sal:
            theta = self.theta0 + self.jac @ (self.embedding - self.anchor)
            return theta + self.sal_residual if self.has_residual else theta
        params = dict(self.vit.named_parameters())
        return self.spec.flatten({n: params[n] for n in self.spec.names})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (batch, C, H, W) -> logits (batch, classes); counts FLOPs in train mode."""
        if self.training:
            self.flops_count += int(x.shape[0]) * int(self.flops_per_sample(self))
            if self.layers:
                dens = ffl_densities(self.layers, "density")
                self.density_sum += sum(dens) / len(dens)
                self.density_steps += 1
        if self.linear_sal:
            return torch.func.functional_call(self.vit, self.spec.split(self.sal_theta()), (x,), strict=False)
        return self.vit(x)


def build_net(model_config: dict[str, Any], input_shape: tuple[int, int, int], num_classes: int,
              cfg: PFLTPSConfig, seed: int = 0) -> PFLTPSNet:
    """A device network drawn from ``seed`` (thresholds 0; linear-SAL buffers zero)."""
    vit = build_model(model_config, input_shape, num_classes, seed=seed)
    if cfg.pruning_enabled:
        replace_ffl_linears(vit, cfg.prune_gradient)

    # A partial of a module-level function (not a closure) keeps the net picklable.
    flops = functools.partial(_net_flops_per_sample, dict(model_config), tuple(input_shape), int(num_classes),
                              cfg.pruning_flops)
    return PFLTPSNet(vit, SalSpec.from_model(vit), cfg.linear_sal, cfg.embedding_dim, flops, cfg.has_residual)


def _net_flops_per_sample(model_config: dict[str, Any], input_shape: tuple[int, int, int], num_classes: int,
                          pruning_flops: str, net: PFLTPSNet) -> int:
    """Training FLOPs of one sample at the net's current FFL mask density."""
    density = ffl_densities(net.layers, pruning_flops) if net.layers else None
    return vit_flops_per_sample(model_config, input_shape, num_classes, ffl_density=density)


def net_state(net: PFLTPSNet, cfg: PFLTPSConfig) -> dict[str, Any]:
    """The device state held by ``net``: personal ``params`` (SAL only when the hypernetwork
    is off), ``thresholds`` (layer -> (out,)), ``embedding`` (d,) (linear SAL only) and
    ``sal_residual`` (n_sal,) (when on; personal, never sent).
    ``local_update`` adds ``sal`` (n_sal,), the SAL the device holds after training."""
    sal = set(net.spec.names) if cfg.hypernetwork_enabled else set()
    thr = {threshold_key(n) for n in net.layer_names}
    state: dict[str, Any] = {
        "params": {k: v.detach().clone() for k, v in net.vit.named_parameters() if k not in sal | thr},
        "thresholds": {n: m.threshold.detach().clone() for n, m in zip(net.layer_names, net.layers)},
    }
    if cfg.linear_sal:
        state["embedding"] = net.embedding.detach().clone()
    if net.has_residual:
        state["sal_residual"] = net.sal_residual.detach().clone()
    return state


def load_net(net: PFLTPSNet, state: dict[str, Any], sal_theta: torch.Tensor | None,
             thresholds: dict[str, torch.Tensor] | None = None) -> None:
    """Load a device state into ``net``; ``sal_theta`` (n_sal,) sets the ViT's SAL (required
    with the hypernetwork on); ``thresholds`` (layer -> (out,)) override the state's."""
    full = dict(state["params"])
    thr = thresholds if thresholds is not None else state["thresholds"]
    full.update({threshold_key(n): thr[n] for n in net.layer_names})
    if sal_theta is not None:
        full.update(net.spec.split(sal_theta.detach()))
    net.vit.load_state_dict(full, strict=True)
    with torch.no_grad():
        if net.linear_sal and "embedding" in state:
            net.embedding.copy_(state["embedding"])
        if net.has_residual:
            net.sal_residual.copy_(state["sal_residual"])


class _PostStepOptimizer:
    """Wraps an optimizer: after every step, reset the thresholds of near-empty layers
    (clamping them to >= 0 first when ``clamp``); counts the resets."""

    def __init__(self, opt: Optimizer, layers: list[ThresholdMaskedLinear], reset_density: float,
                 clamp: bool = False) -> None:
        self.opt, self.layers, self.reset_density, self.clamp, self.resets = opt, layers, reset_density, clamp, 0

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.opt.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        self.opt.step()
        self.resets += len(reset_thresholds_(self.layers, self.reset_density, self.clamp))


def make_pfl_optimizer(net: PFLTPSNet, hp: TrainParams, embedding_lr: float) -> Optimizer:
    """Fresh optimizer with groups: weights and the SAL residual (lr, weight decay),
    thresholds (lr), embedding (embedding_lr); the latter two without weight decay."""
    thr_ids = {id(m.threshold) for m in net.layers}
    weights = [p for p in net.vit.parameters() if p.requires_grad and id(p) not in thr_ids]
    if net.has_residual:
        weights.append(net.sal_residual)
    groups: list[dict[str, Any]] = [{"params": weights, "weight_decay": hp.weight_decay}]
    if net.layers:
        groups.append({"params": [m.threshold for m in net.layers], "weight_decay": 0.0})
    if net.linear_sal:
        groups.append({"params": [net.embedding], "lr": embedding_lr, "weight_decay": 0.0})
    if hp.optimizer == "adam":
        return Optimizer("adam", groups, lr=hp.lr)
    return Optimizer("sgd", groups, lr=hp.lr, momentum=hp.momentum)


class PFLTPSClient(Client):
    """Client half of PFL-TPS (see the module docstring for the update)."""

    def __init__(self, data: Any, model_config: dict[str, Any], params: dict[str, Any]) -> None:
        super().__init__(data, model_config, params)
        self.cfg = PFLTPSConfig.from_params(self.params)

    def model(self) -> PFLTPSNet:  # type: ignore[override]
        """This process's working device network (built once, overwritten by each update)."""
        if self._model is None:
            self._model = build_net(self.model_config, self.input_shape, self.num_classes, self.cfg)
        return self._model  # type: ignore[return-value]

    def batched_plan(self) -> Any:
        """The batched executor's plan of this update (``pfl_tps.batched.PFLTPSPlan``), or None
        for a subclass (its update may differ; it must provide its own plan to be batched)."""
        if type(self) is not PFLTPSClient:
            return None
        from learning.algorithms.pfl_tps.batched import PFLTPSPlan  # lazy: torch.func only when batched

        return PFLTPSPlan(self)

    def local_update(self, device: int, state: Any, payload: Payload | None, seed: int) -> LocalResult:
        """Pure local update: (state, downlink) -> (new state, uplink of thresholds + e' or Δθ)."""
        cfg = self.cfg
        tensors = received_tensors(cfg, device, state, payload)
        net = self.model()
        theta = tensors.get("sal_theta") if cfg.hypernetwork_enabled else None
        thr = {n: tensors[threshold_key(n)] for n in net.layer_names} if cfg.shares_thresholds else None
        load_net(net, state, theta, thr)
        if cfg.linear_sal:
            with torch.no_grad():
                net.theta0.copy_(tensors["sal_theta"])
                net.jac.copy_(tensors["sal_jacobian"])
                net.anchor.copy_(tensors["embedding_anchor"])
        # DST resets a near-empty layer before any forward: also one emptied by the received mean.
        load_resets = len(reset_thresholds_(net.layers, cfg.prune_reset_density))
        density_start = ffl_densities(net.layers, "density")
        x, y = self.data.train(device)
        opt = _PostStepOptimizer(make_pfl_optimizer(net, self.train_params, cfg.embedding_lr), net.layers,
                                 cfg.prune_reset_density, cfg.prune_clamp)
        opt.resets = load_resets
        penalty = (lambda: sparsity_penalty(net.layers, cfg.prune_lambda)) if net.layers else None
        net.flops_count, net.density_sum, net.density_steps = 0, 0.0, 0
        stats = train_local(net, x, y, self.train_params, seed, optimizer=opt, extra_loss=penalty)  # type: ignore[arg-type]
        new_state = net_state(net, cfg)
        if cfg.hypernetwork_enabled:
            # The SAL the device now holds (received θ adapted by its training): its model
            # until its next downlink. Kept on the device, never sent.
            new_state["sal"] = net.sal_theta().detach().clone()
        round_idx = int(payload.config.get("round", 0)) if payload is not None else 0
        delta = None
        if cfg.hypernetwork_enabled and cfg.sal_update == "delta":
            delta = net.sal_theta().detach() - tensors["sal_theta"]
        uplink = device_uplink(cfg, new_state, delta, round_idx)
        density_end = ffl_densities(net.layers, "density")
        metrics = stats.metrics()
        if net.layers:
            metrics.update({
                "ffl_density_start": sum(density_start) / len(density_start),
                "ffl_density": sum(density_end) / len(density_end),
                "ffl_density_mean": (net.density_sum / net.density_steps if net.density_steps
                                     else sum(density_start) / len(density_start)),
                "threshold_resets": float(opt.resets),
            })
        return LocalResult(int(device), new_state, uplink, int(net.flops_count), int(y.shape[0]), metrics)
