"""Static mobility: devices never move.

Positions are either given (``positions_m``) or drawn uniformly in the area.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from radio.mobility.base import MobilityModel

__all__ = ["Static"]


class Static(MobilityModel):
    """Devices stay where they are placed.

    Args:
        n_devices: number of devices.
        area_m: (width, height) of the area [m].
        rng: generator used only for the default uniform placement.
        positions_m: optional fixed positions [m], shape (n_devices, 2), inside
            the area. Default: uniform random in the area.
    """

    PARAMS = ("positions_m",)

    def __init__(
        self,
        n_devices: int,
        area_m: tuple[float, float],
        rng: np.random.Generator,
        *,
        positions_m: ArrayLike | None = None,
        **unknown: Any,
    ) -> None:
        self._reject_unknown(unknown)
        super().__init__(n_devices, area_m, rng)
        if positions_m is None:
            self._pos_m = self._uniform_positions_m(self.n_devices)
        else:
            pos = np.array(positions_m, dtype=np.float64)
            if pos.shape != (self.n_devices, 2):
                raise ValueError(
                    f"positions_m has shape {pos.shape}; allowed: ({self.n_devices}, 2)"
                )
            inside = np.all(np.isfinite(pos)) and np.all((pos >= 0.0) & (pos <= self._size_m))
            if not inside:
                raise ValueError(
                    f"positions_m={pos.tolist()} leaves the area; allowed: "
                    f"[0, {self.area_m[0]}] x [0, {self.area_m[1]}] m"
                )
            self._pos_m = pos

    @property
    def positions_m(self) -> NDArray[np.float64]:
        return self._pos_m.copy()

    @property
    def speeds_mps(self) -> NDArray[np.float64]:
        return np.zeros(self.n_devices)

    def _advance(self, dt_s: float) -> NDArray[np.float64]:
        return np.zeros(self.n_devices)

    def _advance_devices(self, devices: NDArray[np.int64], dt_s: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.zeros(devices.size)

    def positions_of(self, devices: NDArray[np.int64]) -> NDArray[np.float64]:
        return self._pos_m[devices]
