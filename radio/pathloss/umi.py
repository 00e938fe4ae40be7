"""3GPP TR 38.901 (v17) Urban Micro street canyon (UMi) path loss and LOS probability.

Formulas: Table 7.4.1-1 (path loss, σ_SF), Table 7.4.2-1 (LOS probability),
Table 7.5-6 (shadow-fading decorrelation distance). f_c in the formulas is the
carrier normalised by 1 GHz; the breakpoint d'_BP = 4·h'_BS·h'_UT·f_c/c uses f_c in
Hz and effective heights h' = h − h_E with h_E = 1 m (exact for UMi in the spec).

Validity and clamping: 0.5 <= f_c <= 100 GHz (ValueError outside). TR 38.901
fixes h_BS = 10 m; cosim accepts 3–50 m (off-nominal heights are extrapolations).
d2D is clamped into [10 m, 5 km] and h_UT into [1.5 m, 22.5 m] before evaluation.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from radio.pathloss.base import FloatArray, PathLossModel, effective_breakpoint_m

__all__ = ["UMi"]


class UMi(PathLossModel):
    """TR 38.901 UMi street canyon: LOS two-slope model, NLOS = max(LOS, NLOS').

    Args:
        carrier_hz: carrier frequency [Hz], in [0.5e9, 100e9].
        h_bs_m: BS antenna height [m], in [3, 50] (nominal 10).
    """

    name: ClassVar[str] = "umi"
    CARRIER_RANGE_HZ: ClassVar[tuple[float, float]] = (0.5e9, 100e9)
    H_BS_RANGE_M: ClassVar[tuple[float, float]] = (3.0, 50.0)
    H_UT_RANGE_M: ClassVar[tuple[float, float]] = (1.5, 22.5)
    D2D_RANGE_M: ClassVar[tuple[float, float]] = (10.0, 5000.0)
    SHADOW_STD_LOS_DB: ClassVar[float] = 4.0  # Table 7.4.1-1
    SHADOW_STD_NLOS_DB: ClassVar[float] = 7.82  # Table 7.4.1-1
    DECORRELATION_LOS_M: ClassVar[float] = 10.0  # Table 7.5-6
    DECORRELATION_NLOS_M: ClassVar[float] = 13.0  # Table 7.5-6
    NOMINAL_H_BS_M: ClassVar[float] = 10.0  # Table 7.4.1-1 (h_BS = 10 m)
    RICIAN_K_LOS_DB: ClassVar[tuple[float, float] | None] = (9.0, 5.0)  # Table 7.5-6 (μ_K, σ_K)
    H_E_M: ClassVar[float] = 1.0

    def __init__(self, carrier_hz: float, h_bs_m: float = 10.0) -> None:
        super().__init__(carrier_hz, h_bs_m)

    def breakpoint_m(self, h_ut_m: FloatArray) -> FloatArray:
        """Breakpoint distance d'_BP = 4·(h_BS − 1)·(h_UT − 1)·f_c/c [m], shape of ``h_ut_m``."""
        return effective_breakpoint_m(self.h_bs_m, h_ut_m, self.H_E_M, self.carrier_hz)

    def _los_loss_db(self, d2d_m: FloatArray, d3d_m: FloatArray, h_ut_m: FloatArray) -> FloatArray:
        log_fc = 20.0 * math.log10(self.carrier_ghz)
        d_bp = self.breakpoint_m(h_ut_m)
        pl1 = 32.4 + 21.0 * np.log10(d3d_m) + log_fc
        pl2 = 32.4 + 40.0 * np.log10(d3d_m) + log_fc - 9.5 * np.log10(d_bp**2 + (self.h_bs_m - h_ut_m) ** 2)
        return np.where(d2d_m <= d_bp, pl1, pl2)

    def _nlos_loss_db(
        self, d2d_m: FloatArray, d3d_m: FloatArray, h_ut_m: FloatArray, los_loss_db: FloatArray
    ) -> FloatArray:
        pl_prime = 35.3 * np.log10(d3d_m) + 22.4 + 21.3 * math.log10(self.carrier_ghz) - 0.3 * (h_ut_m - 1.5)
        return np.maximum(los_loss_db, pl_prime)

    def _los_probability(self, d2d_m: FloatArray, h_ut_m: FloatArray) -> FloatArray:
        # Table 7.4.2-1, UMi street canyon (outdoor users).
        p = 18.0 / d2d_m + np.exp(-d2d_m / 36.0) * (1.0 - 18.0 / d2d_m)
        return np.where(d2d_m <= 18.0, 1.0, p)
