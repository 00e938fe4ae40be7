"""Flow-level OFDMA sharing of one cell's band (one scheduler per cell and direction).

A transfer is a flow of N bytes. While the set of active flows and the channel are
unchanged every flow's rate is constant, so the scheduler advances all flows
analytically and sets one timer for the earliest completion. Any change — a flow
starts, ends or is cancelled, or the channel is redrawn — re-runs the allocator over
all active flows at once (vectorised) and re-arms the timer. Stale timers are ignored
by a version number, so the event count per round is O(flows + ticks), independent of
the number of bytes.

Energy and airtime are accumulated per flow segment: the segment's duration times the
transmitter's power, counted only while the flow holds a non-zero share of the band.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import simpy

# A flow whose remaining bytes fall below this is complete (float round-off of rate*dt).
_BYTES_EPS = 1e-6


@dataclass
class Flow:
    """One transfer between a device and its cell.

    `done` fires with the flow itself when it is delivered (`completed`) or taken off the
    band (`cancelled_reason` says why), so the owner never waits forever.
    """

    device: int
    total_bytes: int
    power_w: float
    done: simpy.Event
    start_s: float
    airtime_s: float = 0.0
    energy_j: float = 0.0
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


class FlowScheduler:
    """Shares a cell's band among its active flows with a `radio.ofdma` allocator.

    Active flows are held as parallel numpy arrays so that advancing, reallocating and
    charging energy cost a few vector operations however many flows share the cell.

    Args:
        env: the simulation environment.
        bandwidth_hz: the cell's band in this direction [Hz].
        allocator: ``allocate(se_bps_hz, remaining_bytes, average_rate_bps) -> fractions``.
        spectral_efficiency: gives the current SE [bit/s/Hz] of an array of devices on
            this cell (read at every reallocation).
        n_devices: number of devices in the world (sizes the per-device rate history).
        outage_ticks: a flow that got no share of the band, or none it could use (SE = 0),
            for this many consecutive channel ticks is out of coverage and is cancelled
            with reason ``"coverage"`` — otherwise a dead link would wait for ever.
        on_segment: called as ``on_segment(devices, duration_s, energy_j)`` after every
            advance with the devices that held a non-zero share, the segment length and
            each device's energy for it; it returns a boolean mask of flows to cancel
            (battery empty), or None.
    """

    def __init__(
        self,
        env: simpy.Environment,
        bandwidth_hz: float,
        allocator: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
        spectral_efficiency: Callable[[np.ndarray], np.ndarray],
        n_devices: int,
        outage_ticks: int = 10,
        on_segment: Callable[[np.ndarray, float, np.ndarray], np.ndarray | None] | None = None,
    ) -> None:
        if bandwidth_hz <= 0:
            raise ValueError(f"bandwidth_hz must be > 0, got {bandwidth_hz}")
        self.env = env
        self.bandwidth_hz = float(bandwidth_hz)
        self._allocate = allocator
        self._spectral_efficiency = spectral_efficiency
        self._on_segment = on_segment
        if outage_ticks < 1:
            raise ValueError(f"outage_ticks must be >= 1, got {outage_ticks}")
        self.outage_ticks = int(outage_ticks)
        self._flows: list[Flow] = []
        self._device = np.zeros(0, dtype=np.int64)
        self._remaining = np.zeros(0)
        self._rate = np.zeros(0)
        self._power = np.zeros(0)
        self._airtime = np.zeros(0)
        self._energy = np.zeros(0)
        self._zero_rate_ticks = np.zeros(0, dtype=np.int64)
        self._last_update_s = env.now
        self._version = 0
        self._timer_at_s: float | None = None  # when the armed timer (current version) fires
        self.reallocations = 0
        # Long-run average rate per device (EWMA over reallocations), for proportional fair;
        # part of a checkpoint.
        self.rate_history_bps = np.full(n_devices, np.nan)

    @property
    def active(self) -> int:
        """Number of flows currently sharing the band."""
        return len(self._flows)

    def start(self, device: int, nbytes: int, power_w: float = 0.0) -> Flow:
        """Start a flow of `nbytes` [bytes]; its `done` event fires when delivered."""
        if nbytes < 0:
            raise ValueError(f"negative flow size {nbytes} bytes")
        self._advance()
        flow = Flow(device=int(device), total_bytes=int(nbytes), power_w=float(power_w),
                    done=self.env.event(), start_s=self.env.now)
        if nbytes == 0:
            flow.completed = True
            flow.end_s = self.env.now
            flow.done.succeed(flow)
            return flow
        self._flows.append(flow)
        self._device = np.append(self._device, flow.device)
        self._remaining = np.append(self._remaining, float(nbytes))
        self._rate = np.append(self._rate, 0.0)
        self._power = np.append(self._power, flow.power_w)
        self._airtime = np.append(self._airtime, 0.0)
        self._energy = np.append(self._energy, 0.0)
        self._zero_rate_ticks = np.append(self._zero_rate_ticks, 0)
        self._reschedule()
        return flow

    def cancel(self, flow: Flow, reason: str) -> None:
        """Remove an unfinished flow (straggler cut at the deadline, battery empty)."""
        if flow.completed or flow.cancelled_reason or flow not in self._flows:
            return
        self._advance()
        index = self._flows.index(flow)
        keep = np.ones(len(self._flows), dtype=bool)
        keep[index] = False
        self._close(keep, completed=False, reason=reason)
        self._reschedule()

    def channel_changed(self) -> None:
        """Called after every channel tick: rates change, so re-run the allocator.

        Also counts, per flow, the ticks in a row it could not send, and cancels the
        flows that reach `outage_ticks` (reason ``"coverage"``).
        """
        if not self._flows:
            return
        self._advance()
        self._zero_rate_ticks = np.where(self._rate > 0, 0, self._zero_rate_ticks + 1)
        lost = self._zero_rate_ticks >= self.outage_ticks
        if lost.any():
            self._close(~lost, completed=False, reason="coverage")
        self._reschedule()

    # -- internals -------------------------------------------------------------------
    def _advance(self) -> None:
        now = self.env.now
        dt = now - self._last_update_s
        self._last_update_s = now
        if dt <= 0 or not self._flows:
            return
        sending = self._rate > 0
        if not sending.any():
            return
        self._remaining = np.maximum(self._remaining - self._rate * dt / 8.0, 0.0)
        energy = np.where(sending, self._power * dt, 0.0)
        self._airtime = self._airtime + np.where(sending, dt, 0.0)
        self._energy = self._energy + energy
        if self._on_segment is not None:
            dead = self._on_segment(self._device[sending], dt, energy[sending])
            if dead is not None and np.any(dead):
                kill = np.zeros(len(self._flows), dtype=bool)
                kill[np.flatnonzero(sending)[np.asarray(dead, dtype=bool)]] = True
                self._close(~kill, completed=False, reason="battery")

    def _close(self, keep: np.ndarray, completed: bool, reason: str = "") -> None:
        """Take the flows where `keep` is False off the band, finishing or cancelling them."""
        now = self.env.now
        closing = np.flatnonzero(~keep)
        for i in closing:
            flow = self._flows[i]
            flow.airtime_s = float(self._airtime[i])
            flow.energy_j = float(self._energy[i])
            flow.end_s = now
            if completed:
                flow.completed = True
            else:
                flow.cancelled_reason = reason
            if not completed:
                flow.done.succeed(flow)  # the owner wakes up and reads cancelled_reason
        self._flows = [f for f, k in zip(self._flows, keep) if k]
        self._device = self._device[keep]
        self._remaining = self._remaining[keep]
        self._rate = self._rate[keep]
        self._power = self._power[keep]
        self._airtime = self._airtime[keep]
        self._energy = self._energy[keep]
        self._zero_rate_ticks = self._zero_rate_ticks[keep]

    def _reschedule(self) -> None:
        done = self._remaining <= _BYTES_EPS
        if done.any():
            finished = [self._flows[i] for i in np.flatnonzero(done)]
            self._close(~done, completed=True)
            for flow in finished:
                flow.done.succeed(flow)
        self._version += 1
        self._timer_at_s = None
        if not self._flows:
            return
        se = np.asarray(self._spectral_efficiency(self._device), dtype=float)
        average = np.nan_to_num(self.rate_history_bps[self._device], nan=0.0)
        fractions = np.asarray(self._allocate(se, self._remaining, average), dtype=float)
        self._rate = fractions * self.bandwidth_hz * se
        self.reallocations += 1
        previous = self.rate_history_bps[self._device]
        previous = np.where(np.isnan(previous), self._rate, previous)
        self.rate_history_bps[self._device] = 0.9 * previous + 0.1 * self._rate
        sending = self._rate > 0
        if not sending.any():
            return  # nobody can send until the channel changes; the next tick re-runs this
        delay = float(np.min(self._remaining[sending] * 8.0 / self._rate[sending]))
        version = self._version
        timer = self.env.timeout(delay)
        self._timer_at_s = self.env.now + delay  # the time SimPy gives the timeout
        timer.callbacks.append(lambda _event, v=version: self._on_timer(v))

    _STATE = ("_flows", "_device", "_remaining", "_rate", "_power", "_airtime", "_energy", "_zero_rate_ticks",
              "_last_update_s", "_version", "_timer_at_s", "reallocations", "rate_history_bps")

    def snapshot(self) -> dict:
        """Everything this scheduler holds (flows in progress, their arrays, the pending
        timer's time), picklable, for a checkpoint taken while flows are in progress."""
        return {name: getattr(self, name) for name in self._STATE}

    def restore(self, state: dict) -> None:
        """Continue from a `snapshot`: the same flows (with new `done` events), and the
        pending timer re-armed at its exact time, so nothing is re-allocated or advanced."""
        from cosim.engine.timing import At

        for name in self._STATE:
            setattr(self, name, state[name])
        for flow in self._flows:
            flow.done = self.env.event()
        if self._timer_at_s is not None:
            timer = At(self.env, self._timer_at_s)
            timer.callbacks.append(lambda _event, v=self._version: self._on_timer(v))

    def _on_timer(self, version: int) -> None:
        if version != self._version:
            return
        self._advance()
        # The earliest flow is complete up to round-off: snap it so it finishes now.
        sending = self._rate > 0
        left_s = np.full(len(self._rate), np.inf)
        left_s[sending] = self._remaining[sending] * 8.0 / self._rate[sending]
        self._remaining[left_s <= 1e-9 * max(1.0, self.env.now)] = 0.0
        self._reschedule()
