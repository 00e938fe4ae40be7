"""A custom FL algorithm for cosim: FedAvgM, FedAvg with server momentum (Hsu et al., 2019).

The server treats the averaged update as a pseudo-gradient:
Δ = mean_k(θ_k) − θ,  v ← β·v + Δ,  θ ← θ + η·v  (β ``server_momentum``, η ``server_lr``).
Clients, payloads, costs and evaluation are FedAvg's. Use it by import path::

    learning: {algorithm: {name: "examples.custom_algorithm:FedAvgM", params: {server_momentum: 0.9}}}

or by name once a package declares it in the ``cosim.algorithms`` entry-point group.
Check it like a built-in: ``cosim.checks.check_algorithm(FedAvgM)``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from learning.algorithms import FedAvg, weighted_average
from learning.payload import Payload


class FedAvgM(FedAvg):
    """FedAvg whose server applies the averaged update with momentum."""

    name: ClassVar[str] = "fedavgm"
    extra_params: ClassVar[dict[str, Any]] = {"server_lr": 1.0, "server_momentum": 0.9}

    @classmethod
    def check_params(cls, resolved: dict[str, Any]) -> None:
        if not resolved["server_lr"] > 0:
            raise ValueError(f"server_lr={resolved['server_lr']!r} must be > 0")
        if not 0 <= resolved["server_momentum"] < 1:
            raise ValueError(f"server_momentum={resolved['server_momentum']!r} must be in [0, 1)")

    def aggregate(self, uplinks: dict[int, tuple[Payload, int]], round_idx: int) -> None:
        items = [(p, n) for p, n in uplinks.values() if n > 0]
        if not items:
            return
        mean = weighted_average([p.tensors for p, _ in items], [n for _, n in items])
        lr, beta = float(self.params["server_lr"]), float(self.params["server_momentum"])
        velocity = getattr(self, "velocity", {})
        for name, old in self.global_state.items():
            if not torch.is_floating_point(old):  # integer buffers: take the average as is
                self.global_state[name] = mean[name]
                continue
            velocity[name] = beta * velocity.get(name, torch.zeros_like(old)) + (mean[name] - old)
            self.global_state[name] = old + lr * velocity[name]
        self.velocity = velocity
