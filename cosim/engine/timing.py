"""Events at absolute simulated times (bit-identical across checkpoint/resume)."""

from __future__ import annotations

import heapq

import simpy


class At(simpy.events.Event):
    """An event that fires at the absolute simulated time `time_s` [s].

    `env.timeout(delay)` fires at ``now + delay``, whose rounding depends on `now`; a
    run resumed from a checkpoint must fire at the same float times as one that never
    stopped, so such events are put on the queue at their exact times. This uses
    SimPy's event queue layout ``(time, priority, id, event)`` (simpy 4).
    """

    def __init__(self, env: simpy.Environment, time_s: float) -> None:
        if time_s < env.now:
            raise ValueError(f"time {time_s} is in the past (now {env.now})")
        super().__init__(env)
        self._ok = True
        self._value = None
        heapq.heappush(env._queue, (time_s, simpy.events.NORMAL, next(env._eid), self))
