"""Per-device hardware, battery and energy accounts, held as arrays over all devices.

Powers here are drawn from the battery (:mod:`radio.power`): transmitting draws
P_circuit + P_radiated/η_PA (:meth:`Fleet.drawn_tx_power_w`), receiving P_rx, waiting
P_idle, computing P_static + κf³ (:func:`radio.compute.compute_energy_j`).

Energy is booked into four components — compute, transmit, receive, idle — whose sum
is the device's total; the battery is drained by the same amounts. A device whose
battery reaches zero is dead from then on (it is never selected again and any flow it
holds is cancelled).
"""

from __future__ import annotations

import numpy as np

from radio.compute import PROFILES
from radio.power import drawn_tx_power_w

ENERGY_COMPONENTS = ("compute", "tx", "rx", "idle")


class Fleet:
    """Hardware profile parameters and energy state of every device (arrays of shape (n,))."""

    def __init__(self, profile_fractions: dict[str, float], n_devices: int, rng: np.random.Generator) -> None:
        names = sorted(profile_fractions)
        weights = np.array([profile_fractions[n] for n in names], dtype=float)
        counts = np.floor(weights / weights.sum() * n_devices).astype(int)
        # Largest remainder so the mix is exact, then a seeded shuffle of who gets what.
        shortfall = n_devices - counts.sum()
        order = np.argsort(-(weights / weights.sum() * n_devices - counts), kind="stable")
        counts[order[:shortfall]] += 1
        profile_index = np.repeat(np.arange(len(names)), counts)
        rng.shuffle(profile_index)
        self.n_devices = n_devices
        self.profile_names = names
        self.profile_index = profile_index
        profiles = [PROFILES[n] for n in names]

        def column(attr: str) -> np.ndarray:
            return np.array([getattr(p, attr) for p in profiles], dtype=float)[profile_index]

        self.f_min_hz = column("f_min_hz")
        self.f_max_hz = column("f_max_hz")
        self.cycles_per_flop = column("cycles_per_flop")
        self.kappa = column("kappa")
        self.tx_power_dbm = column("tx_power_dbm")
        self.tx_power_w = 10.0 ** (self.tx_power_dbm / 10.0) / 1000.0  # radiated P_CMAX
        self.pa_efficiency = column("pa_efficiency")
        self.tx_circuit_power_w = column("tx_circuit_power_w")
        self.cpu_static_power_w = column("cpu_static_power_w")
        self.idle_power_w = column("idle_power_w")
        self.rx_power_w = column("rx_power_w")
        self.battery_capacity_j = column("battery_j")
        self.battery_j = self.battery_capacity_j.copy()
        self.energy_j = {c: np.zeros(n_devices) for c in ENERGY_COMPONENTS}
        self.alive = np.ones(n_devices, dtype=bool)
        self.died_at_s = np.full(n_devices, np.nan)

    def profile(self, device: int) -> str:
        """The hardware profile name of `device`."""
        return self.profile_names[self.profile_index[device]]

    def drawn_tx_power_w(self, devices: np.ndarray, radiated_w: np.ndarray | float | None = None) -> np.ndarray:
        """Battery power [W] `devices` draw while radiating `radiated_w` [W] (default: P_CMAX).

        Vectorised over `devices` (shape (k,)); `radiated_w` broadcasts against it. This
        is the conversion the uplink schedulers apply to the power their rate used.
        """
        devices = np.asarray(devices, dtype=np.int64)
        radiated = self.tx_power_w[devices] if radiated_w is None else radiated_w
        return drawn_tx_power_w(radiated, self.pa_efficiency[devices], self.tx_circuit_power_w[devices])

    def charge(self, component: str, devices: np.ndarray, energy_j: np.ndarray, now_s: float) -> np.ndarray:
        """Book `energy_j` [J] of `component` to `devices`; return a mask of those now empty.

        A device cannot spend more than its battery holds: the booked amount is capped at
        what was left, so the energy accounts never exceed the capacity.
        """
        devices = np.asarray(devices, dtype=np.int64)
        energy_j = np.broadcast_to(np.asarray(energy_j, dtype=float), devices.shape)
        if np.any(energy_j < 0):
            raise ValueError(f"negative energy for {component}: {energy_j.min()}")
        spent = np.minimum(energy_j, self.battery_j[devices])
        np.add.at(self.energy_j[component], devices, spent)
        np.subtract.at(self.battery_j, devices, spent)
        empty = self.battery_j[devices] <= 0.0
        newly_dead = devices[empty & self.alive[devices]]
        self.alive[newly_dead] = False
        self.died_at_s[newly_dead] = now_s
        return empty

    def total_energy_j(self) -> np.ndarray:
        """Total energy per device [J], the sum of its components."""
        return sum(self.energy_j[c] for c in ENERGY_COMPONENTS)
