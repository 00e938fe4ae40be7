"""Flow-level OFDMA sharing of one cell's band (one scheduler per cell and direction).

A transfer is a flow of N bytes. While the set of active flows and the channel are
unchanged every flow's rate is constant, so the scheduler advances all flows
analytically and sets one timer for the earliest completion (or coverage expiry). Any
change — a flow starts, ends or is cancelled, the channel is redrawn, the interference
changes — re-runs the allocator over all active flows at once (vectorised) and re-arms
the timer. Stale timers are ignored by a version number, so the event count per round
is O(flows + ticks), independent of the number of bytes.

Rates depend on the share (:class:`radio.share.ShareLinks`): the scheduler asks for its
flows' link parameters at every reallocation, lets the allocator pick shares, and uses
for each flow the rate *and the radiated power* of that share. One power, one truth:
energy is charged with the power the rate was computed with, converted to what the
device draws by an injected ``drawn_power_w`` (PA efficiency, circuit power), over the
flow's airtime (its direction's share of time, TDD).

Coverage versus starvation: a flow whose link cannot carry data on even one resource
block (SINR below the minimum) for ``outage_s`` seconds in a row is out of coverage and
is cancelled (reason ``"coverage"``); a covered flow that the allocator gives no share
just waits (its starved time is counted; a round deadline may still cut it).

Completion is by remaining bytes: a flow completes when its remaining bytes are zero up
to what it sends in one unit of the clock's float resolution, never by a tolerance
relative to the clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import simpy

from cosim.engine.timing import At
from radio.share import ShareLinks

# Remaining bytes at or below this count as delivered (float round-off of rate * dt).
_BYTES_EPS = 1e-6
# A flow completes at a timer when its remaining bytes are below what it sends in this
# many ulps of the clock (the clock cannot resolve a finer finishing time).
_CLOCK_ULPS = 4.0
# What `start` appends to the per-flow arrays (read-only: concatenate copies them).
_ZERO, _NAN, _TRUE = np.zeros(1), np.full(1, np.nan), np.ones(1, dtype=bool)
for _a in (_ZERO, _NAN, _TRUE):
    _a.flags.writeable = False


@dataclass
class Flow:
    """One transfer between a device and its cell.

    `done` fires with the flow itself when it is delivered (`completed`) or taken off the
    band (`cancelled_reason` says why), so the owner never waits forever.
    """

    device: int
    total_bytes: int
    done: simpy.Event
    start_s: float
    airtime_s: float = 0.0
    energy_j: float = 0.0
    starved_s: float = 0.0
    end_s: float = float("nan")
    completed: bool = False
    cancelled_reason: str = ""

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["done"] = None  # a SimPy event: a restored scheduler gives the flow a new one
        return state

    @property
    def mean_rate_bps(self) -> float:
        """Bits delivered over the flow's lifetime [bit/s] (NaN unless completed)."""
        elapsed = self.end_s - self.start_s
        return 8.0 * self.total_bytes / elapsed if elapsed > 0 and self.completed else float("nan")


def _identity_power(devices: np.ndarray, radiated_w: np.ndarray) -> np.ndarray:
    return radiated_w


class FlowScheduler:
    """Shares a cell's band among its active flows with a `radio.ofdma` allocator.

    Active flows are held as parallel numpy arrays so that advancing, reallocating and
    charging energy cost a few vector operations however many flows share the cell.

    Args:
        env: the simulation environment.
        links: ``links(devices) -> ShareLinks`` for an array of devices on this cell, read
            at every reallocation (the world's current channel and interference).
        allocator: ``allocate(links, remaining_bytes, average_rate_bps) -> fractions``.
        n_devices: number of devices in the world (sizes the per-device PF averages).
        outage_s: a flow whose link stays below the minimum SINR this long [s] is out of
            coverage and cancelled with reason ``"coverage"``; > 0.
        pf_time_constant_s: time constant τ of the proportional-fair average [s]: the
            average of the served rate decays as exp(−Δt/τ) with elapsed time (also
            between rounds, when the device sends nothing); > 0.
        drawn_power_w: ``drawn_power_w(devices, radiated_w) -> drawn_w`` converts the
            power a flow radiates for its rate into what the device draws (default:
            identity); on the downlink the engine passes the receive power.
        on_segment: called as ``on_segment(devices, duration_s, energy_j)`` after every
            advance with the devices that sent, the segment length and each device's
            energy for it; it returns a boolean mask of flows to cancel (battery empty),
            or None.
        on_allocation: called as ``on_allocation(devices, radiated_w)`` after every
            reallocation with all active devices and the power each radiates now (0 if
            not sending), so the world can compute the interference they cause.
    """

    def __init__(
        self,
        env: simpy.Environment,
        links: Callable[[np.ndarray], ShareLinks],
        allocator: Callable[[ShareLinks, np.ndarray, np.ndarray], np.ndarray],
        n_devices: int,
        outage_s: float = 1.0,
        pf_time_constant_s: float = 1.0,
        drawn_power_w: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
        on_segment: Callable[[np.ndarray, float, np.ndarray], np.ndarray | None] | None = None,
        on_allocation: Callable[[np.ndarray, np.ndarray], None] | None = None,
    ) -> None:
        if not outage_s > 0:
            raise ValueError(f"outage_s must be > 0, got {outage_s}")
        if not pf_time_constant_s > 0:
            raise ValueError(f"pf_time_constant_s must be > 0, got {pf_time_constant_s}")
        self.env = env
        self._links = links
        self._allocate = allocator
        self._drawn_power_w = drawn_power_w or _identity_power
        self._on_segment = on_segment
        self._on_allocation = on_allocation
        self.outage_s = float(outage_s)
        self.pf_time_constant_s = float(pf_time_constant_s)
        self._flows: list[Flow] = []
        self._device = np.zeros(0, dtype=np.int64)
        self._remaining = np.zeros(0)
        self._rate = np.zeros(0)
        self._drawn = np.zeros(0)
        self._airtime = np.zeros(0)
        self._energy = np.zeros(0)
        self._starved = np.zeros(0)
        self._covered = np.zeros(0, dtype=bool)
        self._below_since = np.zeros(0)
        self._fresh = np.zeros(0, dtype=bool)
        self._time_fraction = 1.0
        self._last_update_s = env.now
        self._version = 0
        self._timer_at_s: float | None = None  # when the armed timer (current version) fires
        self._target = -1
        self.reallocations = 0
        # Proportional-fair average served rate per device [bit/s] and when it was last
        # brought up to date [s] (NaN: never served here); part of a checkpoint.
        self.pf_average_bps = np.full(n_devices, np.nan)
        self.pf_updated_s = np.full(n_devices, np.nan)

    @property
    def active(self) -> int:
        """Number of flows currently sharing the band."""
        return len(self._flows)

    @property
    def active_devices(self) -> np.ndarray:
        """Devices with a flow on the band (copy)."""
        return self._device.copy()

    def start(self, device: int, nbytes: int) -> Flow:
        """Start a flow of `nbytes` [bytes]; its `done` event fires when delivered."""
        if nbytes < 0:
            raise ValueError(f"negative flow size {nbytes} bytes")
        self._advance()
        flow = Flow(device=int(device), total_bytes=int(nbytes), done=self.env.event(), start_s=self.env.now)
        if nbytes == 0:
            flow.completed = True
            flow.end_s = self.env.now
            flow.done.succeed(flow)
            return flow
        self._flows.append(flow)
        # One concatenate per array (np.append's ravel and asarray cost more than the copy).
        cat = np.concatenate
        self._device = cat((self._device, np.array((flow.device,), dtype=np.int64)))
        self._remaining = cat((self._remaining, (float(nbytes),)))
        zero = _ZERO
        self._rate, self._drawn, self._airtime, self._energy, self._starved = (
            cat((self._rate, zero)), cat((self._drawn, zero)), cat((self._airtime, zero)), cat((self._energy, zero)),
            cat((self._starved, zero)))
        self._below_since = cat((self._below_since, _NAN))
        self._covered = cat((self._covered, _TRUE))
        self._fresh = cat((self._fresh, _TRUE))
        self._reschedule()
        return flow

    def cancel(self, flow: Flow, reason: str) -> None:
        """Remove an unfinished flow (straggler cut at the deadline, battery empty)."""
        if flow.completed or flow.cancelled_reason or flow not in self._flows:
            return
        self._advance()
        keep = np.ones(len(self._flows), dtype=bool)
        keep[self._flows.index(flow)] = False
        self._close(keep, completed=False, reason=reason)
        self._reschedule()

    def channel_changed(self) -> None:
        """Re-run the allocator: called after every channel tick and interference change."""
        if not self._flows:
            return
        self._advance()
        self._reschedule()

    reallocate = channel_changed

    # -- internals -------------------------------------------------------------------
    def _decayed_average(self, devices: np.ndarray, at_s: float) -> np.ndarray:
        """PF averages of `devices` brought forward to `at_s` with no service since."""
        age = np.maximum(at_s - self.pf_updated_s[devices], 0.0)
        return self.pf_average_bps[devices] * np.exp(-age / self.pf_time_constant_s)

    def _advance(self) -> None:
        now = self.env.now
        start_s = self._last_update_s
        dt = now - start_s
        self._last_update_s = now
        if dt <= 0 or not self._flows:
            return
        sending = self._rate > 0
        # PF average: decay to the segment start, then an exact EWMA over the segment.
        known = ~np.isnan(self.pf_updated_s[self._device])
        dev = self._device[known]
        keep = math.exp(-dt / self.pf_time_constant_s)
        self.pf_average_bps[dev] = self._decayed_average(dev, start_s) * keep + (1.0 - keep) * self._rate[known]
        self.pf_updated_s[dev] = now
        self._starved = self._starved + np.where(self._covered & ~sending, dt, 0.0)
        if not sending.any():
            return
        self._remaining = np.maximum(self._remaining - self._rate * dt / 8.0, 0.0)
        airtime = np.where(sending, dt * self._time_fraction, 0.0)
        energy = self._drawn * airtime
        self._airtime = self._airtime + airtime
        self._energy = self._energy + energy
        if self._on_segment is not None:
            dead = self._on_segment(self._device[sending], dt, energy[sending])
            if dead is not None and np.any(dead):
                kill = np.zeros(len(self._flows), dtype=bool)
                kill[np.flatnonzero(sending)[np.asarray(dead, dtype=bool)]] = True
                self._close(~kill, completed=False, reason="battery")
                self._target = -1  # indices moved

    def _close(self, keep: np.ndarray, completed: bool, reason: str = "") -> None:
        """Take the flows where `keep` is False off the band, finishing or cancelling them."""
        now = self.env.now
        gone = np.flatnonzero(~keep).tolist()
        for i in gone:
            flow = self._flows[i]
            flow.airtime_s = float(self._airtime[i])
            flow.energy_j = float(self._energy[i])
            flow.starved_s = float(self._starved[i])
            flow.end_s = now
            if completed:
                flow.completed = True
            else:
                flow.cancelled_reason = reason
            flow.done.succeed(flow)  # the owner wakes up (and reads cancelled_reason)
        if len(gone) <= 8:  # the usual case, one flow: delete in place (C memmove, no Python loop)
            for i in reversed(gone):
                del self._flows[i]
        else:
            flows = self._flows
            self._flows = [flows[i] for i in np.flatnonzero(keep).tolist()]  # not per numpy bool: ~10x faster
        for name in ("_device", "_remaining", "_rate", "_drawn", "_airtime", "_energy", "_starved",
                     "_covered", "_below_since", "_fresh"):
            setattr(self, name, getattr(self, name)[keep])

    def _reschedule(self) -> None:
        now = self.env.now
        done = self._remaining <= _BYTES_EPS
        if done.any():
            self._close(~done, completed=True)
        self._version += 1
        self._timer_at_s = None
        self._target = -1
        if not self._flows:
            self._rate = np.zeros(0)
            self._notify(np.zeros(0))
            return
        links = self._links(self._device)
        covered = np.asarray(links.covered, dtype=bool)
        n = covered.size
        if covered.all():  # the usual case: nobody below the minimum, no coverage deadline
            self._below_since = np.full(n, np.nan)
            deadline_s = None
            lost = None
        else:
            self._below_since = np.where(covered, np.nan,
                                         np.where(np.isnan(self._below_since), now, self._below_since))
            # Coverage expiry is an absolute deadline, compared and armed with the same float
            # (a relative delay re-derived at each event can land one ulp short and re-arm at
            # the same instant for ever).
            deadline_s = np.where(covered, np.inf, self._below_since + self.outage_s)
            lost = now >= deadline_s
        if lost is not None and lost.any():
            self._close(~lost, completed=False, reason="coverage")
            covered = covered[~lost]
            deadline_s = deadline_s[~lost]
            links = links.take(~lost)
            if not self._flows:
                self._rate = np.zeros(0)
                self._notify(np.zeros(0))
                return
        self._covered = covered
        average = self._pf_averages(links)
        fractions = np.asarray(self._allocate(links, self._remaining, average), dtype=float)
        self._rate = links.rate_bps(fractions)
        sending = self._rate > 0
        radiated = np.where(sending, links.radiated_power_w(fractions), 0.0)
        self._drawn = np.where(sending, self._drawn_power_w(self._device, radiated), 0.0)
        self._time_fraction = float(links.time_fraction)
        self.reallocations += 1
        # Next event: the earliest completion or coverage expiry, at an absolute time
        # (none: nobody can send until the channel changes; the next tick re-runs this).
        finish_s = now + np.divide(self._remaining * 8.0, self._rate, out=np.full(self._rate.size, np.inf),
                                   where=sending)
        first_finish_s = np.min(finish_s)
        at_s = float(first_finish_s if deadline_s is None else min(first_finish_s, np.min(deadline_s)))
        if math.isfinite(at_s):
            self._target = int(np.argmin(finish_s)) if first_finish_s <= at_s else -1
            self._arm(at_s)
        # Last: the hook may re-enter this scheduler (a neighbour whose activity changes
        # reallocates it), which must find the state complete.
        self._notify(radiated)

    def _arm(self, at_s: float) -> None:
        """Arm the timer of the current version at the absolute time `at_s` [s]."""
        self._timer_at_s = at_s
        timer = At(self.env, at_s)
        timer.callbacks.append(lambda _event, v=self._version: self._on_timer(v))

    _STATE = ("_flows", "_device", "_remaining", "_rate", "_drawn", "_airtime", "_energy", "_starved", "_covered",
              "_below_since", "_fresh", "_time_fraction", "_target", "_last_update_s", "_version", "_timer_at_s",
              "reallocations", "pf_average_bps", "pf_updated_s")

    def snapshot(self) -> dict:
        """Everything this scheduler holds (flows in progress, their arrays, the pending
        timer's time), picklable, for a checkpoint taken while flows are in progress."""
        state = {name: getattr(self, name) for name in self._STATE}
        state["_flows"] = list(self._flows)  # `_close` deletes from the live list in place
        return state

    def restore(self, state: dict) -> None:
        """Continue from a `snapshot`: the same flows (with new `done` events), and the
        pending timer re-armed at its exact time, so nothing is re-allocated or advanced."""
        for name in self._STATE:
            setattr(self, name, state[name])
        for flow in self._flows:
            flow.done = self.env.event()
        if self._timer_at_s is not None:
            self._arm(self._timer_at_s)

    def _pf_averages(self, links: ShareLinks) -> np.ndarray:
        """PF averages of the active flows now; a new flow starts at least at r(1)/n."""
        now, dev = self.env.now, self._device
        average = self._decayed_average(dev, now)  # a new array; NaN: never served here
        average[np.isnan(average)] = 0.0
        if not np.isfinite(average).all():  # as np.nan_to_num: ±inf to the largest finite float
            average = np.nan_to_num(average)
        if self._fresh.any():
            fresh = np.flatnonzero(self._fresh)  # r(1) of the new flows only (elementwise: the same values)
            start = np.maximum(average[fresh], links.take(fresh).full_share_rate_bps / len(self._flows))
            self.pf_average_bps[dev[fresh]] = start
            self.pf_updated_s[dev[fresh]] = now
            average[fresh] = start
            self._fresh[:] = False
        return average

    def _notify(self, radiated_w: np.ndarray) -> None:
        if self._on_allocation is not None:
            self._on_allocation(self._device.copy(), radiated_w)

    def _on_timer(self, version: int) -> None:
        if version != self._version:
            return
        self._advance()
        # Completion by remaining bytes: what a flow sends in a few clock ulps is below
        # what the clock can resolve; the timer's own target is complete by construction.
        resolution_bytes = self._rate * _CLOCK_ULPS * np.spacing(max(abs(self.env.now), 1.0)) / 8.0
        self._remaining[self._remaining <= np.maximum(resolution_bytes, _BYTES_EPS)] = 0.0
        if 0 <= self._target < len(self._remaining):
            self._remaining[self._target] = 0.0
        self._reschedule()
