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
    "nominal_bs_height_m",
]

MODELS: dict[str, type[PathLossModel]] = {
    cls.name: cls for cls in (FreeSpace, LogDistance, UMa, UMi, RMa)
}


def nominal_bs_height_m(model: str) -> float:
    """BS antenna height [m] for a cell of path-loss ``model`` that does not give one.

    UMa 25 m, UMi 10 m, RMa 35 m (TR 38.901 Table 7.4.1-1); 25 m for models without a
    nominal height. Raises KeyError naming the model if it is not registered.
    """
    if model not in MODELS:
        raise KeyError(f"path-loss model {model!r} unknown; allowed: {', '.join(MODELS)}")
    return float(MODELS[model].NOMINAL_H_BS_M)
