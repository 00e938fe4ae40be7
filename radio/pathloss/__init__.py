"""Path-loss models and their registry.

``MODELS`` maps the scenario's model name to its class; build one with
``MODELS[name](carrier_hz=..., h_bs_m=..., **params)``. Every model is a
:class:`PathLossModel` (see :mod:`radio.pathloss.base` for the clamping rules).
"""

from __future__ import annotations

from radio.pathloss.base import PathLossModel, check_range
from radio.pathloss.free_space import FreeSpace, friis_loss_db
from radio.pathloss.log_distance import LogDistance
from radio.pathloss.rma import RMa
from radio.pathloss.uma import UMa
from radio.pathloss.umi import UMi

__all__ = [
    "MODELS",
    "PathLossModel",
    "FreeSpace",
    "LogDistance",
    "UMa",
    "UMi",
    "RMa",
    "check_range",
    "friis_loss_db",
]

MODELS: dict[str, type[PathLossModel]] = {
    cls.name: cls for cls in (FreeSpace, LogDistance, UMa, UMi, RMa)
}
