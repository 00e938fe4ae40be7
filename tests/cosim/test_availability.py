"""Device availability: the on/off Markov process, trace files, and the engine honouring them."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow.parquet as pq
import pytest
from scipy import stats

from cosim.engine import run_simulation
from cosim.engine.availability import Availability
from cosim.scenario import ScenarioError, load_scenario

SMOKE = Path(__file__).resolve().parents[2] / "scenarios" / "smoke.yaml"


def config(**kw):
    base = dict(model="always", mean_on_s=None, mean_off_s=None, profiles={}, groups=[], initial="stationary",
                path=None, repeat_s=None)
    return SimpleNamespace(**{**base, **kw})


def play(av: Availability, until_s: float) -> list[tuple[float, int, bool]]:
    log = []
    while (t := av.next_time_s()) is not None and t <= until_s:
        change = av.pop_due(t)
        log += [(t, int(d), bool(s)) for d, s in zip(change.devices, change.available)]
    return log


def test_markov_holding_times_are_exponential_and_stationary_share_holds():
    on_s, off_s = 3.0, 1.0
    av = Availability(config(model="markov", mean_on_s=on_s, mean_off_s=off_s), 200, ["mid"],
                      np.zeros(200, dtype=int), np.random.default_rng(5))
    start = av.available.copy()
    assert abs(start.mean() - on_s / (on_s + off_s)) < 0.1  # stationary start, P(on) = 0.75
    last = np.zeros(200)
    state = start.copy()
    on_hold, off_hold = [], []
    on_time = 0.0
    horizon = 200.0
    for t, d, s in play(av, horizon):
        assert s != state[d], "every transition flips the state"
        if last[d] > 0:  # skip the first (residual) holding time
            (on_hold if state[d] else off_hold).append(t - last[d])
        if state[d]:
            on_time += t - last[d]
        state[d], last[d] = s, t
    on_time += float(np.sum((horizon - last)[state]))
    # Exponential holding times with the configured means (Kolmogorov-Smirnov).
    assert stats.kstest(on_hold, "expon", args=(0, on_s)).pvalue > 1e-3
    assert stats.kstest(off_hold, "expon", args=(0, off_s)).pvalue > 1e-3
    assert on_time / (200 * horizon) == pytest.approx(0.75, abs=0.02)


def test_markov_rates_per_profile_and_group():
    profiles = {"low": SimpleNamespace(mean_on_s=1.0, mean_off_s=9.0)}
    groups = [SimpleNamespace(devices=[0, 1], mean_on_s=5.0, mean_off_s=6.0)]
    av = Availability(config(model="markov", mean_on_s=2.0, mean_off_s=3.0, profiles=profiles, groups=groups,
                             initial="off"), 4, ["high", "low"], np.array([1, 1, 1, 0]), np.random.default_rng(0))
    assert av.mean_on_s.tolist() == [5.0, 5.0, 1.0, 2.0]
    assert av.mean_off_s.tolist() == [6.0, 6.0, 9.0, 3.0]
    assert not av.available.any()


def write_trace(path: Path, rows: list[tuple[int, float, float]]) -> Path:
    path.write_text("device,start_s,end_s\n" + "".join(f"{d},{s},{e}\n" for d, s, e in rows))
    return path


def test_trace_intervals_merge_and_replay(tmp_path):
    path = write_trace(tmp_path / "av.csv", [(0, 0.0, 2.0), (0, 1.5, 3.0), (0, 3.0, 4.0), (1, 5.0, 10.0), (7, 0, 1)])
    av = Availability(config(model="trace", path=str(path), repeat_s=10.0), 3, ["mid"], np.zeros(3, int),
                      np.random.default_rng(0))
    assert av.available.tolist() == [True, False, False]  # device 2 has no rows: never available
    log = play(av, 25.0)
    # [0, 4) merged; device 1 on [5, 10) and, replayed, [15, 20): the switch-off at 10 and
    # the switch-on at 10 of device 0 (period 2) happen at the same time.
    assert log == [(4.0, 0, False), (5.0, 1, True), (10.0, 0, True), (10.0, 1, False), (14.0, 0, False),
                   (15.0, 1, True), (20.0, 0, True), (20.0, 1, False), (24.0, 0, False), (25.0, 1, True)]


def run(tmp_path: Path, overrides: list[str], name: str = "run"):
    scenario = load_scenario(SMOKE, overrides)
    summary = run_simulation(scenario, tmp_path / name)
    return summary, {t: pq.read_table(tmp_path / name / f"{t}.parquet").to_pandas() for t in ("events", "rounds")}


ACTIVITY = ("selected", "dl_end", "compute_end", "ul_end")


def test_engine_honours_trace_to_the_event_and_never_uses_an_unavailable_device(tmp_path):
    rng = np.random.default_rng(3)
    rows = []
    for d in range(6):
        t = float(rng.uniform(0, 0.05))
        while t < 3.0:
            on = float(rng.uniform(0.02, 0.2))
            rows.append((d, round(t, 6), round(t + on, 6)))
            t += on + float(rng.uniform(0.02, 0.2))
    path = write_trace(tmp_path / "av.csv", rows)
    _, t = run(tmp_path, ["learning.mode=surrogate", "fl.rounds=25",
                          f"devices.availability={{model: trace, path: {path}}}"])
    ev = t["events"]
    # Every switch after t = 0 and before the run ended is an event, at exactly its time.
    end_s = ev.time_s.max()
    expected = sorted([(s, d, "available") for d, s, _ in rows if 0 < s <= end_s]
                      + [(e, d, "unavailable") for d, _, e in rows if e <= end_s])
    got = ev[ev.kind.isin(["available", "unavailable"]) & (ev.detail != "initial")]
    assert sorted(zip(got.time_s, got.device, got.kind)) == expected
    initial = ev[ev.detail == "initial"]
    assert list(initial.device) == list(range(6)) and (initial.time_s == 0).all()
    assert list(initial.kind) == ["available" if any(s <= 0 < e for dd, s, e in rows if dd == d) else "unavailable"
                                  for d in range(6)]
    # No device is selected, downloads, computes or uploads outside its intervals.
    def available(d: int, time_s: float, closed: bool) -> bool:
        return any(s <= time_s < e or (closed and time_s == e) for dd, s, e in rows if dd == d)
    active = ev[ev.kind.isin(ACTIVITY)]
    assert len(active) > 20
    for time_s, d, kind in zip(active.time_s, active.device, active.kind):
        # An activity ending exactly at a switch-off finished at that instant.
        assert available(d, time_s, closed=kind != "selected"), (time_s, d, kind)
    drops = ev[(ev.kind == "dropout") & ev.detail.str.startswith("unavailable")]
    assert len(drops) > 0
    for time_s, d in zip(drops.time_s, drops.device):
        assert any(e == time_s for dd, _, e in rows if dd == d), "dropouts happen at a switch-off"
    # A dropped update charged what it used: a cut download or upload shows its energy.
    cut_flows = drops[drops.detail.str.contains("load")]
    assert (cut_flows.energy_j >= 0).all()


def test_update_cut_by_unavailability_counts_its_partial_energy(tmp_path):
    # The first device to finish computing switches off half-way through its computation.
    rows = [(d, 0.0, 5.0) for d in range(6)]
    _, ref = run(tmp_path, ["learning.mode=surrogate", "fl.rounds=1", "fl.devices_per_round=6",
                            f"devices.availability={{model: trace, path: {write_trace(tmp_path / 'a.csv', rows)}}}"], "a")
    ev = ref["events"]
    first = ev[ev.kind == "compute_end"].iloc[0]
    cut_s = float(first.time_s - first.duration_s / 2)
    rows = [(d, 0.0, 5.0 if d != first.device else cut_s) for d in range(6)]
    _, cut = run(tmp_path, ["learning.mode=surrogate", "fl.rounds=1", "fl.devices_per_round=6",
                            f"devices.availability={{model: trace, path: {write_trace(tmp_path / 'b.csv', rows)}}}"], "b")
    ev = cut["events"]
    drop = ev[(ev.kind == "dropout") & (ev.device == first.device)]
    assert len(drop) == 1 and drop.iloc[0].time_s == cut_s
    assert drop.iloc[0].detail == "unavailable during compute"
    # Half the computation's energy (E = κ·cycles·f², linear in the cycles done).
    assert drop.iloc[0].energy_j == pytest.approx(first.energy_j / 2, rel=1e-9)
    assert not ((ev.device == first.device) & ev.kind.isin(["compute_end", "ul_end"])).any()
    assert cut["rounds"].dropouts.iloc[0] == 1


def test_no_device_ever_available_ends_the_run_traced(tmp_path):
    path = write_trace(tmp_path / "av.csv", [(0, 0.5, 0.6)])
    summary, t = run(tmp_path, ["learning.mode=surrogate", "fl.rounds=50",
                                f"devices.availability={{model: trace, path: {path}}}", "fl.devices_per_round=1"])
    assert t["events"].kind.iloc[-1] == "none_available"
    assert summary["rounds"] < 50


@pytest.mark.parametrize("override, message", [
    ("devices.availability={model: markov, mean_on_s: 1.0}", "devices.availability.mean_off_s"),
    ("devices.availability={model: trace}", "devices.availability.path"),
    ("devices.availability={model: markov, mean_on_s: 1.0, mean_off_s: 1.0, groups: [{devices: [3, 9], mean_on_s: 1.0, mean_off_s: 2.0}]}",
     "devices.availability.groups.0.devices"),
    ("devices.availability={model: markov, mean_on_s: 1.0, mean_off_s: 1.0, profiles: {mid: {mean_on_s: 1.0, mean_off_s: 2.0}}}",
     "devices.availability.profiles.mid"),
])
def test_bad_availability_is_one_line_naming_the_key(override, message):
    with pytest.raises(ScenarioError) as err:
        load_scenario(SMOKE, [override])
    assert message in str(err.value)
