"""PFL-TPS server half: threshold averaging, the SAL hypernetwork and its pFedHN update.

Server state: the hypernetwork HN_φ with its SGD optimizer (momentum buffer kept across
rounds), the sample-weighted mean of the last uplinked FFL thresholds (init 0), and a
copy ê_i of every device embedding that has been used (init: the same seeded draw as
the device's own, ``N(0, embedding_init_std²)`` from ``device_seed(i, 2)``). Nothing
per device is stored beyond ê_i (no HN outputs).

Rounds (``sal_update="embedding"``, default):
  downlink  θ_i = HN(ê_i), J_i = ∂θ/∂e (ê_i) (``jacfwd``), ê_i and the threshold mean, in
            ``downlink_encoding`` (fp16 by default; the device receives the rounded values).
  device    trains its personal parameters, thresholds and e through θ_i + J_i (e − ê_i)
            (+ its personal residual r_i, ``sal_residual``); uploads thresholds and e_i'
            (``uplink_encoding``, fp32 by default). r_i stays on the device and does not enter the server update.
  aggregate thresholds: sample-weighted mean. SAL: Δθ_i = J_i (e_i' − ê_i) with the same
            (rounded) J_i, g = Σ_i (n_i/n) · vjp(θ(ê_i), φ; −Δθ_i), clipped to norm
            ``hn_grad_clip``, one SGD step (``hn_lr``, ``hn_momentum``,
            ``hn_weight_decay``); then ê_i ← e_i'. J_i is recomputed at aggregation from
            the same φ, which holds because the engine downlinks at the start of a round
            and aggregates once at its end.
``sal_update="delta"``: the downlink has θ_i only; the device trains θ directly and
uploads Δθ_i = θ_trained − θ_i (``uplink_encoding``); the server steps φ as above and moves
ê_i ← ê_i − embedding_lr · vjp(θ(ê_i), e; −Δθ_i) (embeddings are server-side, as in pFedHN).

Evaluation: the model each device holds, on its test split: its personal parameters,
its own thresholds and the SAL it trained last (received θ_i adapted by its training);
HN(ê_i) at the current φ for a device that has not taken part yet.
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import torch

from learning.algorithms.base import STALE_RULES, Algorithm, Client, CostModel, StaleUpdate
from learning.algorithms.fedavg import weighted_average
from learning.algorithms.pfl_tps.client import PFLTPSClient, PFLTPSConfig, build_net, load_net, net_state
from learning.algorithms.pfl_tps.hypernetwork import HyperNetwork, SalSpec, hn_vjp
from learning.algorithms.pfl_tps.wire import as_received, make_downlink, make_uplink, threshold_key
from learning.algorithms.training import TrainParams, derive_seed
from learning.flops import vit_flops_per_sample
from learning.models import MODELS, ffl_linear_names, resolve_model_config
from learning.optim import Optimizer
from learning.payload import Payload

__all__ = ["PFLTPS"]


class PFLTPS(Algorithm):
    """Personalised FL of transformers: pruned personal FFLs + hypernetwork-generated SALs."""

    name: ClassVar[str] = "pfl_tps"
    communicates: ClassVar[bool] = True
    personalized: ClassVar[bool] = True
    stale_updates: ClassVar[bool] = True
    extra_params: ClassVar[dict[str, Any]] = {
        "pruning_enabled": True,
        "prune_lambda": 5e-3,
        "prune_reset_density": 0.01,
        "pruning_flops": "density",
        "hypernetwork_enabled": True,
        "sal_update": "embedding",
        "embedding_dim": 16,
        "embedding_init_std": 0.1,
        "embedding_lr": 1e-2,
        "hn_hidden": 100,
        "hn_layers": 2,
        "hn_lr": 1e-2,
        "hn_momentum": 0.9,
        "hn_weight_decay": 1e-3,
        "hn_grad_clip": 50.0,
        "downlink_encoding": "fp16",
        "sal_residual": True,
        "prune_gradient": "dst",
        "prune_clamp": False,
        "prune_share_thresholds": True,
    }

    def __init__(self, data: Any, model_config: dict[str, Any], params: dict[str, Any], seed: int) -> None:
        super().__init__(data, model_config, params, seed)
        self.cfg = PFLTPSConfig.from_params(self.params)
        shape, classes = tuple(data.input_shape), int(data.num_classes)
        self._net = build_net(self.model_config, shape, classes, self.cfg)  # evaluation / init template
        self.spec = self._net.spec
        self.hn: HyperNetwork | None = None
        self.hn_opt: Optimizer | None = None
        if self.cfg.hypernetwork_enabled:
            gen = torch.Generator().manual_seed(derive_seed(self.seed, 0, 1))  # server stream 1
            self.hn = HyperNetwork(self.spec, self.cfg.embedding_dim, self.cfg.hn_hidden, self.cfg.hn_layers, gen)
            self.hn_opt = Optimizer("sgd", self.hn.parameters(), lr=self.cfg.hn_lr, momentum=self.cfg.hn_momentum,
                                    weight_decay=self.cfg.hn_weight_decay)
        self.threshold_mean: dict[str, torch.Tensor] = {
            n: torch.zeros(m.out_features) for n, m in zip(self._net.layer_names, self._net.layers)
        }
        self.embeddings: dict[int, torch.Tensor] = {}

    # ----------------------------------------------------------------- state
    def make_client(self) -> Client:
        return PFLTPSClient(self.data, self.model_config, self.params)

    def initial_embedding(self, device: int) -> torch.Tensor:
        """Device ``device``'s initial embedding, N(0, embedding_init_std²), shape (d,)."""
        gen = torch.Generator().manual_seed(self.device_seed(device, 2))
        return torch.randn(self.cfg.embedding_dim, generator=gen) * self.cfg.embedding_init_std

    def server_embedding(self, device: int) -> torch.Tensor:
        """The server's copy ê of ``device``'s embedding, shape (d,)."""
        device = int(device)
        if device not in self.embeddings:
            self.embeddings[device] = self.initial_embedding(device)
        return self.embeddings[device]

    def initial_state(self, device: int) -> Any:
        """Personal parameters drawn from ``device_seed(device)``, thresholds 0, and the initial
        embedding (linear-SAL mode)."""
        net = build_net(self.model_config, tuple(self.data.input_shape), int(self.data.num_classes), self.cfg,
                        seed=self.device_seed(device))
        if self.cfg.linear_sal:
            with torch.no_grad():
                net.embedding.copy_(self.initial_embedding(device))
        return net_state(net, self.cfg)

    # ----------------------------------------------------------------- rounds
    def _jacobian(self, e: torch.Tensor) -> torch.Tensor:
        assert self.hn is not None
        return as_received(self.hn.jacobian(e), self.cfg.downlink_encoding)

    def downlink(self, device: int, round_idx: int) -> Payload | None:
        """θ_i (+ J_i and ê_i in embedding mode) and the threshold mean (see module docstring);
        None when nothing is shared (hypernetwork off and thresholds personal)."""
        if not self.cfg.communicates:
            return None
        theta = jac = anchor = None
        if self.hn is not None:
            anchor = self.server_embedding(device)
            with torch.no_grad():
                theta = self.hn(anchor)
            if self.cfg.sal_update == "embedding":
                jac = self.hn.jacobian(anchor)
            else:
                anchor = None
        thr = self.threshold_mean if self.cfg.shares_thresholds else {}
        return make_downlink(theta, jac, anchor, thr, round_idx, self.cfg.downlink_encoding)

    def aggregate(self, uplinks: dict[int, tuple[Payload, int]], round_idx: int) -> None:
        """Threshold mean and one pFedHN step of φ over the arrived uplinks (sample-weighted)."""
        items = [(int(d), p, int(n)) for d, (p, n) in uplinks.items() if n > 0]
        if not items:
            return
        weights = [n for _, _, n in items]
        if self.cfg.shares_thresholds:
            keys = [threshold_key(n) for n in self.threshold_mean]
            mean = weighted_average([{k: p.tensors[k] for k in keys} for _, p, _ in items], weights)
            self.threshold_mean = {n: mean[threshold_key(n)] for n in self.threshold_mean}
        if self.hn is None or self.hn_opt is None:
            return
        total = float(sum(weights))
        self._hn_step({device: (payload, n / total) for device, payload, n in items})

    def _hn_step(self, uplinks: dict[int, tuple[Payload, float]]) -> None:
        """One pFedHN step of φ from (payload, weight) per device; then ê_i ← e_i'."""
        assert self.hn is not None and self.hn_opt is not None
        acc = [torch.zeros_like(p) for p in self.hn.parameters()]
        new_embeddings: dict[int, torch.Tensor] = {}
        for device, (payload, weight) in uplinks.items():
            e = self.server_embedding(device)
            if self.cfg.sal_update == "embedding":
                e_new = payload.tensors["embedding"].detach().to(torch.float32)
                delta = self._jacobian(e) @ (e_new - e)
                grads, _ = hn_vjp(self.hn, e, delta)
            else:
                delta = payload.tensors["sal_delta"].detach().to(torch.float32)
                grads, grad_e = hn_vjp(self.hn, e, delta, wrt_embedding=True)
                assert grad_e is not None
                e_new = e - self.cfg.embedding_lr * grad_e
            for a, g in zip(acc, grads):
                a.add_(g, alpha=weight)
            new_embeddings[device] = e_new.clone()
        for p, g in zip(self.hn.parameters(), acc):
            p.grad = g
        torch.nn.utils.clip_grad_norm_(list(self.hn.parameters()), self.cfg.hn_grad_clip)
        self.hn_opt.step()
        self.hn_opt.zero_grad(set_to_none=True)
        self.embeddings.update(new_embeddings)

    def apply_updates(self, updates: Sequence[StaleUpdate], rule: str, server_lr: float = 1.0) -> None:
        """Stale thresholds and embeddings folded in (the asynchronous server modes).

        Thresholds: a mean of device quantities, not a state the device trains from, so
        both rules mix: t ← t + s Σ_i w_i (t_i − t), s = 1 (``mix``) or η (``delta``).
        Hypernetwork: the pFedHN step of ``aggregate`` with the update weights normalised,
        g = Σ_i (w_i/Σw) vjp(θ(ê_i), φ; −Δθ_i), where Δθ_i = J_i (e_i' − ê_i) uses J_i at
        the *current* φ (the embedding is the stale quantity), clipped, then one SGD step
        with learning rate hn_lr·s·Σw. With Σw = 1 and s = 1 this is ``aggregate``'s step.
        """
        if rule not in STALE_RULES:
            raise ValueError(f"stale-update rule {rule!r} is not one of {STALE_RULES}")
        items = [u for u in updates if u.weight > 0]
        if any(not u.weight >= 0 for u in updates):
            raise ValueError(f"stale-update weights must be >= 0, got {[u.weight for u in updates]}")
        if not items:
            return
        scale = 1.0 if rule == "mix" else float(server_lr)
        total_w = float(sum(u.weight for u in items))
        if self.cfg.pruning_enabled:
            for name, t in self.threshold_mean.items():
                key = threshold_key(name)
                step = sum(float(u.weight) * (u.uplink.tensors[key].to(torch.float64) - t.to(torch.float64))
                           for u in items)
                self.threshold_mean[name] = (t.to(torch.float64) + scale * step).to(t.dtype)
        if self.hn is None or self.hn_opt is None:
            return
        uplinks = {u.device: (u.uplink, float(u.weight) / total_w) for u in items}
        lr = [group["lr"] for group in self.hn_opt.param_groups]
        for group in self.hn_opt.param_groups:
            group["lr"] = group["lr"] * scale * total_w
        try:
            self._hn_step(uplinks)
        finally:
            for group, value in zip(self.hn_opt.param_groups, lr):
                group["lr"] = value

    # ----------------------------------------------------------------- evaluation
    def device_model(self, device: int) -> torch.nn.Module:
        """``device``'s current model, the one it holds: personal parameters, own thresholds
        and the SAL it last received as adapted by its own training. A device that never
        took part uses its initial state (not stored) with HN(ê) at the current φ, i.e.
        what its first downlink would bring."""
        state = self._states[device] if device in self._states else self.initial_state(device)
        theta = None
        if self.hn is not None:
            if "sal" in state:
                theta = state["sal"]
            else:
                with torch.no_grad():
                    theta = self.hn(self.server_embedding(device))
        load_net(self._net, state, theta)
        return self._net.vit

    # ----------------------------------------------------------------- costs
    @classmethod
    def cost_model(cls, model_config: dict[str, Any], params: dict[str, Any], input_shape: tuple[int, int, int],
                   num_classes: int) -> CostModel:
        """Exact payload sizes (built from meta tensors of the right shapes) and dense FLOPs."""
        resolved = cls.resolve_params(params)
        cfg = PFLTPSConfig.from_params(resolved)
        mcfg = resolve_model_config(model_config)
        with torch.device("meta"):
            vit = MODELS[mcfg["name"]](tuple(input_shape), int(num_classes),
                                       **{k: v for k, v in mcfg.items() if k != "name"})
        spec = SalSpec.from_model(vit)
        thr: dict[str, torch.Tensor] = {}
        if not cfg.communicates:
            return CostModel(0, 0, vit_flops_per_sample(mcfg, input_shape, num_classes),
                             float(TrainParams.from_params(resolved).local_epochs))
        if cfg.shares_thresholds:
            thr = {n: torch.empty(vit.get_submodule(n).out_features, device="meta") for n in ffl_linear_names(vit)}
        meta = lambda *shape: torch.empty(*shape, device="meta")  # noqa: E731
        theta = jac = anchor = emb = delta = None
        if cfg.hypernetwork_enabled:
            theta = meta(spec.total)
            if cfg.sal_update == "embedding":
                jac, anchor, emb = meta(spec.total, cfg.embedding_dim), meta(cfg.embedding_dim), meta(cfg.embedding_dim)
            else:
                delta = meta(spec.total)
        down = make_downlink(theta, jac, anchor, thr, 0, cfg.downlink_encoding)
        up = make_uplink(thr, emb, delta, 0, cfg.uplink_encoding)
        return CostModel(
            downlink_bytes=down.wire_bytes,
            uplink_bytes=up.wire_bytes,
            flops_per_sample=vit_flops_per_sample(mcfg, input_shape, num_classes),
            epochs=float(TrainParams.from_params(resolved).local_epochs),
        )
