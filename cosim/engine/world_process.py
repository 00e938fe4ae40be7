"""The engine's world process: one world tick per coherence interval.

Every tick moves the devices and redraws the channel (`cosim.engine.world.World.tick`),
traces the handovers, blends the new full-band uplink rates into the DVFS rate average
and lets every cell's schedulers reallocate. With `radio.idle_update_s` set the tick is
lazy (`World.tick_lazy`): only devices with an update in flight or a flow on a band, and
a rotating slice of the idle ones, are re-evaluated (README, "Idle devices").
"""

from __future__ import annotations

import numpy as np

from cosim.engine.timing import At


def active_devices(sim) -> np.ndarray:
    """Devices with an update in flight or a flow on some cell's band (sorted, distinct)."""
    parts = [np.fromiter(sim.in_flight.keys(), dtype=np.int64, count=len(sim.in_flight))]
    parts += [s.active_devices for s in sim.ul + sim.dl if s.active]
    return np.unique(np.concatenate(parts))


def world_process(sim):
    """SimPy process: tick the world at k·`radio.coherence_s` for k = 1, 2, ..."""
    dt = float(sim.scenario.radio.coherence_s)
    world, trace = sim.world, sim.trace
    lazy = world.idle_every_ticks > 1
    # The DVFS rate average is read only to budget compute against a deadline: lazy ticks
    # skip it without one (exact ticks keep it, so checkpoints stay as they were).
    rate_average = not lazy or sim.scenario.fl.deadline_s is not None
    while True:
        # Tick k happens at exactly k*dt (not an accumulated sum), so a resumed run
        # ticks at bit-identical times.
        next_index = sim._tick_index + 1
        yield At(sim.env, next_index * dt)
        sim._tick_index = next_index  # ticks done so far (a checkpoint resumes after them)
        keep = trace.keeps("handover")
        now = sim.env.now
        if lazy:
            handovers = world.tick_lazy(dt, now, active_devices(sim))
            sim.handovers += int(handovers[0].size)
            sim.ping_pongs += int(np.count_nonzero(handovers[3]))
            handovers = (zip(*(a.tolist() for a in handovers)) if keep else ())
        else:
            handovers = world.tick(dt, now)
            sim.handovers += len(handovers)
            sim.ping_pongs += sum(h.ping_pong for h in handovers)
            handovers = ((h.device, h.from_cell, h.to_cell, h.ping_pong) for h in handovers) if keep else ()
        for device, from_cell, to_cell, ping_pong in handovers:
            trace.event(now, sim.rounds_done, device, to_cell, "handover",
                        detail=f"{world.cell_names[from_cell]}->{world.cell_names[to_cell]}"
                               + (" ping_pong" if ping_pong else ""))
        if lazy and rate_average:
            devices = world.updated_devices
            sim.uplink_rate_average.update_devices(devices, world.uplink_full_band_rate_bps(devices),
                                                   world.updated_dt_s)
        elif not lazy:
            sim.uplink_rate_average.update(world.uplink_full_band_rate_bps(np.arange(sim.n_devices)), dt)
        for scheduler in sim.ul + sim.dl:
            scheduler.channel_changed()
