"""pFedHN (Shamsian et al., ICML 2021): a server hypernetwork generates each device's model.

Server state (``HyperServer``): the hypernetwork HN_φ (``pfl_tps.hypernetwork``: MLP trunk
+ one linear head per target tensor, here EVERY model parameter), the client embeddings
E (n_devices, d) (d = ``embedding_dim``, default ``int(1 + n_devices / 4)`` as in the
paper; row i drawn N(0, embedding_init_std²), default N(0, 1) like pFedHN's
``nn.Embedding``, from ``device_seed(i, 2)``), and one SGD
optimizer over (φ, E) (lr 1e-2, momentum 0.9, weight decay 1e-3; as with pFedHN's dense
``nn.Embedding`` gradients, momentum and decay also move rows of absent devices).
The heads' biases start at a standard ViT initialisation (drawn from the server stream),
so HN(e) = that initialisation + a small device-specific term.

downlink  : θ_i = HN(e_i), all parameters, dense in ``downlink_encoding`` (fp32 by default).
client    : trains θ_i for ``local_epochs`` with the reference inner optimizer by default
            (SGD lr 5e-3, momentum 0.9, weight decay 5e-5, batch 64); uplinks Δθ_i = θ_sent − θ_trained (``uplink_encoding``, same
            names; pFedHN's ``inner_state − final_state``). Devices keep nothing.
aggregate : g_φ = Σ_i (n_i/n) · ∂θ/∂φ(e_i)ᵀ Δθ_i and g_{e_i} = ∂θ/∂e(e_i)ᵀ Δθ_i (each
            embedding gets its own device's gradient), ``hn_vjp``; the joint gradient is
            clipped to norm ``hn_grad_clip`` (pFedHN: 50); one SGD step.
evaluate  : HN(e_i) on device i's test split; no global model.
FLOPs     : dense (the device trains a full model); the hypernetwork runs on the server.
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import torch
from torch import nn

from learning.algorithms.base import (
    Algorithm,
    Client,
    CostModel,
    LocalResult,
    model_payload_bytes,
)
from learning.algorithms.fedavg import FedAvgClient
from learning.algorithms.fedprox import train_metrics
from learning.algorithms.pfl_tps.hypernetwork import HyperNetwork, SalSpec, hn_vjp
from learning.algorithms.training import TrainParams, derive_seed
from learning.flops import vit_flops_per_sample
from learning.optim import Optimizer
from learning.payload import Payload

__all__ = ["PFedHN", "PFedHNClient", "HyperServer", "HN_PARAMS", "default_embedding_dim", "make_hyper_server",
           "check_hn_params", "join_by_embedding_fit", "sent_minus_trained"]

#: server hyper-parameters shared by pFedHN and FedTP (defaults from pFedHN).
HN_PARAMS: dict[str, Any] = {
    "embedding_dim": None,  # None: int(1 + n_devices / 4)
    "embedding_init_std": 1.0,  # pFedHN: nn.Embedding, N(0, 1)
    "hn_hidden": 100,
    "hn_layers": 3,
    "hn_lr": 1e-2,
    "hn_momentum": 0.9,
    "hn_weight_decay": 1e-3,
    "hn_grad_clip": 50.0,
    # ours, not pFedHN's: local updates, each followed by an embedding step, when a held-out device joins
    # (learning.holdout_devices); 1 = the one local update every other algorithm's join gets
    "join_steps": 1,
}


#: pFedHN's inner (device) optimizer, from its reference trainer (see ``PFedHN``).
INNER_OPTIMIZER: dict[str, Any] = {"optimizer": "sgd", "lr": 5e-3, "momentum": 0.9, "weight_decay": 5e-5,
                                   "batch_size": 64}


def default_embedding_dim(n_devices: int) -> int:
    """pFedHN's embedding width ``int(1 + n_devices / 4)``."""
    return int(1 + int(n_devices) / 4)


def check_hn_params(name: str, params: dict[str, Any]) -> None:
    """Range checks of the ``HN_PARAMS`` entries (errors name the key)."""
    if params["embedding_dim"] is not None and int(params["embedding_dim"]) < 1:
        raise ValueError(f"{name} parameter embedding_dim must be >= 1 or None, got {params['embedding_dim']}")
    for key in ("hn_hidden", "hn_layers"):
        if int(params[key]) < 1:
            raise ValueError(f"{name} parameter {key} must be >= 1, got {params[key]}")
    for key in ("hn_lr", "hn_grad_clip", "embedding_init_std"):
        if not float(params[key]) > 0:
            raise ValueError(f"{name} parameter {key} must be > 0, got {params[key]}")
    steps = params["join_steps"]
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"{name} parameter join_steps must be an integer >= 0, got {steps!r}")
    if not 0 <= float(params["hn_momentum"]) < 1 or float(params["hn_weight_decay"]) < 0:
        raise ValueError(f"{name} needs hn_momentum in [0, 1) and hn_weight_decay >= 0, got "
                         f"{params['hn_momentum']}, {params['hn_weight_decay']}")


class HyperServer:
    """Hypernetwork + server-side embeddings + their SGD optimizer.

    Args:
        spec: the tensors HN generates (names and shapes).
        base: name -> tensor every head's bias starts at (None: ``HyperNetwork``'s own init).
        embeddings: initial embeddings (n_devices, d).
        params: resolved algorithm params (``HN_PARAMS`` keys).
        generator: source of φ's initial values.
    """

    def __init__(self, spec: SalSpec, base: dict[str, torch.Tensor] | None, embeddings: torch.Tensor,
                 params: dict[str, Any], generator: torch.Generator) -> None:
        self.spec = spec
        self.hn = HyperNetwork(spec, int(embeddings.shape[1]), int(params["hn_hidden"]), int(params["hn_layers"]),
                               generator)
        if base is not None:
            with torch.no_grad():
                for head, name in zip(self.hn.heads, spec.names):
                    head.bias.copy_(base[name].reshape(-1))
        self.embeddings = nn.Parameter(embeddings.detach().clone())
        self.clip = float(params["hn_grad_clip"])
        self.opt = Optimizer("sgd", [*self.hn.parameters(), self.embeddings], lr=float(params["hn_lr"]),
                             momentum=float(params["hn_momentum"]),
                             weight_decay=float(params["hn_weight_decay"]))

    @torch.no_grad()
    def generate(self, device: int) -> dict[str, torch.Tensor]:
        """θ_i = HN(e_i) as name -> tensor (detached)."""
        return {k: v.clone() for k, v in self.spec.split(self.hn(self.embeddings[int(device)])).items()}

    def step(self, items: Sequence[tuple[int, dict[str, torch.Tensor], float]]) -> None:
        """One pFedHN step from (device, Δθ = θ_sent − θ_trained as name -> tensor, weight) items.

        φ's gradient is the weight-normalised sum of the devices' VJPs; e_i's is its own VJP.
        No-op without items or with zero total weight.
        """
        total = float(sum(w for _, _, w in items))
        if not items or not total > 0:
            return
        params = list(self.hn.parameters())
        acc = [torch.zeros_like(p) for p in params]
        emb_grad = torch.zeros_like(self.embeddings)
        for device, delta, w in items:
            # hn_vjp takes θ_trained − θ_sent and uses −(that) as grad_outputs: the same VJP with Δθ.
            flat = -self.spec.flatten({k: v.detach().to(torch.float32) for k, v in delta.items()})
            grads, grad_e = hn_vjp(self.hn, self.embeddings[int(device)].detach(), flat, wrt_embedding=True)
            for a, g in zip(acc, grads):
                a.add_(g, alpha=float(w) / total)
            assert grad_e is not None
            emb_grad[int(device)] += grad_e
        for p, g in zip(params, acc):
            p.grad = g
        self.embeddings.grad = emb_grad
        torch.nn.utils.clip_grad_norm_([*params, self.embeddings], self.clip)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)


    def fit_embedding(self, device: int, delta: dict[str, torch.Tensor]) -> None:
        """One step of e_device alone from Δθ = θ_sent − θ_trained, φ frozen (a new device
        joining): g_e = ∂θ/∂e(e)ᵀ Δθ as in ``step``, clipped to norm ``hn_grad_clip``, then
        e ← e − hn_lr · g_e (plain SGD: the training optimizer's momentum and decay state is
        left untouched, so φ and the other embeddings do not move)."""
        flat = -self.spec.flatten({k: v.detach().to(torch.float32) for k, v in delta.items()})
        _, grad_e = hn_vjp(self.hn, self.embeddings[int(device)].detach(), flat, wrt_embedding=True)
        assert grad_e is not None
        grad_e = grad_e * min(1.0, self.clip / max(float(grad_e.norm()), 1e-12))
        with torch.no_grad():
            self.embeddings[int(device)] -= self.opt.param_groups[0]["lr"] * grad_e


def join_by_embedding_fit(alg: Algorithm, server: HyperServer, device: int, round_idx: int, seed: int,
                          deltas: Any) -> None:
    """New-device join of the hypernetwork methods (pFedHN's generalization protocol, φ frozen):
    ``join_steps`` times, the device trains from its downlink HN(e) (its local update is
    committed, e.g. pFedHN-PC's head) and its embedding alone takes the step of
    ``HyperServer.fit_embedding`` from the uplinked Δθ (``deltas(uplink)``: name -> tensor)."""
    client = alg.client()
    for step in range(int(alg.params["join_steps"])):
        payload = alg.downlink(device, round_idx)
        result = client.local_update(int(device), alg.device_state(device), payload, derive_seed(seed, step))
        alg.commit(result)
        server.fit_embedding(device, deltas(result.uplink))


def initial_embeddings(alg: Algorithm, n_devices: int, dim: int, std: float) -> torch.Tensor:
    """(n_devices, dim) embeddings; row i ~ N(0, std²) drawn from ``alg.device_seed(i, 2)``."""
    rows = [torch.randn(dim, generator=torch.Generator().manual_seed(alg.device_seed(i, 2))) * std
            for i in range(n_devices)]
    return torch.stack(rows)


def make_hyper_server(alg: Algorithm, spec: SalSpec, base: dict[str, torch.Tensor] | None) -> HyperServer:
    """The ``HyperServer`` of ``alg`` (params from ``alg.params``; φ from server stream 3)."""
    n = int(alg.data.n_devices)
    dim = alg.params["embedding_dim"]
    dim = default_embedding_dim(n) if dim is None else int(dim)
    emb = initial_embeddings(alg, n, dim, float(alg.params["embedding_init_std"]))
    gen = torch.Generator().manual_seed(derive_seed(alg.seed, 0, 3))  # server stream 3: φ
    return HyperServer(spec, base, emb, alg.params, gen)


def sent_minus_trained(sent: dict[str, torch.Tensor], trained: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """pFedHN's uplink Δθ = θ_sent − θ_trained over the sent tensors' names (own copies)."""
    return {k: (v - trained[k]).detach().clone() for k, v in sent.items()}


class PFedHNClient(FedAvgClient):
    """Trains the generated model; uplinks Δθ = θ_sent − θ_trained."""

    def batched_plan(self) -> Any:
        """The batched executor's plan of this update (``pfedhn_batched.PFedHNPlan``), or None
        for a subclass (its update may differ; it must provide its own plan to be batched)."""
        if type(self) is not PFedHNClient:
            return None
        from learning.algorithms.pfedhn_batched import PFedHNPlan  # lazy: torch.func only when batched

        return PFedHNPlan(self)

    def local_update(self, device: int, state: Any, payload: Payload | None, seed: int) -> LocalResult:
        """Pure local update: payload θ_i -> uplink Δθ_i (all parameters, ``uplink_encoding``)."""
        model, stats = self.train_received("pfedhn", device, payload, seed)
        trained = model.state_dict()
        uplink = self.reply(sent_minus_trained(payload.tensors, trained), payload)
        return LocalResult(int(device), None, uplink, self.flops_per_sample * stats.samples_processed,
                           self.data.num_train(device), train_metrics(stats))


class PFedHN(Algorithm):
    """Personalised FL with a server hypernetwork generating whole models."""

    name: ClassVar[str] = "pfedhn"
    communicates: ClassVar[bool] = True
    personalized: ClassVar[bool] = True
    #: HN_PARAMS plus the reference inner optimizer, which overrides the common defaults
    #: (AvivSham/pFedHN experiments/pfedhn/trainer.py: inner SGD lr 5e-3, momentum 0.9,
    #: weight decay 5e-5, batch 64). Not reproduced: its inner gradient clipping at norm
    #: 50 and its 50 inner steps (cosim trains ``local_epochs`` passes instead).
    extra_params: ClassVar[dict[str, Any]] = {**HN_PARAMS, **INNER_OPTIMIZER}

    def __init__(self, data: Any, model_config: dict[str, Any], params: dict[str, Any], seed: int) -> None:
        super().__init__(data, model_config, params, seed)
        self._model = self.new_model(seed=derive_seed(self.seed, 0, 1))  # server stream 1: base init
        base = {k: v.detach().clone() for k, v in self._model.state_dict().items()}
        spec = SalSpec(tuple(base), tuple(tuple(v.shape) for v in base.values()))
        self.server = make_hyper_server(self, spec, base)

    @classmethod
    def check_params(cls, resolved: dict[str, Any]) -> None:
        check_hn_params(cls.name, resolved)

    def make_client(self) -> Client:
        return PFedHNClient(self.data, self.model_config, self.params)

    def initial_state(self, device: int) -> Any:
        """Devices keep nothing."""
        return None

    def commit(self, result: LocalResult) -> None:
        """Nothing to store on the device side."""
        return None

    def downlink(self, device: int, round_idx: int) -> Payload | None:
        """θ_i = HN(e_i), dense in ``downlink_encoding``."""
        return self.send(self.server.generate(device), round_idx)

    def aggregate(self, uplinks: dict[int, tuple[Payload, int]], round_idx: int) -> None:
        """One hypernetwork step from the arrived Δθ's (sample-weighted for φ)."""
        self.server.step([(int(d), p.tensors, float(n)) for d, (p, n) in uplinks.items() if n > 0])

    def join_new_device(self, device: int, round_idx: int, seed: int) -> None:
        """Fit the new device's embedding with φ frozen (``join_by_embedding_fit``)."""
        join_by_embedding_fit(self, self.server, device, round_idx, seed, lambda uplink: uplink.tensors)

    def device_model(self, device: int) -> nn.Module:
        """The model HN(e_device) (loaded into the server's evaluation model)."""
        self._model.load_state_dict(self.server.generate(device))
        return self._model

    @classmethod
    def cost_model(cls, model_config: dict[str, Any], params: dict[str, Any], input_shape: tuple[int, int, int],
                   num_classes: int) -> CostModel:
        """All parameters down (θ) and up (Δθ) in ``downlink_encoding`` / ``uplink_encoding``; dense FLOPs."""
        resolved = cls.resolve_params(params)
        down, up = (model_payload_bytes(model_config, input_shape, num_classes, resolved[key], {"round": 0})
                    for key in ("downlink_encoding", "uplink_encoding"))
        return CostModel(down, up, vit_flops_per_sample(model_config, input_shape, num_classes),
                         float(TrainParams.from_params(resolved).local_epochs))

