"""Run small fixed-geometry cases through cosim's engine (for the validation benches).

:func:`build_simulation` makes a real :class:`cosim.engine.simulation.Simulation` from a
scenario dict: cells at given positions (TR 38.901 UMa, 3.5 GHz, 20 MHz), static
devices at given positions, no fading, no shadowing, LOS state forced per link, and
surrogate learning (no training; the learning side is never used here).
:func:`run_transfers` starts the engine's own flows on the cells' schedulers — measured
transfers of N bytes and saturating background flows — runs the event loop with the
world process ticking, and returns each measured flow's completion time (NaN when the
engine took it off the band, e.g. out of coverage) and energy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from cosim.engine.simulation import Simulation
from cosim.scenario.loader import validate_scenario

AREA_M = 6000.0
OFFSET_M = 3000.0  # case coordinates are centred on (OFFSET_M, OFFSET_M) in the scenario area
BACKGROUND_BYTES = 10**12


def build_simulation(
    enb_xy_m: Sequence[tuple[float, float]],
    ue_xy_m: Sequence[tuple[float, float]],
    los: Sequence[Sequence[bool]],
    radio: dict[str, Any] | None = None,
    cell_overrides: dict[str, Any] | None = None,
    seed: int = 1,
) -> Simulation:
    """A Simulation of the given geometry with deterministic LOS/NLOS per (cell, device) link."""
    cells = [
        {"name": f"c{i}", "x_m": OFFSET_M + x, "y_m": OFFSET_M + y, "height_m": 25.0, "pathloss": "uma",
         "carrier_hz": 3.5e9, "uplink_bandwidth_hz": 20e6, "downlink_bandwidth_hz": 20e6, "tx_power_dbm": 43.0,
         "noise_figure_db": 5.0,
         # As the ns-3 LTE set-up: isotropic antennas, ns-3's uplink power control defaults
         # (LteUePowerControl P0_NOMINAL_PUSCH -80 dBm, alpha 1), 15 kHz numerology.
         "antenna_gain_dbi": 0.0, "p0_dbm": -80.0, "alpha": 1.0, "subcarrier_spacing_hz": 15e3,
         **(cell_overrides or {})}
        for i, (x, y) in enumerate(enb_xy_m)
    ]
    raw = {
        "seed": seed,
        "name": "validate",
        "area": {"width_m": AREA_M, "height_m": AREA_M},
        "cells": cells,
        "devices": {"count": len(ue_xy_m), "height_m": 1.5, "noise_figure_db": 9.0,
                    "mobility": {"model": "static",
                                 "params": {"positions_m": [[OFFSET_M + x, OFFSET_M + y] for x, y in ue_xy_m]}}},
        "radio": {"fading": "none", "shadowing": False, "coherence_s": 0.1, **(radio or {})},
        "learning": {"mode": "surrogate", "dataset": {"name": "synthetic", "params": {"num_train": 20, "num_test": 10}},
                     "model": {"name": "vit", "patch_size": 7, "dim": 8, "depth": 1, "heads": 1, "mlp_ratio": 1.0}},
        "fl": {"rounds": 1, "devices_per_round": 1},
    }
    sim = Simulation(validate_scenario(raw))
    # Force the LOS state: a link is LOS while its uniform draw is below P_LOS(d) (> 0).
    sim.world._los_draw = np.where(np.asarray(los, dtype=bool), 0.0, 1.0)
    sim.world.tick(0.0)
    sim.world.serving_cell = sim.world._strongest_cell()  # initial attachment under the forced LOS state
    return sim


def run_transfers(
    sim: Simulation,
    ue_cell: Sequence[int],
    ue_role: Sequence[int],
    nbytes: int,
    uplink: bool,
    max_s: float = 30.0,
    start_s: float = 0.5,
) -> list[tuple[float, float]]:
    """Run measured (role 1) and background (role 2) transfers; ``(time_s or nan, energy_j)`` per measured UE.

    Every transfer goes through the engine's own transfer process
    (``Simulation._transfer``: access latency, then a flow on the cell's scheduler), as
    a device's download or upload in a round does. Background transfers start at t = 0
    and never finish; measured ones start at ``start_s`` on the cell the engine's world
    serves them from (checked against ``ue_cell``); the time runs from ``start_s`` to
    the delivery of the last byte. The world process ticks every coherence interval.
    """
    from cosim.engine.simulation import _RoundState

    world, env = sim.world, sim.env
    served = [int(c) for c in world.serving_cell]
    if served != [int(c) for c in ue_cell]:
        raise RuntimeError(f"engine serves the devices from cells {served}, the case expects {list(ue_cell)}")
    direction = "ul" if uplink else "dl"
    env.process(sim._world_process())
    state = _RoundState()
    results: dict[int, tuple[float, float]] = {}

    def transfer(d: int, size: int, delay_s: float):
        yield env.timeout(delay_s)
        current: dict = {}
        t0 = env.now
        ok = yield from sim._transfer(0, d, int(ue_cell[d]), direction, size, state, current)
        flow = current.get("flow")
        results[d] = ((env.now - t0) if ok else math.nan, flow.energy_j if flow is not None else 0.0)

    measured = [d for d, role in enumerate(ue_role) if role == 1]
    for d, role in enumerate(ue_role):
        if role == 2:
            env.process(transfer(d, BACKGROUND_BYTES, 0.0))
        elif role == 1:
            env.process(transfer(d, nbytes, start_s))
    deadline = start_s + max_s
    while env.now < deadline and not all(d in results for d in measured):
        env.run(until=min(deadline, env.now + 0.5))
    return [results.get(d, (math.nan, math.nan)) for d in measured]
