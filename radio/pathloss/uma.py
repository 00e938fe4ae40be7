"""3GPP TR 38.901 (v17) Urban Macro (UMa) path loss and LOS probability.

Formulas: Table 7.4.1-1 (path loss, σ_SF), Table 7.4.2-1 (LOS probability),
Table 7.5-6 (shadow-fading decorrelation distance). f_c in the formulas is the
carrier normalised by 1 GHz; the breakpoint uses f_c in Hz.

Simplification: the effective environment height h_E of the breakpoint distance
d'_BP = 4·h'_BS·h'_UT·f_c/c (h' = h − h_E) is fixed to h_E = 1 m. The spec draws
h_E = 1 m with probability 1/(1 + C(d2D, h_UT)) and otherwise from {12, 15, …,
h_UT − 1.5} m; C = 0 for h_UT <= 13 m, so h_E = 1 m is exact for street-level UTs.

Validity and clamping: 0.5 <= f_c <= 100 GHz (ValueError outside). TR 38.901
fixes h_BS = 25 m; cosim accepts 10–150 m (off-nominal heights are
extrapolations, for sensitivity studies). d2D is clamped into [10 m, 5 km] and
h_UT into [1.5 m, 22.5 m] before evaluation.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from radio.pathloss.base import FloatArray, PathLossModel, effective_breakpoint_m

__all__ = ["UMa"]


class UMa(PathLossModel):
    """TR 38.901 UMa: LOS two-slope model with breakpoint, NLOS = max(LOS, NLOS').

    Args:
        carrier_hz: carrier frequency [Hz], in [0.5e9, 100e9].
        h_bs_m: BS antenna height [m], in [10, 150] (nominal 25).
    """

    name: ClassVar[str] = "uma"
    CARRIER_RANGE_HZ: ClassVar[tuple[float, float]] = (0.5e9, 100e9)
    H_BS_RANGE_M: ClassVar[tuple[float, float]] = (10.0, 150.0)
    H_UT_RANGE_M: ClassVar[tuple[float, float]] = (1.5, 22.5)
    D2D_RANGE_M: ClassVar[tuple[float, float]] = (10.0, 5000.0)
    SHADOW_STD_LOS_DB: ClassVar[float] = 4.0  # Table 7.4.1-1
    SHADOW_STD_NLOS_DB: ClassVar[float] = 6.0  # Table 7.4.1-1
    DECORRELATION_LOS_M: ClassVar[float] = 37.0  # Table 7.5-6
    DECORRELATION_NLOS_M: ClassVar[float] = 50.0  # Table 7.5-6
    NOMINAL_H_BS_M: ClassVar[float] = 25.0  # Table 7.4.1-1 (h_BS = 25 m)
    RICIAN_K_LOS_DB: ClassVar[tuple[float, float] | None] = (9.0, 3.5)  # Table 7.5-6 (μ_K, σ_K)
    H_E_M: ClassVar[float] = 1.0
    """Effective environment height h_E [m] (see module docstring)."""

    def __init__(self, carrier_hz: float, h_bs_m: float = 25.0) -> None:
        super().__init__(carrier_hz, h_bs_m)

    def breakpoint_m(self, h_ut_m: FloatArray) -> FloatArray:
        """Breakpoint distance d'_BP = 4·(h_BS − h_E)·(h_UT − h_E)·f_c/c [m], shape of ``h_ut_m``."""
        return effective_breakpoint_m(self.h_bs_m, h_ut_m, self.H_E_M, self.carrier_hz)

    def _los_loss_db(self, d2d_m: FloatArray, d3d_m: FloatArray, h_ut_m: FloatArray) -> FloatArray:
        log_fc = 20.0 * math.log10(self.carrier_ghz)
        d_bp = self.breakpoint_m(h_ut_m)
        pl1 = 28.0 + 22.0 * np.log10(d3d_m) + log_fc
        pl2 = 28.0 + 40.0 * np.log10(d3d_m) + log_fc - 9.0 * np.log10(d_bp**2 + (self.h_bs_m - h_ut_m) ** 2)
        return np.where(d2d_m <= d_bp, pl1, pl2)

    def _nlos_loss_db(
        self, d2d_m: FloatArray, d3d_m: FloatArray, h_ut_m: FloatArray, los_loss_db: FloatArray
    ) -> FloatArray:
        pl_prime = 13.54 + 39.08 * np.log10(d3d_m) + 20.0 * math.log10(self.carrier_ghz) - 0.6 * (h_ut_m - 1.5)
        return np.maximum(los_loss_db, pl_prime)

    def _los_probability(self, d2d_m: FloatArray, h_ut_m: FloatArray) -> FloatArray:
        # Table 7.4.2-1, UMa (outdoor users). C'(h_UT) = 0 for h_UT <= 13 m,
        # ((h_UT - 13)/10)^1.5 for 13 m < h_UT <= 23 m.
        c_prime = np.where(h_ut_m <= 13.0, 0.0, (np.maximum(h_ut_m - 13.0, 0.0) / 10.0) ** 1.5)
        base = 18.0 / d2d_m + np.exp(-d2d_m / 63.0) * (1.0 - 18.0 / d2d_m)
        if np.any(c_prime > 0.0):  # the height term is 1 for every UT at or below 13 m
            base = base * (1.0 + c_prime * 1.25 * (d2d_m / 100.0) ** 3 * np.exp(-d2d_m / 150.0))
        return np.where(d2d_m <= 18.0, 1.0, base)
