"""PFL-TPS wire format: what the downlink and the uplink carry, under which names.

Downlink (server -> device): the SAL θ (``sal_theta``) when the hypernetwork is on, with
its Jacobian (``sal_jacobian``) and anchor embedding (``embedding_anchor``) in
``sal_update: embedding`` mode, and the mean thresholds (``<layer>.threshold``) when they
are shared. Uplink (device -> server): the device's thresholds (when shared) and its
embedding e' (``embedding``) or its SAL change Δθ (``sal_delta``). Values are rounded as
the receiver decodes them in the chosen encoding. The server half (``algorithm``) and the
client half (``client``, ``batched``) build and read payloads through these functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from learning.payload import Payload, dense_payload
from learning.payload import as_received as payload_as_received

if TYPE_CHECKING:
    from learning.algorithms.pfl_tps.client import PFLTPSConfig

__all__ = ["threshold_key", "as_received", "make_downlink", "make_uplink", "device_uplink", "received_tensors"]


def threshold_key(layer: str) -> str:
    """Payload / state name of a layer's thresholds (the ViT parameter name)."""
    return f"{layer}.threshold"


def as_received(t: torch.Tensor, encoding: str) -> torch.Tensor:
    """The values a receiver decodes from ``t`` sent with ``encoding`` (fp16 rounds), float32."""
    return payload_as_received(t.detach().to(torch.float32), encoding)


def make_downlink(theta: torch.Tensor | None, jac: torch.Tensor | None, anchor: torch.Tensor | None,
                  thresholds: dict[str, torch.Tensor], round_idx: int, encoding: str) -> Payload:
    """Downlink: SAL θ (n_sal,), Jacobian J (n_sal, d), anchor ê (d,) (any may be None) and the
    mean thresholds (layer -> (out,)), all in ``encoding``; values rounded as received."""
    tensors: dict[str, torch.Tensor] = {}
    for name, t in (("sal_theta", theta), ("sal_jacobian", jac), ("embedding_anchor", anchor)):
        if t is not None:
            tensors[name] = t
    tensors.update({threshold_key(k): v for k, v in thresholds.items()})
    if not any(t.is_meta for t in tensors.values()):
        tensors = {k: as_received(v, encoding) for k, v in tensors.items()}
    return Payload(tensors, encoding, {"round": int(round_idx)})


def make_uplink(thresholds: dict[str, torch.Tensor], embedding: torch.Tensor | None,
                sal_delta: torch.Tensor | None, round_idx: int, encoding: str = "fp32") -> Payload:
    """Uplink in ``encoding``: thresholds (layer -> (out,)), embedding e' (d,), Δθ (n_sal,)
    (None: absent); values rounded as received."""
    tensors = {threshold_key(k): v.detach().clone() for k, v in thresholds.items()}
    if embedding is not None:
        tensors["embedding"] = embedding.detach().clone()
    if sal_delta is not None:
        tensors["sal_delta"] = sal_delta.detach().clone()
    return dense_payload(tensors, encoding, {"round": int(round_idx)})


def device_uplink(cfg: PFLTPSConfig, state: dict[str, Any], sal_delta: torch.Tensor | None,
                  round_idx: int) -> Payload | None:
    """A device's uplink after training to ``state``: its thresholds (when shared), e' or
    Δθ; None when nothing is sent (hypernetwork off and thresholds personal)."""
    if not cfg.communicates:
        return None
    thresholds = state["thresholds"] if cfg.shares_thresholds else {}
    return make_uplink(thresholds, state.get("embedding"), sal_delta, round_idx, cfg.uplink_encoding)


def received_tensors(cfg: PFLTPSConfig, device: int, state: Any, payload: Payload | None) -> dict[str, torch.Tensor]:
    """The downlink's tensors ({} without one) after checking that an update of ``device``
    has what it needs: its state, and a downlink unless both halves are off."""
    if state is None:
        raise ValueError(f"pfl_tps device {device} needs its state")
    if payload is None and cfg.communicates:
        raise ValueError(f"pfl_tps device {device} needs a downlink payload")
    return payload.tensors if payload is not None else {}
