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
        n = self.n_devices
        t_left_s = np.full(n, float(dt_s))
        dist_m = np.zeros(n)
        # The first pass covers every device with whole-array operations (no index
        # arrays); later passes only the few devices that reached a waypoint with time left.
        sel: slice | NDArray[np.int64] = slice(None)
        ids = np.arange(n)
        while True:
            t_s = t_left_s[sel]
            pause_s = self._pause_left_s[sel]
            wait_s = np.minimum(pause_s, t_s)
            self._pause_left_s[sel] = pause_s - wait_s
            t_s = t_s - wait_s
            pos_m = self._pos_m[sel]
            target_m = self._target_m[sel]
            speed = self._speed_mps[sel]
            vec_m = target_m - pos_m
            leg_m = np.hypot(vec_m[:, 0], vec_m[:, 1])
            t_leg_s = leg_m / speed
            moving = t_s > 0.0
            arrive = moving & (t_leg_s <= t_s)
            walking = moving & ~arrive
            walk_m = np.where(walking, speed * t_s, 0.0)
            frac = np.where(walking, walk_m / np.where(leg_m > 0.0, leg_m, 1.0), 0.0)
            self._pos_m[sel] = np.where(arrive[:, None], target_m, pos_m + vec_m * frac[:, None])
            dist_m[sel] += np.where(arrive, leg_m, walk_m)
            t_s = np.where(arrive, t_s - t_leg_s, 0.0)
            t_left_s[sel] = t_s
            arr = ids[sel][arrive]
            if arr.size == 0:
                break
            # Devices that reached their waypoint: pause, draw the next leg.
            self._pause_left_s[arr] = self.pause_s
            self._target_m[arr] = self._uniform_positions_m(arr.size)
            self._speed_mps[arr] = self._draw_speeds_mps(arr.size)
            sel = arr[t_s[arrive] > 0.0]
            if sel.size == 0:
                break
        self._clip_to_area(self._pos_m)
        return dist_m
