"""Device CPU model: hardware profiles, DVFS compute time/energy, frequency policies.

The model used across the wireless-FL literature (Tran et al., "Federated Learning
over Wireless Networks: Optimization Model Design and Analysis", INFOCOM 2019;
Yang et al., "Energy Efficient Federated Learning Over Wireless Communication
Networks", IEEE TWC 2021): executing ``C`` CPU cycles at clock ``f`` takes

    t = C / f            [s]
    E = κ · C · f²       [J]   (dynamic CMOS power κ f³ times t)

with κ the effective switched capacitance, ≈ 1e-28 J/(cycle·Hz²) in those papers.
cosim derives ``C`` from the FLOPs the local update actually executes:
``C = FLOPs · cycles_per_flop``.

All functions are vectorised (numpy broadcasting over arrays of devices).
:data:`FREQUENCY_POLICIES` maps a policy name to a function choosing each device's
clock frequency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "HardwareProfile",
    "PROFILES",
    "compute_time_s",
    "compute_energy_j",
    "cycles_for_flops",
    "FREQUENCY_POLICIES",
    "FrequencyPolicy",
    "max_frequency",
    "min_energy_within_deadline",
]

WH_TO_J: float = 3600.0
"""Joules per watt-hour."""


@dataclass(frozen=True)
class HardwareProfile:
    """Compute and power characteristics of one class of device.

    Args:
        name: profile name, non-empty.
        f_min_hz: lowest DVFS clock frequency [Hz], > 0.
        f_max_hz: highest DVFS clock frequency [Hz], >= f_min_hz.
        cycles_per_flop: CPU cycles per floating-point operation [cycle/FLOP], > 0
            (< 1 for SIMD/multi-core throughput).
        kappa: effective switched capacitance κ [J/(cycle·Hz²)], > 0 (≈ 1e-28).
        tx_power_dbm: radio transmit power [dBm], in [-40, 40].
        idle_power_w: power when neither computing nor transmitting [W], >= 0.
        rx_power_w: power while receiving [W], >= 0.
        battery_j: battery energy at start [J], > 0 (``math.inf`` = mains powered).
    """

    name: str
    f_min_hz: float
    f_max_hz: float
    cycles_per_flop: float
    kappa: float
    tx_power_dbm: float
    idle_power_w: float
    rx_power_w: float
    battery_j: float

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name={self.name!r} out of range; allowed: non-empty string")
        for f in fields(self):
            if f.name == "name":
                continue
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise ValueError(f"{f.name}={value!r} must be a real number")
            if math.isnan(value):
                raise ValueError(f"{f.name}={value!r} out of range; allowed: not NaN")

        def need(field: str, ok: bool, allowed: str) -> None:
            if not ok:
                raise ValueError(f"{field}={getattr(self, field)!r} out of range; allowed: {allowed}")

        fin = math.isfinite
        need("f_min_hz", fin(self.f_min_hz) and self.f_min_hz > 0, "finite and > 0 [Hz]")
        need("f_max_hz", fin(self.f_max_hz) and self.f_max_hz >= self.f_min_hz,
             f"finite and >= f_min_hz={self.f_min_hz} [Hz]")
        need("cycles_per_flop", fin(self.cycles_per_flop) and self.cycles_per_flop > 0,
             "finite and > 0 [cycle/FLOP]")
        need("kappa", fin(self.kappa) and self.kappa > 0, "finite and > 0 [J/(cycle*Hz^2)]")
        need("tx_power_dbm", -40.0 <= self.tx_power_dbm <= 40.0, "[-40, 40] dBm")
        need("idle_power_w", fin(self.idle_power_w) and self.idle_power_w >= 0, "finite and >= 0 [W]")
        need("rx_power_w", fin(self.rx_power_w) and self.rx_power_w >= 0, "finite and >= 0 [W]")
        need("battery_j", self.battery_j > 0, "> 0 [J] (inf = mains powered)")


KAPPA_LITERATURE: float = 1e-28
"""κ used by Tran et al. (INFOCOM 2019) and Yang et al. (IEEE TWC 2021) [J/(cycle·Hz²)]."""

PROFILES: dict[str, HardwareProfile] = {
    p.name: p
    for p in (
        # Flagship phone: ~15 Wh battery.
        HardwareProfile("high", 0.5e9, 2.8e9, 0.25, KAPPA_LITERATURE, 23.0, 0.05, 0.5,
                        15.0 * WH_TO_J),
        # Mid-range phone: ~11 Wh battery.
        HardwareProfile("mid", 0.3e9, 2.0e9, 0.5, KAPPA_LITERATURE, 23.0, 0.04, 0.4,
                        11.0 * WH_TO_J),
        # Low-end phone / wearable class.
        HardwareProfile("low", 0.2e9, 1.2e9, 1.0, KAPPA_LITERATURE, 20.0, 0.03, 0.3, 20e3),
        # IoT node (microcontroller-class radio power 14 dBm).
        HardwareProfile("iot", 0.1e9, 0.8e9, 2.0, KAPPA_LITERATURE, 14.0, 0.01, 0.1, 5e3),
    )
}
"""Illustrative device classes, not measurements of any product: clock ranges and
transmit powers are typical of their class (23 dBm = NR UE power class 3), battery
capacities are round numbers, and κ follows the literature convention above."""


def _pos_array(name: str, value: ArrayLike, *, strict: bool) -> NDArray[np.float64]:
    a = np.asarray(value, dtype=np.float64)
    bad = ~(a > 0.0) if strict else ~(a >= 0.0)
    if np.any(bad):
        raise ValueError(f"{name}={a.tolist()} out of range; allowed: {'> 0' if strict else '>= 0'}")
    return a


def cycles_for_flops(flops: ArrayLike, cycles_per_flop: ArrayLike) -> NDArray[np.float64]:
    """CPU cycles needed to execute a FLOP count.

    Args:
        flops: floating-point operations [FLOP], >= 0, shape (n_devices,) or scalar.
        cycles_per_flop: [cycle/FLOP], > 0, broadcastable with ``flops``.

    Returns:
        cycles [cycle], broadcast shape.
    """
    return _pos_array("flops", flops, strict=False) * _pos_array(
        "cycles_per_flop", cycles_per_flop, strict=True
    )


def compute_time_s(cycles: ArrayLike, f_hz: ArrayLike) -> NDArray[np.float64]:
    """Time to execute ``cycles`` at clock ``f_hz``: ``t = C / f``.

    Args:
        cycles: CPU cycles [cycle], >= 0, shape (n_devices,) or scalar.
        f_hz: clock frequency [Hz], > 0, broadcastable with ``cycles``.

    Returns:
        compute time [s], broadcast shape.
    """
    return _pos_array("cycles", cycles, strict=False) / _pos_array("f_hz", f_hz, strict=True)


def compute_energy_j(cycles: ArrayLike, f_hz: ArrayLike, kappa: ArrayLike) -> NDArray[np.float64]:
    """Dynamic CPU energy to execute ``cycles`` at ``f_hz``: ``E = κ · C · f²``.

    Args:
        cycles: CPU cycles [cycle], >= 0, shape (n_devices,) or scalar.
        f_hz: clock frequency [Hz], > 0, broadcastable.
        kappa: effective switched capacitance [J/(cycle·Hz²)], > 0, broadcastable.

    Returns:
        energy [J], broadcast shape.
    """
    c = _pos_array("cycles", cycles, strict=False)
    f = _pos_array("f_hz", f_hz, strict=True)
    return _pos_array("kappa", kappa, strict=True) * c * f * f


FrequencyPolicy = Callable[
    [ArrayLike, "ArrayLike | None", ArrayLike, ArrayLike], NDArray[np.float64]
]


def _frequency_bounds(
    cycles: ArrayLike, f_min_hz: ArrayLike, f_max_hz: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    c = _pos_array("cycles", cycles, strict=False)
    lo = _pos_array("f_min_hz", f_min_hz, strict=True)
    hi = _pos_array("f_max_hz", f_max_hz, strict=True)
    if np.any(lo > hi):
        raise ValueError(f"f_min_hz={lo.tolist()} exceeds f_max_hz={hi.tolist()}")
    shape = np.broadcast_shapes(c.shape, lo.shape, hi.shape)
    return np.broadcast_to(c, shape), np.broadcast_to(lo, shape), np.broadcast_to(hi, shape)


def max_frequency(
    cycles: ArrayLike,
    time_budget_s: ArrayLike | None,
    f_min_hz: ArrayLike,
    f_max_hz: ArrayLike,
) -> NDArray[np.float64]:
    """Race to idle: always run at ``f_max``.

    Args:
        cycles: cycles to execute [cycle], shape (n_devices,).
        time_budget_s: ignored (accepted for the common policy signature).
        f_min_hz, f_max_hz: DVFS range [Hz], broadcastable to (n_devices,).

    Returns:
        clock frequency [Hz], shape (n_devices,).
    """
    _, _, hi = _frequency_bounds(cycles, f_min_hz, f_max_hz)
    return hi.copy()


def min_energy_within_deadline(
    cycles: ArrayLike,
    time_budget_s: ArrayLike | None,
    f_min_hz: ArrayLike,
    f_max_hz: ArrayLike,
) -> NDArray[np.float64]:
    """Lowest frequency that still finishes within the time budget.

    Energy κ C f² grows with f, so the slowest clock meeting ``C / f <= budget``
    is optimal: ``f = clip(C / budget, f_min, f_max)``. A budget of ``None`` or
    ``inf`` (no deadline) gives ``f_min``; a budget <= 0 or one that even
    ``f_max`` cannot meet gives ``f_max`` (finish as early as possible).

    Args:
        cycles: cycles to execute [cycle], >= 0, shape (n_devices,).
        time_budget_s: time available for compute [s], broadcastable to
            (n_devices,), or ``None``.
        f_min_hz, f_max_hz: DVFS range [Hz], broadcastable to (n_devices,).

    Returns:
        clock frequency [Hz] in [f_min, f_max], shape (n_devices,).
    """
    c, lo, hi = _frequency_bounds(cycles, f_min_hz, f_max_hz)
    if time_budget_s is None:
        return lo.copy()
    budget = np.asarray(time_budget_s, dtype=np.float64)
    if np.any(np.isnan(budget)):
        raise ValueError(f"time_budget_s={budget.tolist()} out of range; allowed: not NaN")
    budget = np.broadcast_to(budget, c.shape)
    positive = budget > 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        needed = np.where(positive, c / np.where(positive, budget, 1.0), np.inf)
    return np.clip(needed, lo, hi)


FREQUENCY_POLICIES: dict[str, FrequencyPolicy] = {
    "max": max_frequency,
    "min_energy_within_deadline": min_energy_within_deadline,
}
"""DVFS policies by scenario name; ``policy(cycles, time_budget_s, f_min_hz, f_max_hz)``."""
