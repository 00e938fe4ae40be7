"""Log-distance path loss: PL(d) = PL(d0) + 10·n·log10(d3D / d0), d3D >= d0.

PL(d0) defaults to the Friis free-space loss at the reference distance d0. The
model has one LOS state: ``loss_db`` ignores ``los``; the LOS probability, the
shadow-fading σ and the decorrelation distance are constructor parameters.
Distances below d0 are clamped to d0 (the model is not defined inside d0).
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike

from radio.pathloss.base import FloatArray, PathLossModel, check_range
from radio.pathloss.free_space import friis_loss_db

__all__ = ["LogDistance"]


class LogDistance(PathLossModel):
    """Single-slope log-distance model with log-normal shadowing.

    Args:
        carrier_hz: carrier frequency [Hz], > 0 (used for the default PL(d0)).
        h_bs_m: BS antenna height [m], >= 0 (only enters d3D).
        exponent: path-loss exponent n, in [1, 8].
        reference_distance_m: reference distance d0 [m], > 0.
        reference_loss_db: PL(d0) [dB]; None = Friis free-space loss at d0.
        los_probability: constant P_LOS returned by :meth:`los_probability`, [0, 1].
        shadow_std_db: σ_SF [dB] for every link, in [0, 30].
        decorrelation_m: shadow decorrelation distance [m], > 0.
    """

    name: ClassVar[str] = "log_distance"
    EXPONENT_RANGE: ClassVar[tuple[float, float]] = (1.0, 8.0)

    def __init__(
        self,
        carrier_hz: float,
        h_bs_m: float = 0.0,
        exponent: float = 3.0,
        reference_distance_m: float = 1.0,
        reference_loss_db: float | None = None,
        los_probability: float = 1.0,
        shadow_std_db: float = 0.0,
        decorrelation_m: float = 50.0,
    ) -> None:
        super().__init__(carrier_hz, h_bs_m)
        self.exponent = check_range("exponent", exponent, *self.EXPONENT_RANGE, owner=self.name)
        self.reference_distance_m = check_range(
            "reference_distance_m", reference_distance_m, 1e-3, 1e4, owner=self.name
        )
        if reference_loss_db is None:
            self.reference_loss_db = float(friis_loss_db(self.reference_distance_m, self.carrier_hz))
        else:
            self.reference_loss_db = check_range("reference_loss_db", reference_loss_db, -50.0, 300.0, owner=self.name)
        self.los_probability_value = check_range("los_probability", los_probability, 0.0, 1.0, owner=self.name)
        self.shadow_std_value_db = check_range("shadow_std_db", shadow_std_db, 0.0, 30.0, owner=self.name)
        d = check_range("decorrelation_m", decorrelation_m, 1e-9, math.inf, owner=self.name)
        self._decorrelation_los_m = self._decorrelation_nlos_m = d

    def _los_loss_db(self, d2d_m: FloatArray, d3d_m: FloatArray, h_ut_m: FloatArray) -> FloatArray:
        d = np.maximum(d3d_m, self.reference_distance_m)
        return self.reference_loss_db + 10.0 * self.exponent * np.log10(d / self.reference_distance_m)

    def _los_probability(self, d2d_m: FloatArray, h_ut_m: FloatArray) -> FloatArray:
        return np.full_like(d2d_m, self.los_probability_value)

    def shadow_std_db(
        self, los: ArrayLike, d2d_m: ArrayLike | None = None, h_ut_m: ArrayLike | None = None
    ) -> FloatArray:
        """σ_SF [dB] = the ``shadow_std_db`` parameter for every link, shape of ``los``."""
        return np.full(np.shape(los), self.shadow_std_value_db, dtype=np.float64)
