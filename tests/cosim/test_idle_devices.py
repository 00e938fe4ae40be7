"""Lazy world ticks (`radio.idle_update_s`): idle devices re-evaluated every
few ticks, checked against the exact tick."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cosim.engine import run_simulation
from cosim.engine.world import World
from cosim.scenario import ScenarioError, load_scenario
from radio.mobility import MOBILITY

ROOT = Path(__file__).resolve().parents[2]
URBAN = ROOT / "scenarios" / "urban_50dev.yaml"
SURROGATE = ["learning.mode=surrogate", "learning.partition={name: iid, params: {}}", "output.formats=[csv]"]


def world(overrides: list[str], seed: int = 3) -> World:
    scenario = load_scenario(URBAN, [*SURROGATE, *overrides])
    names = ("mobility", "los", "shadowing", "fading", "kfactor")
    rngs = {n: np.random.default_rng(s) for n, s in zip(names, np.random.SeedSequence(seed).spawn(len(names)))}
    return World(scenario, np.full(scenario.devices.count, 23.0), rngs)


@pytest.mark.parametrize("fading", ["rayleigh", "rician"])
def test_lazy_tick_with_every_device_active_is_the_exact_tick(fading):
    # The same draws in the same order: a lazy tick over all devices is the exact tick.
    common = ["devices.count=400", "fl.devices_per_round=10", f"radio.fading={fading}", "radio.subbands=2"]
    exact, lazy = world(common), world([*common, "radio.idle_update_s=5"])
    assert (exact.idle_every_ticks, lazy.idle_every_ticks) == (1, 5)
    everyone = np.arange(400)
    for k in range(1, 13):
        h_exact = exact.tick(1.0, float(k))
        h_lazy = lazy.tick_lazy(1.0, float(k), everyone)
        assert [(h.device, h.from_cell, h.to_cell, h.ping_pong) for h in h_exact] == list(
            zip(*(a.tolist() for a in h_lazy)))
        np.testing.assert_array_equal(exact.serving_cell, lazy.serving_cell)
        np.testing.assert_allclose(lazy.links.gain_ul, exact.links.gain_ul, rtol=1e-12)
        np.testing.assert_allclose(lazy.links.ul_target_psd, exact.links.ul_target_psd, rtol=1e-12)
        np.testing.assert_allclose(lazy.large_scale_loss_db, exact.large_scale_loss_db, rtol=1e-12)
        np.testing.assert_array_equal(lazy.los, exact.los)
        np.testing.assert_allclose(lazy.mobility.positions_m, exact.mobility.positions_m, rtol=1e-12)


def test_idle_devices_are_re_evaluated_every_idle_update_s_and_active_ones_every_tick():
    w = world(["devices.count=100", "fl.devices_per_round=10", "radio.idle_update_s=4"])
    active = np.array([3, 50, 97])
    before = w.links.gain_ul.copy()
    for k in range(1, 9):
        w.tick_lazy(1.0, float(k), active)
        assert set(active) <= set(w.updated_devices.tolist())
        # Everyone was re-evaluated within the last 4 ticks; the idle ones not every tick.
        assert np.all(float(k) - w._synced_s <= 4.0 - 1.0) or k < 4
        assert w.updated_devices.size < 100 // 4 + 1 + active.size
    assert not np.any(w.links.gain_ul == before)  # nobody kept its initial channel


def test_street_grid_step_devices_is_the_same_walk():
    # One device walking 7.3 s in one go or in steps of 1 s: the same path (same draws).
    make = lambda: MOBILITY["street_grid"](1, (1000.0, 1000.0), np.random.default_rng(5),  # noqa: E731
                                         block_m=100.0, speed_mps=(30.0, 40.0))
    once, steps = make(), make()
    moved = once.step_devices(np.array([0]), 7.3)
    walked = sum(steps.step(1.0)[0] for _ in range(7)) + steps.step(0.3)[0]
    np.testing.assert_allclose(once.positions_m, steps.positions_m, atol=1e-9)
    assert moved[0] == pytest.approx(walked, rel=1e-12)


def test_run_with_idle_updates_matches_the_exact_run_statistically(tmp_path):
    # Rounds, transfers and energy are what the active devices do; only the idle
    # devices' channel is coarser. Summed over seeds, within 10 % (the draws differ).
    common = [*SURROGATE, "devices.count=300", "fl.devices_per_round=30", "fl.rounds=4", "output.events=transfers"]
    totals = {}
    for idle in (None, 5.0):
        extra = [] if idle is None else [f"radio.idle_update_s={idle}"]
        sums = np.zeros(3)
        for seed in (1, 2, 3):
            scenario = load_scenario(URBAN, [*common, f"seed={seed}", *extra])
            s = run_simulation(scenario, tmp_path / f"{idle}-{seed}")
            sums += [s["sim_time_s"], s["energy_j"], s["uplink_bytes"]]
        totals[idle] = sums
    exact, lazy = totals[None], totals[5.0]
    print("exact", exact, "lazy", lazy)
    np.testing.assert_allclose(lazy, exact, rtol=0.1)


def test_idle_update_s_must_be_positive():
    with pytest.raises(ScenarioError, match="idle_update_s"):
        load_scenario(URBAN, [*SURROGATE, "radio.idle_update_s=-1"])


def test_rate_average_update_of_some_devices_is_the_update_of_all_for_them():
    from cosim.engine.dvfs_budget import UplinkRateAverage

    every, some = UplinkRateAverage(np.array([1e6, 2e6, 3e6])), UplinkRateAverage(np.array([1e6, 2e6, 3e6]))
    every.update(np.array([4e6, 4e6, 4e6]), 3.0)
    some.update_devices(np.array([0, 2]), np.array([4e6, 4e6]), np.array([3.0, 3.0]))
    np.testing.assert_allclose(some.mean_bps, [every.mean_bps[0], 2e6, every.mean_bps[2]], rtol=1e-12)


def test_lazy_run_resumes_byte_identical(tmp_path):
    import filecmp

    from cosim.engine import resume_simulation
    from cosim.engine.checkpoint import CHECKPOINT_NAME

    class Crash(Exception):
        pass

    sets = [*SURROGATE, "devices.count=200", "fl.devices_per_round=20", "fl.rounds=4", "fl.deadline_s=30",
            "radio.idle_update_s=5", "output.checkpoint_every=1"]
    run_simulation(load_scenario(URBAN, sets), tmp_path / "ref")

    def crash_in_round_3(progress) -> None:
        if progress.round == 3:
            raise Crash

    with pytest.raises(Crash):
        run_simulation(load_scenario(URBAN, sets), tmp_path / "crashed", progress=crash_in_round_3)
    resume_simulation(tmp_path / "crashed")
    for name in ("events.csv", "rounds.csv", "devices.csv"):
        assert filecmp.cmp(tmp_path / "ref" / name, tmp_path / "crashed" / name, shallow=False), name
