"""Gauss–Markov mobility (Liang & Haas, INFOCOM 1999; Camp et al. 2002, §2.5).

Every ``update_interval_s`` seconds each device's speed ``s`` and direction ``d``
are updated as first-order autoregressive processes

    s_n = α s_{n-1} + (1 − α) s̄ + sqrt(1 − α²) σ_s w_s,
    d_n = α d_{n-1} + (1 − α) d̄ + sqrt(1 − α²) σ_d w_d,    w ~ N(0, 1),

with ``s̄ = mean_speed_mps`` and a per-device mean direction ``d̄`` drawn uniformly
at start. Speeds are clipped at 0. Between updates a device moves in a straight
line at constant velocity. At the area boundary it reflects specularly: the
velocity component normal to the wall flips, and so do the current and the mean
direction (as in ns-3's ``GaussMarkovMobilityModel``), so devices do not keep
pushing into a wall. Reflection is computed in closed form (triangle-wave folding),
so any number of bounces within one segment is exact and the path length equals
speed × time.

All devices share the update clock; ``step`` loops only over update instants
crossed by the step, vectorised over devices.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from radio.mobility.base import MobilityModel, check_real

__all__ = ["GaussMarkov"]


class GaussMarkov(MobilityModel):
    """Gauss–Markov model with boundary reflection.

    Args:
        n_devices: number of devices.
        area_m: (width, height) of the area [m].
        rng: generator for initial state and the Gaussian innovations.
        mean_speed_mps: asymptotic mean speed s̄ [m/s], >= 0.
        alpha: memory α in [0, 1] (0: memoryless, 1: constant velocity).
        speed_std_mps: σ_s of the speed process [m/s], >= 0.
        direction_std_rad: σ_d of the direction process [rad], >= 0.
        update_interval_s: time between AR(1) updates [s], > 0.
    """

    PARAMS = ("mean_speed_mps", "alpha", "speed_std_mps", "direction_std_rad", "update_interval_s")

    def __init__(
        self,
        n_devices: int,
        area_m: tuple[float, float],
        rng: np.random.Generator,
        *,
        mean_speed_mps: float = 1.0,
        alpha: float = 0.75,
        speed_std_mps: float = 0.3,
        direction_std_rad: float = 0.5,
        update_interval_s: float = 1.0,
        **unknown: Any,
    ) -> None:
        self._reject_unknown(unknown)
        super().__init__(n_devices, area_m, rng)
        self.mean_speed_mps = check_real("mean_speed_mps", mean_speed_mps, lo=0.0)
        self.alpha = check_real("alpha", alpha, lo=0.0, hi=1.0)
        self.speed_std_mps = check_real("speed_std_mps", speed_std_mps, lo=0.0)
        self.direction_std_rad = check_real("direction_std_rad", direction_std_rad, lo=0.0)
        self.update_interval_s = check_real(
            "update_interval_s", update_interval_s, lo=0.0, lo_open=True
        )
        n = self.n_devices
        self._pos_m = self._uniform_positions_m(n)
        self._speed_mps = np.full(n, self.mean_speed_mps)
        self._mean_dir_rad = self._rng.uniform(0.0, 2.0 * np.pi, size=n)
        self._dir_rad = self._mean_dir_rad.copy()
        self._to_update_s = self.update_interval_s

    @property
    def positions_m(self) -> NDArray[np.float64]:
        return self._pos_m.copy()

    @property
    def speeds_mps(self) -> NDArray[np.float64]:
        return self._speed_mps.copy()

    def _update_velocity(self) -> None:
        """One AR(1) update of speed and direction for all devices."""
        a = self.alpha
        noise = np.sqrt(1.0 - a * a)
        w = self._rng.standard_normal(size=(2, self.n_devices))
        s = a * self._speed_mps + (1.0 - a) * self.mean_speed_mps + noise * self.speed_std_mps * w[0]
        self._speed_mps = np.maximum(s, 0.0)
        self._dir_rad = (
            a * self._dir_rad + (1.0 - a) * self._mean_dir_rad + noise * self.direction_std_rad * w[1]
        )

    def _move(self, seg_s: float) -> None:
        """Constant-velocity move for ``seg_s`` seconds with specular reflection."""
        vel = self._speed_mps[:, None] * np.stack(
            (np.cos(self._dir_rad), np.sin(self._dir_rad)), axis=1
        )
        free_m = self._pos_m + vel * seg_s  # unfolded position
        size = self._size_m
        bounces = np.floor(free_m / size)  # number of wall crossings (signed)
        folded = np.mod(free_m, 2.0 * size)
        self._pos_m = np.where(folded > size, 2.0 * size - folded, folded)
        self._clip_to_area(self._pos_m)
        odd = np.mod(bounces, 2.0) == 1.0
        # x-wall reflection: d -> pi - d ; y-wall reflection: d -> -d
        for axis, mirror in ((0, np.pi), (1, 0.0)):
            flip = odd[:, axis]
            self._dir_rad = np.where(flip, mirror - self._dir_rad, self._dir_rad)
            self._mean_dir_rad = np.where(flip, mirror - self._mean_dir_rad, self._mean_dir_rad)

    def _advance(self, dt_s: float) -> NDArray[np.float64]:
        dist_m = np.zeros(self.n_devices)
        t_left_s = dt_s
        while t_left_s > 0.0:
            seg_s = min(t_left_s, self._to_update_s)
            self._move(seg_s)
            dist_m += self._speed_mps * seg_s
            t_left_s -= seg_s
            self._to_update_s -= seg_s
            if self._to_update_s <= 0.0:
                self._update_velocity()
                self._to_update_s = self.update_interval_s
        return dist_m
