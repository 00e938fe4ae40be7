"""Device-selection policies: which alive devices take part in a round.

Each policy is a class built once per run (it may keep state, e.g. a round-robin
pointer) whose ``select(context, k)`` returns up to `k` distinct device ids. Policies
see only the `SelectionContext` the server prepares — estimates, not the future.
Registry: `SELECTION_POLICIES`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SelectionContext:
    """What the server knows when it selects (arrays over all devices, shape (n,)).

    Attributes:
        round_idx: the round about to start (0-based).
        alive: devices with battery left.
        expected_uplink_rate_bps: full-band uplink rate to the serving cell [bit/s].
        expected_energy_j: estimated energy of one participation [J].
        expected_time_s: estimated download + compute + upload time [s].
        battery_j: remaining battery [J].
        deadline_s: the round deadline [s], or None.
        rng: the selection policy's own generator.
    """

    round_idx: int
    alive: np.ndarray
    expected_uplink_rate_bps: np.ndarray
    expected_energy_j: np.ndarray
    expected_time_s: np.ndarray
    battery_j: np.ndarray
    deadline_s: float | None
    rng: np.random.Generator


def _top_k(candidates: np.ndarray, score: np.ndarray, k: int) -> np.ndarray:
    """The `k` candidates with the highest score; ties broken by lower device id."""
    order = np.lexsort((candidates, -score[candidates]))
    return candidates[order[:k]]


class RandomSelection:
    """Uniformly random devices among the alive ones."""

    def __init__(self, n_devices: int) -> None:
        self.n_devices = n_devices

    def select(self, ctx: SelectionContext, k: int) -> np.ndarray:
        alive = np.flatnonzero(ctx.alive)
        return np.sort(ctx.rng.choice(alive, size=min(k, alive.size), replace=False))


class RoundRobinSelection(RandomSelection):
    """Devices in id order, wrapping around, skipping dead ones."""

    def __init__(self, n_devices: int) -> None:
        super().__init__(n_devices)
        self._next = 0

    def select(self, ctx: SelectionContext, k: int) -> np.ndarray:
        alive = np.flatnonzero(ctx.alive)
        if alive.size == 0:
            return alive
        start = np.searchsorted(alive, self._next % self.n_devices)
        chosen = np.roll(alive, -start)[: min(k, alive.size)]
        self._next = int(chosen[-1]) + 1
        return np.sort(chosen)


class ChannelAwareSelection(RandomSelection):
    """The devices with the best expected uplink rate."""

    def select(self, ctx: SelectionContext, k: int) -> np.ndarray:
        return np.sort(_top_k(np.flatnonzero(ctx.alive), ctx.expected_uplink_rate_bps, k))


class EnergyAwareSelection(RandomSelection):
    """The devices that can afford the most participations: battery / expected energy."""

    def select(self, ctx: SelectionContext, k: int) -> np.ndarray:
        affordable = ctx.battery_j / np.maximum(ctx.expected_energy_j, 1e-12)
        return np.sort(_top_k(np.flatnonzero(ctx.alive), affordable, k))


class DeadlineAwareSelection(RandomSelection):
    """Random devices among those expected to finish before the deadline.

    If fewer than `k` are expected to make it, the fastest of the rest fill the round.
    Without a deadline this is random selection.
    """

    def select(self, ctx: SelectionContext, k: int) -> np.ndarray:
        alive = np.flatnonzero(ctx.alive)
        if ctx.deadline_s is None:
            return super().select(ctx, k)
        fits = alive[ctx.expected_time_s[alive] <= ctx.deadline_s]
        if fits.size >= k:
            return np.sort(ctx.rng.choice(fits, size=k, replace=False))
        rest = np.setdiff1d(alive, fits)
        fill = _top_k(rest, -ctx.expected_time_s, k - fits.size)
        return np.sort(np.concatenate([fits, fill]))


SELECTION_POLICIES: dict[str, type[RandomSelection]] = {
    "random": RandomSelection,
    "round_robin": RoundRobinSelection,
    "channel_aware": ChannelAwareSelection,
    "energy_aware": EnergyAwareSelection,
    "deadline_aware": DeadlineAwareSelection,
}
