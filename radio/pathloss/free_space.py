"""Free-space (Friis) path loss: FSPL = 20·log10(4π·d3D·f_c / c).

Always LOS, no shadowing (σ_SF = 0 dB). The 2-D distance is clamped to at least
1 m so the loss stays finite when a device stands at the BS position.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from radio.constants import SPEED_OF_LIGHT_M_S
from radio.pathloss.base import FloatArray, PathLossModel, check_range

__all__ = ["FreeSpace", "friis_loss_db"]


def friis_loss_db(d3d_m: FloatArray | float, carrier_hz: float) -> FloatArray:
    """Friis free-space path loss [dB].

    Args:
        d3d_m: 3-D distance [m], any shape, > 0.
        carrier_hz: carrier frequency [Hz], scalar.

    Returns:
        20·log10(4π·d3D·f_c / c) [dB], same shape as ``d3d_m``.
    """
    return 20.0 * np.log10(4.0 * math.pi * np.asarray(d3d_m, dtype=np.float64) * carrier_hz / SPEED_OF_LIGHT_M_S)


class FreeSpace(PathLossModel):
    """Friis free-space propagation (always LOS, no shadowing).

    Args:
        carrier_hz: carrier frequency [Hz], > 0.
        h_bs_m: BS antenna height [m], >= 0 (only enters d3D).
        decorrelation_m: shadow decorrelation distance [m] reported by
            :meth:`decorrelation_distance_m` (unused while σ_SF = 0), > 0.
    """

    name: ClassVar[str] = "free_space"
    D2D_RANGE_M: ClassVar[tuple[float, float]] = (1.0, math.inf)

    def __init__(self, carrier_hz: float, h_bs_m: float = 0.0, decorrelation_m: float = 50.0) -> None:
        super().__init__(carrier_hz, h_bs_m)
        d = check_range("decorrelation_m", decorrelation_m, 1e-9, math.inf, owner=self.name)
        self._decorrelation_los_m = self._decorrelation_nlos_m = d

    def _los_loss_db(self, d2d_m: FloatArray, d3d_m: FloatArray, h_ut_m: FloatArray) -> FloatArray:
        return friis_loss_db(d3d_m, self.carrier_hz)
