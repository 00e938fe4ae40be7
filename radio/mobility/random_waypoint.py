"""Random waypoint mobility (Johnson & Maltz 1996; Camp, Boleng & Davies 2002, §2.1).

Each device walks in a straight line at a constant speed towards a waypoint drawn
uniformly in the area; on arrival it pauses ``pause_s`` seconds, then draws a new
waypoint and a new speed uniform in ``speed_mps = (min, max)``. Because the area is
convex, every leg stays inside it. One ``step`` may cover several legs: the loop
below runs over *legs* (vectorised over all devices still having time left), never
over devices.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from radio.mobility.base import MobilityModel, check_real, check_speed_range

__all__ = ["RandomWaypoint"]


class RandomWaypoint(MobilityModel):
    """Random waypoint model with optional pause at each waypoint.

    Args:
        n_devices: number of devices.
        area_m: (width, height) of the area [m].
        rng: generator for positions, waypoints and speeds.
        speed_mps: (min, max) speed range [m/s], 0 < min <= max.
        pause_s: pause at each waypoint [s], >= 0.
    """

    PARAMS = ("speed_mps", "pause_s")

    def __init__(
        self,
        n_devices: int,
        area_m: tuple[float, float],
        rng: np.random.Generator,
        *,
        speed_mps: tuple[float, float] = (0.5, 1.5),
        pause_s: float = 0.0,
        **unknown: Any,
    ) -> None:
        self._reject_unknown(unknown)
        super().__init__(n_devices, area_m, rng)
        self.speed_range_mps = check_speed_range("speed_mps", speed_mps)
        self.pause_s = check_real("pause_s", pause_s, lo=0.0)
        n = self.n_devices
        self._pos_m = self._uniform_positions_m(n)
        self._target_m = self._uniform_positions_m(n)
        self._speed_mps = self._draw_speeds_mps(n)
        self._pause_left_s = np.zeros(n)

    def _draw_speeds_mps(self, n: int) -> NDArray[np.float64]:
        lo, hi = self.speed_range_mps
        return self._rng.uniform(lo, hi, size=n)

    @property
    def positions_m(self) -> NDArray[np.float64]:
        return self._pos_m.copy()

    @property
    def speeds_mps(self) -> NDArray[np.float64]:
        """Current speed [m/s], shape (n_devices,); 0 while pausing."""
        return np.where(self._pause_left_s > 0.0, 0.0, self._speed_mps)

    def _advance(self, dt_s: float) -> NDArray[np.float64]:
        t_left_s = np.full(self.n_devices, dt_s)
        dist_m = np.zeros(self.n_devices)
        while True:
            idx = np.flatnonzero(t_left_s > 0.0)
            if idx.size == 0:
                break
            # Pause phase: consume pause time first.
            wait_s = np.minimum(self._pause_left_s[idx], t_left_s[idx])
            self._pause_left_s[idx] -= wait_s
            t_left_s[idx] -= wait_s
            mov = idx[t_left_s[idx] > 0.0]
            if mov.size == 0:
                continue
            vec_m = self._target_m[mov] - self._pos_m[mov]
            leg_m = np.hypot(vec_m[:, 0], vec_m[:, 1])
            speed = self._speed_mps[mov]
            t_leg_s = leg_m / speed
            arrive = t_leg_s <= t_left_s[mov]
            # Devices that do not reach the waypoint in the remaining time.
            go = mov[~arrive]
            walk_m = speed[~arrive] * t_left_s[go]
            frac = (walk_m / leg_m[~arrive])[:, None]
            self._pos_m[go] += vec_m[~arrive] * frac
            dist_m[go] += walk_m
            t_left_s[go] = 0.0
            # Devices that reach it: snap, pause, draw the next leg.
            arr = mov[arrive]
            if arr.size:
                self._pos_m[arr] = self._target_m[arr]
                dist_m[arr] += leg_m[arrive]
                t_left_s[arr] -= t_leg_s[arrive]
                self._pause_left_s[arr] = self.pause_s
                self._target_m[arr] = self._uniform_positions_m(arr.size)
                self._speed_mps[arr] = self._draw_speeds_mps(arr.size)
        self._clip_to_area(self._pos_m)
        return dist_m
