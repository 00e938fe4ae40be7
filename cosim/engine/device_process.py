"""A device's update as SimPy processes: download -> compute -> upload.

:func:`device_round` is one selected device's update in a round (or, in the non-sync
server modes, one update in flight); :func:`transfer` moves its bytes as a flow on its
cell's band after the access latency; :func:`frequency` picks its DVFS clock. Each takes
the :class:`cosim.engine.simulation.Simulation` as ``sim`` and records where the update
is in a ``progress`` dict, which a checkpoint keeps and from which a resumed run
continues (``resume_flow`` re-attaches the flow).
"""

from __future__ import annotations

import numpy as np
import simpy

from cosim.engine.dvfs_budget import compute_budget_s, flows_on_cell
from cosim.engine.learning_side import RoundWork
from cosim.engine.timing import At as _At
from radio.compute import compute_energy_j, compute_time_s


def device_round(sim, round_idx: int, d: int, work: RoundWork, round_start_s: float, rs,
                 progress: dict | None = None):
    """One device's update: download -> compute -> upload, recording where it is in
    `progress` (phase, serving cell, flow, compute times), which a checkpoint keeps and
    from which a resumed run continues the update (``resume_flow`` re-attaches its flow)."""
    env, fleet, trace = sim.env, sim.fleet, sim.trace
    st = {} if progress is None else progress
    if "phase" not in st:
        st.update(phase="download", cell=int(sim.world.serving_cell[d]))
    try:
        if st["phase"] == "download":
            if work.downlink_bytes > 0:
                if not (yield from transfer(sim, round_idx, d, st["cell"], "dl", work.downlink_bytes, rs, st)):
                    return
            cycles = work.flops * fleet.cycles_per_flop[d]
            compute_f = float(frequency(sim, d, cycles, round_start_s, work.uplink_bytes))
            duration = float(compute_time_s(cycles, compute_f))
            energy = float(compute_energy_j(cycles, compute_f, fleet.kappa[d], fleet.cpu_static_power_w[d]))
            # The battery empties part-way through: the device stops when it does.
            cut = energy > fleet.battery_j[d]
            wait_s = duration * fleet.battery_j[d] / energy if cut else duration
            st.update(phase="compute", compute_start_s=env.now, compute_f=compute_f, duration_s=duration,
                      energy_j=energy, battery_cut=bool(cut), wake_s=env.now + wait_s)
        if st["phase"] == "compute":
            yield _At(env, st["wake_s"])  # == env.timeout(wait_s): the same float time
            if st["battery_cut"]:
                fleet.charge("compute", np.array([d]), fleet.battery_j[d], env.now)
                rs.status[d] = "dropout"
                trace.event(env.now, round_idx, d, st["cell"], "dropout", detail="battery during compute")
                return
            duration, energy = st["duration_s"], st["energy_j"]
            rs.busy_s[d] += duration
            fleet.charge("compute", np.array([d]), energy, env.now)
            trace.event(env.now, round_idx, d, st["cell"], "compute_end", energy_j=energy, duration_s=duration,
                        detail=f"flops={work.flops} f_hz={st['compute_f']:.4g}")
            st.update(phase="upload")
            if work.uplink_bytes > 0:
                st.update(cell=int(sim.world.serving_cell[d]))
        if st["phase"] == "upload" and work.uplink_bytes > 0:
            if not (yield from transfer(sim, round_idx, d, st["cell"], "ul", work.uplink_bytes, rs, st)):
                return
        rs.status[d] = "completed"
    except simpy.Interrupt as stop:
        # "deadline": a straggler; "unavailable": the device left (a dropout);
        # "end": the run ended with this update in flight (non-sync modes).
        cause = stop.cause if stop.cause in ("unavailable", "end") else "deadline"
        rs.status[d] = {"deadline": "straggler", "unavailable": "dropout", "end": "cancelled"}[cause]
        phase, cell = st["phase"], st["cell"]
        flow = st.get("flow")
        partial_j = 0.0  # energy of the cut phase (already charged to the battery)
        if flow is not None and not flow.completed:
            # Cut now: its airtime so far was busy time (a finished flow's airtime is
            # already counted), its energy so far is already charged.
            (sim.dl if phase == "download" else sim.ul)[cell].cancel(flow, cause)
            rs.busy_s[d] += flow.airtime_s
            partial_j = flow.energy_j
        if phase == "compute":
            compute_start, compute_f = st["compute_start_s"], st["compute_f"]
            rs.busy_s[d] += env.now - compute_start
            cycles_done = compute_f * (env.now - compute_start)
            partial_j = float(compute_energy_j(cycles_done, compute_f, fleet.kappa[d], fleet.cpu_static_power_w[d]))
            fleet.charge("compute", np.array([d]), partial_j, env.now)
        if cause == "deadline":
            trace.event(env.now, round_idx, d, cell, "straggler", detail=phase)
        else:
            trace.event(env.now, round_idx, d, cell, rs.status[d], energy_j=partial_j,
                        detail=f"{cause} during {phase}")

def transfer(sim, round_idx: int, d: int, cell: int, direction: str, nbytes: int, rs, current: dict):
    """Move `nbytes` between device `d` and `cell` ("dl" or "ul"); True when delivered.

    A flow taken off the band (battery, coverage) makes the device a dropout.
    """
    env = sim.env
    downlink = direction == "dl"
    if current.pop("resume_flow", False):
        flow = current["flow"]  # a resumed run continues the checkpointed flow
    else:
        # Scheduling request / grant before the first byte. Its end is an absolute time in
        # `current`, so a run resumed during the wait starts the flow at the same instant.
        if current.get("access_until_s") is None:
            current["flow"] = None  # not the previous transfer's flow
            current["access_until_s"] = env.now + sim.world.links.access_latency_s
        if current["access_until_s"] > env.now:
            yield _At(env, current["access_until_s"])
        current["access_until_s"] = None
        flow = (sim.dl if downlink else sim.ul)[cell].start(d, nbytes)
        current["flow"] = flow
    yield flow.done
    if not flow.completed:
        rs.status[d] = "dropout"
        # Out of coverage (SINR below the minimum for radio.outage_s) is an outage;
        # other cancellations (battery) are dropouts.
        kind = "outage" if flow.cancelled_reason == "coverage" else "dropout"
        sim.trace.event(env.now, round_idx, d, cell, kind, energy_j=flow.energy_j,
                         detail=f"{flow.cancelled_reason} during {'download' if downlink else 'upload'}")
        return False
    (sim.downlink_bytes if downlink else sim.uplink_bytes)[d] += flow.total_bytes
    if downlink:
        rs.downlink_bytes += flow.total_bytes
    else:
        rs.uplink_bytes += flow.total_bytes
    rs.busy_s[d] += flow.airtime_s
    sim.trace.event(env.now, round_idx, d, cell, f"{direction}_end", bytes=flow.total_bytes,
                     rate_bps=flow.mean_rate_bps, energy_j=flow.energy_j, duration_s=env.now - flow.start_s,
                     detail=f"starved_s={flow.starved_s:.6g}" if flow.starved_s > 0 else "")
    return True

def frequency(sim, d: int, cycles: float, round_start_s: float, uplink_bytes: int) -> float:
    """The DVFS clock for `d`'s compute; the time budget reserves the upload's access
    latency and its expected time at the fade-averaged rate shared with the other updates
    in flight on its cell (see `cosim.engine.dvfs_budget`)."""
    fleet = sim.fleet
    deadline = sim.scenario.fl.deadline_s
    budget = None
    if deadline is not None:
        budget = np.array([compute_budget_s(
            deadline, sim.env.now - round_start_s, uplink_bytes, float(sim.uplink_rate_average.mean_bps[d]),
            flows_on_cell(sim.world.serving_cell, sim.in_flight, d), sim.world.links.access_latency_s)])
    f = sim.dvfs(np.array([cycles]), budget, fleet.f_min_hz[d:d + 1], fleet.f_max_hz[d:d + 1],
                  kappa=fleet.kappa[d:d + 1], static_power_w=fleet.cpu_static_power_w[d:d + 1])
    return float(np.asarray(f)[0])
