"""Degenerate networks: the run must finish and the traces must say what happened.

Cell-edge links far below 0 dB, rounds where everyone straggles, empty batteries, a
single device, and a link whose spectral efficiency is exactly zero with no deadline
(which must not wait for ever). Hangs are caught with ``signal.alarm`` in-process and a
subprocess timeout for the case known to hang.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from cosim.engine import Simulation
from cosim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "scenarios" / "smoke.yaml"
HANG_S = 30


def edge_sets(distance_m: float, exponent: float, deadline_s: float | None) -> list[str]:
    """One static device `distance_m` from a log-distance cell, no fading or shadowing."""
    sets = [
        "learning.mode=surrogate", "devices.count=1", "fl.devices_per_round=1", "fl.rounds=2",
        "area={width_m: 1000000, height_m: 1000}",
        f"cells=[{{name: c, x_m: 0, y_m: 500, pathloss: log_distance, pathloss_params: {{exponent: {exponent}}}}}]",
        f"devices.mobility.params={{positions_m: [[{distance_m}, 500]]}}",
        "radio.fading=none", "radio.shadowing=false", "devices.profiles={mid: 1.0}",
    ]
    if deadline_s is not None:
        sets.append(f"fl.deadline_s={deadline_s}")
    return sets


@contextmanager
def no_hang(seconds: int = HANG_S):
    def alarm(signum, frame):
        raise TimeoutError(f"simulation still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run(sets: list[str], battery_j: float | None = None) -> tuple[Simulation, list[dict], list[dict]]:
    sim = Simulation(load_scenario(SMOKE, sets))
    if battery_j is not None:
        sim.fleet.battery_j[:] = battery_j
    with no_hang():
        sim.run()
    tables = sim.trace.tables()
    events, rounds = (tables[name].to_pylist() for name in ("events", "rounds"))
    return sim, events, rounds


def test_cell_edge_far_below_0_db_is_an_outage_after_outage_s() -> None:
    sim, events, rounds = run(edge_sets(20_000, 6.0, 5.0))
    kinds = Counter(e["kind"] for e in events)
    assert kinds["outage"] == 2 and kinds["straggler"] == 0 and kinds["ul_end"] == 0
    assert [r["dropouts"] for r in rounds] == [1, 1]
    # Each round: 4 ms access latency, then 1 s (radio.outage_s) below the minimum SINR.
    assert sim.env.now == pytest.approx(2 * 1.004)


def test_cell_edge_far_below_0_db_straggles_at_the_deadline() -> None:
    sim, events, rounds = run(edge_sets(20_000, 6.0, 5.0) + ["radio.outage_s=100"])
    snr_db = 10 * np.log10(sim.world.snr_ul_linear[0, 0])
    assert snr_db < -100  # far below 0 dB
    kinds = Counter(e["kind"] for e in events)
    assert kinds["straggler"] == 2 and kinds["skip_aggregate"] == 2 and kinds["ul_end"] == 0
    assert [r["stragglers"] for r in rounds] == [1, 1] and [r["aggregated"] for r in rounds] == [False, False]
    assert sim.env.now == pytest.approx(10.0)  # two rounds, each cut at its 5 s deadline


def test_cell_edge_link_that_still_delivers() -> None:
    """Below 0 dB but not hopeless (free space, 20 km): the upload finishes, slowly."""
    sets = edge_sets(20_000, 2.0, None) + ["cells.0.pathloss=free_space", "cells.0.pathloss_params={}"]
    sim, events, rounds = run(sets)
    assert 10 * np.log10(sim.world.snr_ul_linear[0, 0]) < 0
    uploads = [e for e in events if e["kind"] == "ul_end"]
    assert len(uploads) == 2 and all(e["bytes"] == sim.learning.cost.uplink_bytes for e in uploads)
    assert [r["completed"] for r in rounds] == [1, 1]


def test_every_device_straggles() -> None:
    sets = ["learning.mode=surrogate", "devices.count=12", "fl.devices_per_round=12", "fl.rounds=3",
            "fl.deadline_s=1e-5"]
    sim, events, rounds = run(sets)
    assert [r["stragglers"] for r in rounds] == [12, 12, 12]
    assert all(r["completed"] == 0 and not r["aggregated"] for r in rounds)
    assert sum(e["kind"] == "straggler" for e in events) == 36
    assert sim.env.now == pytest.approx(3e-5)


def test_all_batteries_empty() -> None:
    sets = ["learning.mode=surrogate", "fl.rounds=3", "fl.devices_per_round=6"]
    sim, events, rounds = run(sets, battery_j=1e-12)
    assert not sim.fleet.alive.any() and (sim.fleet.battery_j >= 0).all()
    assert sim.fleet.total_energy_j().max() <= 1e-12 * (1 + 1e-9)
    assert rounds[0]["dropouts"] == 6 and rounds[0]["completed"] == 0
    kinds = [e["kind"] for e in events]
    assert kinds[-1] == "all_dead" and "ul_end" not in kinds
    assert len(rounds) == 1  # later rounds are not played with nobody alive


def test_single_device() -> None:
    sets = ["learning.mode=surrogate", "devices.count=1", "fl.devices_per_round=1", "fl.rounds=3",
            "devices.profiles={iot: 1.0}"]
    sim, events, rounds = run(sets)
    assert [r["completed"] for r in rounds] == [1, 1, 1] and all(r["aggregated"] for r in rounds)
    assert sum(e["kind"] == "ul_end" for e in events) == 3


def test_zero_rate_link_with_deadline_finishes() -> None:
    sim, events, rounds = run(edge_sets(900_000, 8.0, 2.0) + ["radio.outage_s=10"])
    assert sim.world.se_ul_bps_hz[0, 0] == 0.0 and sim.world.se_dl_bps_hz[0, 0] == 0.0
    assert [r["stragglers"] for r in rounds] == [1, 1]
    assert [e["detail"] for e in events if e["kind"] == "straggler"] == ["download", "download"]


ZERO_RATE_NO_DEADLINE = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from test_degenerate import edge_sets, SMOKE
    from cosim.engine import Simulation
    from cosim.scenario import load_scenario
    sim = Simulation(load_scenario(SMOKE, edge_sets(900_000, 8.0, None)))
    assert sim.world.se_ul_bps_hz[0, 0] == 0.0
    sim.run()
    kinds = sim.trace.events_table().column("kind").to_pylist()
    assert "outage" in kinds, kinds
    details = sim.trace.events_table().column("detail").to_pylist()
    assert any(d.startswith("coverage during") for d in details), details
    print("finished", sim.env.now)
    """
)


def test_zero_rate_link_without_deadline_terminates() -> None:
    code = ZERO_RATE_NO_DEADLINE.format(tests=str(Path(__file__).parent))
    try:
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail("a device that can never send, with no deadline, hangs the run")
    assert done.returncode == 0, done.stderr
