"""3GPP TR 38.901 (v17) Rural Macro (RMa) path loss and LOS probability.

Formulas: Table 7.4.1-1 (path loss, σ_SF), Table 7.4.2-1 (LOS probability),
Table 7.5-6 (shadow-fading decorrelation distance). f_c in the formulas is the
carrier normalised by 1 GHz; the breakpoint d_BP = 2π·h_BS·h_UT·f_c/c uses f_c in Hz
and the actual antenna heights. PL2 = PL1(d_BP) + 40·log10(d3D/d_BP), with PL1
evaluated at distance d_BP (the spec's literal expression).

Validity and clamping: 0.5 <= f_c <= 30 GHz (the RMa model is validated up to
30 GHz), 10 <= h_BS <= 150 m, 5 <= h <= 50 m (building height), 5 <= W <= 50 m
(street width); ValueError outside. d2D is clamped into [10 m, 10 km] and h_UT into
[1 m, 10 m]. The spec limits NLOS to d2D <= 5 km; between 5 and 10 km the NLOS
formula is extrapolated (NLOS = max(LOS, NLOS') stays >= LOS).
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike

from radio.constants import SPEED_OF_LIGHT_M_S
from radio.pathloss.base import FloatArray, PathLossModel, check_range

__all__ = ["RMa"]


class RMa(PathLossModel):
    """TR 38.901 RMa: LOS two-slope model, NLOS = max(LOS, NLOS').

    Args:
        carrier_hz: carrier frequency [Hz], in [0.5e9, 30e9].
        h_bs_m: BS antenna height [m], in [10, 150] (nominal 35).
        building_height_m: average building height h [m], in [5, 50].
        street_width_m: average street width W [m], in [5, 50].
    """

    name: ClassVar[str] = "rma"
    CARRIER_RANGE_HZ: ClassVar[tuple[float, float]] = (0.5e9, 30e9)
    H_BS_RANGE_M: ClassVar[tuple[float, float]] = (10.0, 150.0)
    H_UT_RANGE_M: ClassVar[tuple[float, float]] = (1.0, 10.0)
    D2D_RANGE_M: ClassVar[tuple[float, float]] = (10.0, 10_000.0)
    SHADOW_STD_LOS_DB: ClassVar[float] = 4.0  # Table 7.4.1-1, d2D <= d_BP
    SHADOW_STD_LOS_FAR_DB: ClassVar[float] = 6.0  # Table 7.4.1-1, d2D > d_BP
    SHADOW_STD_NLOS_DB: ClassVar[float] = 8.0  # Table 7.4.1-1
    DECORRELATION_LOS_M: ClassVar[float] = 37.0  # Table 7.5-6
    DECORRELATION_NLOS_M: ClassVar[float] = 120.0  # Table 7.5-6
    NOMINAL_H_UT_M: ClassVar[float] = 1.5
    NOMINAL_H_BS_M: ClassVar[float] = 35.0  # Table 7.4.1-1 (h_BS = 35 m, default)
    RICIAN_K_LOS_DB: ClassVar[tuple[float, float] | None] = (7.0, 4.0)  # Table 7.5-6 (μ_K, σ_K)

    def __init__(
        self,
        carrier_hz: float,
        h_bs_m: float = 35.0,
        building_height_m: float = 5.0,
        street_width_m: float = 20.0,
    ) -> None:
        super().__init__(carrier_hz, h_bs_m)
        self.building_height_m = check_range("building_height_m", building_height_m, 5.0, 50.0, owner=self.name)
        self.street_width_m = check_range("street_width_m", street_width_m, 5.0, 50.0, owner=self.name)

    def __repr__(self) -> str:
        return (
            f"RMa(carrier_hz={self.carrier_hz!r}, h_bs_m={self.h_bs_m!r}, "
            f"building_height_m={self.building_height_m!r}, street_width_m={self.street_width_m!r})"
        )

    def breakpoint_m(self, h_ut_m: FloatArray) -> FloatArray:
        """Breakpoint distance d_BP = 2π·h_BS·h_UT·f_c/c [m], shape of ``h_ut_m``."""
        return 2.0 * math.pi * self.h_bs_m * np.asarray(h_ut_m) * self.carrier_hz / SPEED_OF_LIGHT_M_S

    def _pl1_db(self, d_m: FloatArray) -> FloatArray:
        h = self.building_height_m
        return (
            20.0 * np.log10(40.0 * math.pi * d_m * self.carrier_ghz / 3.0)
            + min(0.03 * h**1.72, 10.0) * np.log10(d_m)
            - min(0.044 * h**1.72, 14.77)
            + 0.002 * math.log10(h) * d_m
        )

    def _los_loss_db(self, d2d_m: FloatArray, d3d_m: FloatArray, h_ut_m: FloatArray) -> FloatArray:
        d_bp = self.breakpoint_m(h_ut_m)
        pl1 = self._pl1_db(d3d_m)
        pl2 = self._pl1_db(d_bp) + 40.0 * np.log10(d3d_m / d_bp)
        return np.where(d2d_m <= d_bp, pl1, pl2)

    def _nlos_loss_db(
        self, d2d_m: FloatArray, d3d_m: FloatArray, h_ut_m: FloatArray, los_loss_db: FloatArray
    ) -> FloatArray:
        h, w, h_bs = self.building_height_m, self.street_width_m, self.h_bs_m
        pl_prime = (
            161.04
            - 7.1 * math.log10(w)
            + 7.5 * math.log10(h)
            - (24.37 - 3.7 * (h / h_bs) ** 2) * math.log10(h_bs)
            + (43.42 - 3.1 * math.log10(h_bs)) * (np.log10(d3d_m) - 3.0)
            + 20.0 * math.log10(self.carrier_ghz)
            - (3.2 * np.log10(11.75 * h_ut_m) ** 2 - 4.97)
        )
        return np.maximum(los_loss_db, pl_prime)

    def _los_probability(self, d2d_m: FloatArray, h_ut_m: FloatArray) -> FloatArray:
        # Table 7.4.2-1, RMa.
        return np.where(d2d_m <= 10.0, 1.0, np.exp(-(d2d_m - 10.0) / 1000.0))

    def _shadow_std_los_db(self, d2d_m: ArrayLike | None, h_ut_m: ArrayLike | None) -> FloatArray | float:
        """σ_SF of LOS links: 4 dB up to d_BP, 6 dB beyond; 4 dB when ``d2d_m`` is None."""
        if d2d_m is None:
            return self.SHADOW_STD_LOS_DB
        d, h = self.clamp(d2d_m, self.NOMINAL_H_UT_M if h_ut_m is None else h_ut_m)
        return np.where(d <= self.breakpoint_m(h), self.SHADOW_STD_LOS_DB, self.SHADOW_STD_LOS_FAR_DB)
