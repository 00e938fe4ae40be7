"""Shared base class and parameter validation for all mobility models.

A mobility model owns the 2-D positions of ``n_devices`` devices inside the
rectangle ``[0, W] x [0, H]`` [m] and advances all of them at once with
``step(dt_s)``. Subclasses live one per module (``static.py``,
``random_waypoint.py``, ``gauss_markov.py``, ``street_grid.py``) and are
registered by name in :data:`radio.mobility.MOBILITY`.

Contract (pinned by ``tests/radio/test_mobility.py`` for every registered model):

* constructor ``Model(n_devices, area_m, rng, **params)``; an unknown parameter
  raises ``TypeError`` naming it and listing the allowed ones; a bad value raises
  ``ValueError`` naming the parameter, the value and the allowed range;
* ``positions_m`` is a fresh copy, shape (n_devices, 2) [m];
* ``speeds_mps`` is a fresh copy, shape (n_devices,) [m/s] (current speed);
* ``step(dt_s)`` advances every device by ``dt_s`` seconds and returns the path
  length each device travelled during the step [m], shape (n_devices,);
* all randomness comes from the ``numpy.random.Generator`` given at construction,
  so the same seed gives the same trajectory, and models pickle.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["MobilityModel", "check_real", "check_speed_range"]


class MobilityModel(ABC):
    """Base class: validated area, device count and generator, plus helpers.

    Args:
        n_devices: number of devices (>= 0).
        area_m: (width, height) of the simulation area [m], both finite and > 0.
        rng: generator for every random draw of this model.
    """

    PARAMS: ClassVar[tuple[str, ...]] = ()
    """Names of the keyword parameters the subclass accepts."""

    def __init__(
        self,
        n_devices: int,
        area_m: tuple[float, float],
        rng: np.random.Generator,
    ) -> None:
        if isinstance(n_devices, bool) or not isinstance(n_devices, (int, np.integer)):
            raise TypeError(f"n_devices must be an int, got {type(n_devices).__name__}")
        if n_devices < 0:
            raise ValueError(f"n_devices={n_devices} is out of range; allowed: >= 0")
        if len(area_m) != 2:
            raise ValueError(f"area_m={area_m!r} must be (width_m, height_m)")
        width_m, height_m = float(area_m[0]), float(area_m[1])
        for name, value in (("area_m[0] (width)", width_m), ("area_m[1] (height)", height_m)):
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f"{name}={value} is out of range; allowed: finite and > 0")
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        self.n_devices: int = int(n_devices)
        self.area_m: tuple[float, float] = (width_m, height_m)
        self._rng = rng
        self._size_m = np.array([width_m, height_m])

    # ------------------------------------------------------------------ API
    @property
    @abstractmethod
    def positions_m(self) -> NDArray[np.float64]:
        """Device positions [m], shape (n_devices, 2), a copy."""

    @property
    @abstractmethod
    def speeds_mps(self) -> NDArray[np.float64]:
        """Current device speeds [m/s], shape (n_devices,), a copy."""

    @abstractmethod
    def _advance(self, dt_s: float) -> NDArray[np.float64]:
        """Advance all devices by ``dt_s`` > 0 seconds; return path length [m]."""

    def step(self, dt_s: float) -> NDArray[np.float64]:
        """Advance every device by ``dt_s`` seconds.

        Args:
            dt_s: time step [s], finite and >= 0.

        Returns:
            path length travelled by each device during the step [m], shape
            (n_devices,). It is >= the straight-line displacement.
        """
        dt_s = float(dt_s)
        if not (math.isfinite(dt_s) and dt_s >= 0.0):
            raise ValueError(f"dt_s={dt_s} is out of range; allowed: finite and >= 0")
        if dt_s == 0.0 or self.n_devices == 0:
            return np.zeros(self.n_devices)
        return self._advance(dt_s)

    @property
    def steps_devices(self) -> bool:
        """Whether :meth:`step_devices` works (devices move independently of each other)."""
        return type(self)._advance_devices is not MobilityModel._advance_devices

    def step_devices(self, devices: NDArray[np.int64], dt_s: ArrayLike) -> NDArray[np.float64]:
        """Advance only ``devices`` (shape (k,), distinct), each by its own ``dt_s`` [s]
        (shape (k,) or a scalar, >= 0); return the path length of each [m], shape (k,).

        Raises NotImplementedError for models without :attr:`steps_devices`.
        """
        devices = np.asarray(devices, dtype=np.int64)
        dt = np.broadcast_to(np.asarray(dt_s, dtype=np.float64), devices.shape)
        if not np.all(np.isfinite(dt) & (dt >= 0.0)):
            raise ValueError(f"dt_s min {np.min(dt)!r} is out of range; allowed: finite and >= 0")
        return self._advance_devices(devices, dt)

    def _advance_devices(self, devices: NDArray[np.int64], dt_s: NDArray[np.float64]) -> NDArray[np.float64]:
        raise NotImplementedError(f"{type(self).__name__} advances all devices together")

    def positions_of(self, devices: NDArray[np.int64]) -> NDArray[np.float64]:
        """Positions of ``devices`` [m], shape (k, 2)."""
        return self.positions_m[devices]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_devices={self.n_devices}, area_m={self.area_m})"

    # -------------------------------------------------------------- helpers
    @classmethod
    def _reject_unknown(cls, unknown: dict[str, Any]) -> None:
        """Raise ``TypeError`` naming unknown keyword parameters."""
        if unknown:
            names = ", ".join(sorted(unknown))
            allowed = ", ".join(cls.PARAMS) or "(none)"
            raise TypeError(
                f"{cls.__name__}: unknown parameter(s) {names}; allowed: {allowed}"
            )

    def _uniform_positions_m(self, n: int) -> NDArray[np.float64]:
        """``n`` points uniform in the area [m], shape (n, 2)."""
        return self._rng.uniform(0.0, 1.0, size=(n, 2)) * self._size_m

    def _clip_to_area(self, xy_m: NDArray[np.float64]) -> None:
        """Clip positions in place to the area (guards against round-off only)."""
        np.clip(xy_m, 0.0, self._size_m, out=xy_m)


def check_speed_range(name: str, value: Any) -> tuple[float, float]:
    """Validate a (min, max) speed range [m/s] with 0 < min <= max < inf.

    Args:
        name: parameter name used in error messages.
        value: candidate (min, max) pair [m/s].

    Returns:
        the validated pair as floats.
    """
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} must be a (min, max) pair of speeds [m/s]") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and 0.0 < lo <= hi):
        raise ValueError(
            f"{name}={value!r} is out of range; allowed: 0 < min <= max < inf [m/s]"
        )
    return lo, hi


def check_real(
    name: str, value: Any, *, lo: float, hi: float = math.inf,
    lo_open: bool = False, hi_open: bool = False,
) -> float:
    """Validate a finite real parameter inside ``[lo, hi]`` (ends optionally open).

    Args:
        name: parameter name used in error messages.
        value: candidate value (unit per parameter).
        lo, hi: allowed bounds; ``lo_open``/``hi_open`` exclude the end points.

    Returns:
        the validated value as float.
    """
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} must be a real number") from None
    ok = math.isfinite(x) and (x > lo if lo_open else x >= lo) and (
        x < hi if hi_open else x <= hi
    )
    if not ok:
        left = "(" if lo_open else "["
        right = ")" if hi_open or math.isinf(hi) else "]"
        raise ValueError(f"{name}={value!r} is out of range; allowed: {left}{lo}, {hi}{right}")
    return x
