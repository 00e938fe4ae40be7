"""Device availability: which devices can take part, and the moments that changes.

Three models (`devices.availability.model`):

- ``always``: every device is available for the whole run (no events at all);
- ``markov``: each device alternates between *on* and *off* with exponentially
  distributed holding times of mean ``mean_on_s`` / ``mean_off_s`` (a two-state
  continuous-time Markov chain with rates 1/mean_on_s for on->off and 1/mean_off_s for
  off->on), set for everyone, per hardware profile or per device-id group (group wins
  over profile, profile over the default). The initial state is drawn from the chain's
  stationary law, P(on) = mean_on_s / (mean_on_s + mean_off_s) (``initial: stationary``),
  or set with ``initial: on|off``; since holding times are memoryless, a stationary
  start stays stationary;
- ``trace``: a table of availability intervals, one row per interval
  (``device``, ``start_s``, ``end_s``: available during [start_s, end_s)), in CSV or
  Parquet. Optional ``repeat_s`` replays the table with that period (FedScale wraps its
  client behaviour trace the same way). A device without rows is never available; rows
  for devices beyond ``devices.count`` are ignored.

Mapping from FedScale's client behaviour trace (``client_behave_trace``, a pickled
``{client_id: {"active": [t...], "inactive": [t...], "finish_time": T, ...}}``): client
ids sorted ascending become devices 0, 1, ...; each pair ``active[i], inactive[i]``
becomes one row ``(device, start_s=active[i], end_s=inactive[i])``; ``finish_time``
becomes ``repeat_s`` (FedScale takes simulated time modulo it).

The engine asks for the next transition time and sleeps until exactly then (an event,
never a poll); `pop_due` applies every transition due at that time. Everything here is
plain data and one numpy generator, so it is part of a checkpoint.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from pathlib import Path

import numpy as np

AVAILABILITY_MODELS = ("always", "markov", "trace")


@dataclass(frozen=True)
class Transitions:
    """Availability changes at one moment: `devices` (sorted) became `available` [bool each]."""

    time_s: float
    devices: np.ndarray
    available: np.ndarray


def read_trace(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read an availability trace file (CSV or Parquet with ``device``, ``start_s``, ``end_s``).

    Returns the three columns as arrays (int64, float64, float64), shape (rows,).
    Raises ``ValueError`` naming the file, the row and the rule for a bad row.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"devices.availability.path: {str(path)!r} is not a file")
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
    else:
        import pyarrow.csv as pa_csv

        table = pa_csv.read_csv(path)
    missing = [c for c in ("device", "start_s", "end_s") if c not in table.column_names]
    if missing:
        raise ValueError(f"devices.availability.path: {path} lacks column(s) {missing} "
                         f"(needs device, start_s, end_s)")
    device = np.asarray(table.column("device").to_numpy(zero_copy_only=False))
    start = np.asarray(table.column("start_s").to_numpy(zero_copy_only=False), dtype=float)
    end = np.asarray(table.column("end_s").to_numpy(zero_copy_only=False), dtype=float)
    if device.size and (not np.issubdtype(device.dtype, np.integer) or device.min() < 0):
        raise ValueError(f"devices.availability.path: {path}: device must be integers >= 0")
    bad = np.flatnonzero(~(np.isfinite(start) & np.isfinite(end) & (start >= 0) & (end > start)))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"devices.availability.path: {path} row {i}: start_s={start[i]!r}, end_s={end[i]!r} "
                         f"(need 0 <= start_s < end_s, finite)")
    return device.astype(np.int64), start, end


class Availability:
    """The availability state of every device and its future transitions.

    Attributes:
        available: bool, shape (n_devices,): who is available now.
    """

    def __init__(self, config, n_devices: int, profile_names: list[str], profile_index: np.ndarray,
                 rng: np.random.Generator) -> None:
        self.model = config.model
        self.n_devices = n_devices
        self.available = np.ones(n_devices, dtype=bool)
        self._rng = rng
        self._heap: list[tuple[float, int]] = []  # (time_s, device): each device's next transition
        self.transitions = 0
        if self.model == "markov":
            self._init_markov(config, profile_names, profile_index)
        elif self.model == "trace":
            self._init_trace(config)
        elif self.model != "always":
            raise ValueError(f"devices.availability.model: {self.model!r} is not one of {AVAILABILITY_MODELS}")

    # -- markov ------------------------------------------------------------------------
    def _init_markov(self, config, profile_names: list[str], profile_index: np.ndarray) -> None:
        n = self.n_devices
        on = np.full(n, float(config.mean_on_s))
        off = np.full(n, float(config.mean_off_s))
        for name, rates in config.profiles.items():
            if name in profile_names:
                mask = profile_index == profile_names.index(name)
                on[mask], off[mask] = rates.mean_on_s, rates.mean_off_s
        for group in config.groups:
            first, last = group.devices
            on[first:last + 1], off[first:last + 1] = group.mean_on_s, group.mean_off_s
        self.mean_on_s, self.mean_off_s = on, off
        if config.initial == "stationary":
            self.available = self._rng.random(n) < on / (on + off)
        else:
            self.available = np.full(n, config.initial == "on")
        holding = self._rng.exponential(np.where(self.available, on, off))
        self._heap = [(float(t), d) for d, t in enumerate(holding)]
        heapq.heapify(self._heap)

    # -- trace -------------------------------------------------------------------------
    def _init_trace(self, config) -> None:
        device, start, end = read_trace(config.path)
        self.repeat_s = config.repeat_s
        if self.repeat_s is not None and end.size and end.max() > self.repeat_s:
            i = int(np.argmax(end))
            raise ValueError(f"devices.availability.path: row {i} ends at {end[i]!r} s > repeat_s ({self.repeat_s!r})")
        keep = device < self.n_devices
        device, start, end = device[keep], start[keep], end[keep]
        # Per device: the sorted switch-on/switch-off times of one period, as (time, state).
        self._switch_times: list[np.ndarray] = []
        self._switch_states: list[np.ndarray] = []
        self._cursor = np.zeros(self.n_devices, dtype=np.int64)  # next switch index
        self._cycle = np.zeros(self.n_devices, dtype=np.int64)   # replay period number
        self.available = np.zeros(self.n_devices, dtype=bool)
        for d in range(self.n_devices):
            times, states = _merge_intervals(start[device == d], end[device == d])
            self._switch_times.append(times)
            self._switch_states.append(states)
            # State at t = 0: the switches at 0 apply now, later ones are events.
            at_zero = times <= 0.0
            if at_zero.any():
                self.available[d] = bool(states[at_zero][-1])
            self._cursor[d] = int(at_zero.sum())
            self._push_next_trace(d)

    def _push_next_trace(self, d: int) -> None:
        times = self._switch_times[d]
        if times.size == 0:
            return
        if self._cursor[d] >= times.size:
            if self.repeat_s is None:
                return
            self._cycle[d] += 1
            self._cursor[d] = 0
        offset_s = self._cycle[d] * self.repeat_s if self.repeat_s is not None else 0.0
        t = float(offset_s + times[self._cursor[d]])
        heapq.heappush(self._heap, (t, d))

    # -- the event interface -------------------------------------------------------------
    def next_time_s(self) -> float | None:
        """Time of the next transition [s], or None when nothing will ever change."""
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now_s: float) -> Transitions:
        """Apply every transition due at `now_s`; return those that changed a device's state."""
        if self.model == "markov":
            due: list[int] = []
            while self._heap and self._heap[0][0] <= now_s:
                due.append(heapq.heappop(self._heap)[1])
            devices = np.array(sorted(due), dtype=np.int64)
            new = ~self.available[devices]
            self.available[devices] = new
            holding = self._rng.exponential(np.where(new, self.mean_on_s[devices], self.mean_off_s[devices]))
            for d, t in zip(devices, holding):
                heapq.heappush(self._heap, (now_s + float(t), int(d)))
            changed, states = devices, new
        else:
            final: dict[int, bool] = {}
            while self._heap and self._heap[0][0] <= now_s:
                d = heapq.heappop(self._heap)[1]
                final[d] = bool(self._switch_states[d][self._cursor[d]])
                self._cursor[d] += 1
                self._push_next_trace(d)  # a replayed trace may switch back at this same time
            flips = sorted(d for d, state in final.items() if state != self.available[d])
            changed = np.array(flips, dtype=np.int64)
            states = np.array([final[d] for d in flips], dtype=bool)
            self.available[changed] = states
        self.transitions += int(changed.size)
        return Transitions(now_s, changed, states)


def _merge_intervals(start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Union of [start, end) intervals as alternating switch times: (times, states on/off)."""
    order = np.argsort(start, kind="stable")
    times: list[float] = []
    states: list[bool] = []
    current_end = -np.inf
    for s, e in zip(start[order], end[order]):
        if s <= current_end:  # overlaps or touches the previous interval: extend it
            current_end = max(current_end, e)
            times[-1] = current_end
            continue
        times += [float(s), float(e)]
        states += [True, False]
        current_end = e
    return np.array(times, dtype=float), np.array(states, dtype=bool)
