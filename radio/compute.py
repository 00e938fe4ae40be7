"""Device CPU model: hardware profiles, DVFS compute time/energy, frequency policies.

The dynamic part is the model used across the wireless-FL literature (Tran et al.,
"Federated Learning over Wireless Networks: Optimization Model Design and Analysis",
INFOCOM 2019; Yang et al., "Energy Efficient Federated Learning Over Wireless
Communication Networks", IEEE TWC 2021), to which cosim adds the static floor that
mobile-SoC measurements show: executing ``C`` CPU cycles at clock ``f`` takes

    t = C / f                                      [s]
    E = (P_static + κ·f³) · t = P_static·C/f + κ·C·f²   [J]

with κ the effective switched capacitance (≈ 1e-28 J/(cycle·Hz²) in those papers)
and P_static the power the busy CPU cluster draws whatever its clock (leakage,
clock tree, uncore, memory). Without P_static the energy κ·C·f² falls
monotonically with f, so "save energy" always means f_min; with it the energy per
cycle P_static/f + κ·f² is convex in f with its minimum at

    f* = (P_static / (2κ))^(1/3),

the "energy/frequency convexity rule" measured on a smartphone by De Vogeleer et al.
("The Energy/Frequency Convexity Rule: Modeling and Experimental Validation on Mobile
Devices", PPAM 2013, LNCS 8384, arXiv:1401.4655): energy per unit of work has a clear
minimum inside the 0.2–1.6 GHz DVFS window of the phone they measured. The
profiles' P_static put f* at 0.5–1.1 GHz, inside each profile's DVFS range.
cosim derives ``C`` from the FLOPs the local update actually executes:
``C = FLOPs · cycles_per_flop``. The radio's drawn power (transmit, receive, idle)
is in :mod:`radio.power`.

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
    "energy_optimal_frequency_hz",
]

WH_TO_J: float = 3600.0
"""Joules per watt-hour."""


@dataclass(frozen=True)
class HardwareProfile:
    """Compute and power characteristics of one class of device.

    Powers are what the device *draws* from its battery (see :mod:`radio.power` for
    the radio states and their sources); ``tx_power_dbm`` is the most the antenna
    *radiates* (P_CMAX).

    Args:
        name: profile name, non-empty.
        f_min_hz: lowest DVFS clock frequency [Hz], > 0.
        f_max_hz: highest DVFS clock frequency [Hz], >= f_min_hz.
        cycles_per_flop: CPU cycles per floating-point operation [cycle/FLOP], > 0
            (< 1 for SIMD/multi-core throughput).
        kappa: effective switched capacitance κ [J/(cycle·Hz²)], > 0 (≈ 1e-28).
        tx_power_dbm: maximum radiated transmit power P_CMAX [dBm], in [-40, 40].
        idle_power_w: drawn power when neither computing nor transferring [W], >= 0.
        rx_power_w: drawn power while receiving [W], >= 0.
        battery_j: battery energy at start [J], > 0 (``math.inf`` = mains powered).
        pa_efficiency: power-amplifier efficiency η_PA = radiated / PA supply power,
            in (0, 1].
        tx_circuit_power_w: drawn power of the transmitting modem apart from the PA
            (baseband, RF transceiver, connected-mode base) [W], >= 0.
        cpu_static_power_w: static power of the busy CPU cluster, drawn whatever
            the clock [W], >= 0.
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
    pa_efficiency: float = 0.25
    tx_circuit_power_w: float = 1.2
    cpu_static_power_w: float = 0.2

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
        need("pa_efficiency", 0.0 < self.pa_efficiency <= 1.0, "(0, 1]")
        need("tx_circuit_power_w", fin(self.tx_circuit_power_w) and self.tx_circuit_power_w >= 0,
             "finite and >= 0 [W]")
        need("cpu_static_power_w", fin(self.cpu_static_power_w) and self.cpu_static_power_w >= 0,
             "finite and >= 0 [W]")


KAPPA_LITERATURE: float = 1e-28
"""κ used by Tran et al. (INFOCOM 2019) and Yang et al. (IEEE TWC 2021) [J/(cycle·Hz²)]."""

PROFILES: dict[str, HardwareProfile] = {
    p.name: p
    for p in (
        # Flagship phone: ~15 Wh battery; envelope-tracking PA; f* = 1.14 GHz.
        HardwareProfile("high", f_min_hz=0.5e9, f_max_hz=2.8e9, cycles_per_flop=0.25,
                        kappa=KAPPA_LITERATURE, tx_power_dbm=23.0, idle_power_w=0.05,
                        rx_power_w=1.0, battery_j=15.0 * WH_TO_J, pa_efficiency=0.30,
                        tx_circuit_power_w=1.2, cpu_static_power_w=0.3),
        # Mid-range phone: ~11 Wh battery; f* = 1.0 GHz.
        HardwareProfile("mid", f_min_hz=0.3e9, f_max_hz=2.0e9, cycles_per_flop=0.5,
                        kappa=KAPPA_LITERATURE, tx_power_dbm=23.0, idle_power_w=0.04,
                        rx_power_w=1.0, battery_j=11.0 * WH_TO_J, pa_efficiency=0.25,
                        tx_circuit_power_w=1.2, cpu_static_power_w=0.2),
        # Low-end phone / wearable class (20 dBm); f* = 0.79 GHz.
        HardwareProfile("low", f_min_hz=0.2e9, f_max_hz=1.2e9, cycles_per_flop=1.0,
                        kappa=KAPPA_LITERATURE, tx_power_dbm=20.0, idle_power_w=0.03,
                        rx_power_w=0.9, battery_j=20e3, pa_efficiency=0.20,
                        tx_circuit_power_w=1.1, cpu_static_power_w=0.1),
        # IoT module (14 dBm, microcontroller-class CPU); radio powers from the
        # 3GPP cellular-IoT battery-life assumptions (see radio.power); f* = 0.46 GHz.
        HardwareProfile("iot", f_min_hz=0.1e9, f_max_hz=0.8e9, cycles_per_flop=2.0,
                        kappa=KAPPA_LITERATURE, tx_power_dbm=14.0, idle_power_w=0.003,
                        rx_power_w=0.08, battery_j=5e3, pa_efficiency=0.45,
                        tx_circuit_power_w=0.056, cpu_static_power_w=0.02),
    )
}
"""Device classes, not measurements of any one product: clock ranges and transmit
powers are typical of their class (23 dBm = NR UE power class 3), battery capacities
are round numbers, κ follows the literature convention above, and the drawn radio
powers (η_PA, circuit, receive, idle) are rounded from the measurements cited in
:mod:`radio.power`. P_static sets the energy-optimal clock f* = (P_static/2κ)^(1/3)
inside each DVFS range, as De Vogeleer et al. measured on a phone (module docstring)."""


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


def compute_energy_j(
    cycles: ArrayLike, f_hz: ArrayLike, kappa: ArrayLike, static_power_w: ArrayLike = 0.0
) -> NDArray[np.float64]:
    """CPU energy to execute ``cycles`` at ``f_hz``: ``E = P_static·C/f + κ·C·f²``.

    That is (P_static + κ f³) drawn for t = C/f; with ``static_power_w = 0`` it is the
    literature's dynamic-only κ·C·f².

    Args:
        cycles: CPU cycles [cycle], >= 0, shape (n_devices,) or scalar.
        f_hz: clock frequency [Hz], > 0, broadcastable.
        kappa: effective switched capacitance [J/(cycle·Hz²)], > 0, broadcastable.
        static_power_w: static power of the busy CPU [W], >= 0, broadcastable.

    Returns:
        energy [J], broadcast shape.
    """
    c = _pos_array("cycles", cycles, strict=False)
    f = _pos_array("f_hz", f_hz, strict=True)
    k = _pos_array("kappa", kappa, strict=True)
    p_static = _pos_array("static_power_w", static_power_w, strict=False)
    return p_static * c / f + k * c * f * f


def energy_optimal_frequency_hz(kappa: ArrayLike, static_power_w: ArrayLike) -> NDArray[np.float64]:
    """Unconstrained minimiser of the energy per cycle ``P_static/f + κ·f²``.

    d/df (P_static/f + κ f²) = −P_static/f² + 2κf = 0 gives ``f* = (P_static/(2κ))^(1/3)``;
    the function is convex on f > 0, so f* is its only minimum (0 when P_static = 0).

    Args:
        kappa: effective switched capacitance [J/(cycle·Hz²)], > 0, shape (n_devices,).
        static_power_w: static CPU power [W], >= 0, broadcastable.

    Returns:
        f* [Hz], broadcast shape (not clipped to any DVFS range).
    """
    k = _pos_array("kappa", kappa, strict=True)
    p_static = _pos_array("static_power_w", static_power_w, strict=False)
    return np.cbrt(p_static / (2.0 * k))


FrequencyPolicy = Callable[..., NDArray[np.float64]]
"""``policy(cycles, time_budget_s, f_min_hz, f_max_hz, *, kappa=None, static_power_w=None)``."""


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
    *,
    kappa: ArrayLike | None = None,
    static_power_w: ArrayLike | None = None,
) -> NDArray[np.float64]:
    """Race to idle: always run at ``f_max``.

    Args:
        cycles: cycles to execute [cycle], shape (n_devices,).
        time_budget_s: ignored (accepted for the common policy signature).
        f_min_hz, f_max_hz: DVFS range [Hz], broadcastable to (n_devices,).
        kappa, static_power_w: ignored (common policy signature).

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
    *,
    kappa: ArrayLike | None = None,
    static_power_w: ArrayLike | None = None,
) -> NDArray[np.float64]:
    """The clock that minimises compute energy while finishing within the budget.

    The energy (P_static/f + κ f²)·C is convex in f with its minimum at
    f* = (P_static/(2κ))^(1/3) (:func:`energy_optimal_frequency_hz`); meeting the
    budget needs f >= C/budget. The minimum over the feasible interval
    [max(f_min, C/budget), f_max] is therefore f* clipped into it — closed form,
    vectorised. A budget of ``None`` or ``inf`` (no deadline) leaves only the DVFS
    range; a budget <= 0 or one that even ``f_max`` cannot meet gives ``f_max``
    (finish as early as possible). Without ``kappa``/``static_power_w`` (or with
    P_static = 0) f* = 0 and this is the slowest clock meeting the budget.

    Args:
        cycles: cycles to execute [cycle], >= 0, shape (n_devices,).
        time_budget_s: time available for compute [s], broadcastable to
            (n_devices,), or ``None``.
        f_min_hz, f_max_hz: DVFS range [Hz], broadcastable to (n_devices,).
        kappa: effective switched capacitance [J/(cycle·Hz²)], > 0, broadcastable.
        static_power_w: static CPU power [W], >= 0, broadcastable.

    Returns:
        clock frequency [Hz] in [f_min, f_max], shape (n_devices,).
    """
    c, lo, hi = _frequency_bounds(cycles, f_min_hz, f_max_hz)
    if kappa is None or static_power_w is None:
        best = np.zeros(c.shape)
    else:
        best = np.broadcast_to(energy_optimal_frequency_hz(kappa, static_power_w), c.shape)
    if time_budget_s is None:
        return np.clip(best, lo, hi)
    budget = np.asarray(time_budget_s, dtype=np.float64)
    if np.any(np.isnan(budget)):
        raise ValueError(f"time_budget_s={budget.tolist()} out of range; allowed: not NaN")
    budget = np.broadcast_to(budget, c.shape)
    positive = budget > 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        needed = np.where(positive, c / np.where(positive, budget, 1.0), np.inf)
    return np.clip(np.maximum(best, needed), lo, hi)


FREQUENCY_POLICIES: dict[str, FrequencyPolicy] = {
    "max": max_frequency,
    "min_energy_within_deadline": min_energy_within_deadline,
}
"""DVFS policies by scenario name; ``policy(cycles, time_budget_s, f_min_hz, f_max_hz,
kappa=..., static_power_w=...)``."""
