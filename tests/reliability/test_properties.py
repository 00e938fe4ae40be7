"""Physical invariants of any small surrogate-mode run, as hypothesis properties.

Random small scenarios (devices, selection, allocator, mobility, fading, deadline,
coherence, battery scale, algorithm) must keep: bytes delivered = bytes sent, energy
components >= 0 summing to the total, no transmission on an empty battery, monotone
event times, and exactly one outcome per selected device per round.
"""

from __future__ import annotations

import math
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cosim.engine import Simulation
from cosim.engine.outputs import write_run
from cosim.scenario import load_scenario
from learning.algorithms import ALGORITHMS

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "scenarios" / "smoke.yaml"
REL = 1e-9
OUTCOME_KINDS = ("straggler", "dropout")


@st.composite
def scenarios(draw) -> tuple[list[str], float]:
    n = draw(st.integers(1, 12))
    per_round = draw(st.integers(1, n))
    mobility = draw(st.sampled_from(["static", "random_waypoint", "gauss_markov", "street_grid"]))
    sets = [
        "learning.mode=surrogate",
        f"seed={draw(st.integers(0, 2**16))}",
        f"devices.count={n}",
        f"fl.devices_per_round={per_round}",
        f"fl.min_updates={draw(st.integers(0, per_round))}",
        f"fl.rounds={draw(st.integers(1, 4))}",
        f"fl.allocator={draw(st.sampled_from(['equal', 'proportional_fair', 'max_rate', 'min_time']))}",
        f"fl.selection={draw(st.sampled_from(['random', 'round_robin', 'channel_aware', 'energy_aware', 'deadline_aware']))}",
        f"fl.dvfs={draw(st.sampled_from(['max', 'min_energy_within_deadline']))}",
        f"devices.mobility.model={mobility}",
        f"radio.fading={draw(st.sampled_from(['rayleigh', 'rician', 'none']))}",
        f"radio.shadowing={str(draw(st.booleans())).lower()}",
        f"radio.coherence_s={draw(st.sampled_from([0.01, 0.05, 0.2, 1.0]))}",
        f"devices.profiles={draw(st.sampled_from(['{high: 0.5, low: 0.5}', '{iot: 1.0}', '{mid: 0.5, iot: 0.5}']))}",
        f"learning.algorithm.name={draw(st.sampled_from(['fedavg', 'local', 'pfl_tps']))}",
    ]
    if mobility == "street_grid":
        sets.append("devices.mobility.params={block_m: 100}")
    deadline = draw(st.one_of(st.none(), st.sampled_from([1e-4, 0.01, 0.05, 0.2, 5.0])))
    if deadline is not None:
        sets.append(f"fl.deadline_s={deadline}")
    battery_scale = draw(st.sampled_from([1.0, 1e-3, 1e-6, 1e-9]))
    return sets, battery_scale


def _run(sets: list[str], battery_scale: float):
    scenario = load_scenario(SMOKE, sets)
    sim = Simulation(scenario)
    sim.fleet.battery_j[:] = sim.fleet.battery_capacity_j * battery_scale
    sim.run()
    with tempfile.TemporaryDirectory() as tmp:
        summary = write_run(sim, Path(tmp), command=[], wall_s=0.0)
        tables = {name: pq.read_table(Path(tmp) / f"{name}.parquet").to_pydict()
                  for name in ("events", "rounds", "devices")}
    return sim, summary, tables


def _rows(table: dict) -> list[dict]:
    keys = list(table)
    return [dict(zip(keys, values)) for values in zip(*table.values())]


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_physical_invariants(case) -> None:
    sets, battery_scale = case
    sim, summary, tables = _run(sets, battery_scale)
    events, rounds, devices = _rows(tables["events"]), _rows(tables["rounds"]), _rows(tables["devices"])
    scenario = sim.scenario
    algorithm = ALGORITHMS[scenario.learning.algorithm.name]
    ul_ends = [e for e in events if e["kind"] == "ul_end"]

    # Bytes delivered = bytes sent, per flow and in every total.
    for e in ul_ends:
        assert e["bytes"] == sim.learning.cost.uplink_bytes
    if not algorithm.communicates:
        assert not ul_ends and summary["uplink_bytes"] == 0
    assert sum(e["bytes"] for e in ul_ends) == summary["uplink_bytes"] == sum(r["uplink_bytes"] for r in rounds)
    assert sum(d["uplink_bytes"] for d in devices) == summary["uplink_bytes"]
    dl_ends = [e for e in events if e["kind"] == "dl_end"]
    assert sum(e["bytes"] for e in dl_ends) == summary["downlink_bytes"] == sum(r["downlink_bytes"] for r in rounds)

    # Energy: components >= 0, summing to the total; batteries never negative.
    components = ("compute", "tx", "rx", "idle")
    for d in devices:
        parts = [d[f"{c}_energy_j"] for c in components]
        assert min(parts) >= 0.0
        assert math.isclose(sum(parts), d["energy_j"], rel_tol=REL, abs_tol=1e-15)
        assert d["battery_j"] >= 0.0
        capacity = sim.fleet.battery_capacity_j[d["device"]] * battery_scale
        assert d["energy_j"] <= capacity * (1 + REL) + 1e-15
    total = sum(summary[f"{c}_energy_j"] for c in components)
    assert math.isclose(total, summary["energy_j"], rel_tol=REL, abs_tol=1e-15)
    assert math.isclose(sum(r["energy_j"] for r in rounds), summary["energy_j"], rel_tol=1e-6, abs_tol=1e-12)
    assert all(e["energy_j"] >= 0.0 and e["duration_s"] >= 0.0 for e in events)

    # No transmission on an empty battery: every device's tx happens before it died.
    died = sim.fleet.died_at_s
    for e in ul_ends:
        d = e["device"]
        assert np.isnan(died[d]) or e["time_s"] <= died[d] + 1e-12, (e, died[d])
    for d in devices:
        if not d["alive"]:
            assert d["battery_j"] <= 1e-12
    # A dead device is never selected again.
    for e in events:
        if e["kind"] == "selected" and not np.isnan(died[e["device"]]):
            assert e["time_s"] <= died[e["device"]]

    # Simulated time never runs backwards; rounds are contiguous.
    times = [e["time_s"] for e in events]
    assert all(b >= a for a, b in zip(times, times[1:]))
    for r in rounds:
        assert r["end_s"] >= r["start_s"]
    for a, b in zip(rounds, rounds[1:]):
        assert b["start_s"] >= a["end_s"] and b["round"] == a["round"] + 1

    # Each selected device ends its round as exactly one of completed / straggler / dropout.
    finish = "ul_end" if algorithm.communicates else "compute_end"
    outcome: Counter = Counter()
    for e in events:
        if e["kind"] in (finish, *OUTCOME_KINDS):
            outcome[(e["round"], e["device"], e["kind"])] += 1
    selected = [(e["round"], e["device"]) for e in events if e["kind"] == "selected"]
    assert len(selected) == len(set(selected))
    for key in selected:
        found = [k for k in (finish, *OUTCOME_KINDS) if outcome[(*key, k)]]
        assert len(found) == 1 and outcome[(*key, found[0])] == 1, (key, found)
    assert sum(outcome.values()) == len(selected)
    by_round = {r["round"]: r for r in rounds}
    for rnd, row in by_round.items():
        ours = [k for k in selected if k[0] == rnd]
        assert row["selected"] == len(ours)
        assert row["completed"] == sum(outcome[(rnd, d, finish)] for _, d in ours)
        assert row["stragglers"] == sum(outcome[(rnd, d, "straggler")] for _, d in ours)
        assert row["dropouts"] == sum(outcome[(rnd, d, "dropout")] for _, d in ours)
        assert row["completed"] + row["stragglers"] + row["dropouts"] == row["selected"]
        if scenario.fl.deadline_s is not None:
            assert row["end_s"] - row["start_s"] <= scenario.fl.deadline_s * (1 + 1e-9)
