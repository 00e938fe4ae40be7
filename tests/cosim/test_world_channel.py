"""World channel details: LOS-only Rician K per TR 38.901 Table 7.5-6,
RMa shadowing σ by distance, per-model default BS heights, A3 handover with time-to-trigger
and ping-pong counting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from cosim.engine import run_simulation
from cosim.engine.world import World
from cosim.scenario import load_scenario
from radio.constants import SPEED_OF_LIGHT_M_S

SMOKE = Path(__file__).resolve().parents[2] / "scenarios" / "smoke.yaml"


def world(overrides: list[str], seed: int = 0) -> World:
    scenario = load_scenario(SMOKE, ["learning.mode=surrogate", *overrides])
    names = ("mobility", "los", "shadowing", "fading", "kfactor")
    rngs = {n: np.random.default_rng(s) for n, s in zip(names, np.random.SeedSequence(seed).spawn(len(names)))}
    return World(scenario, np.full(scenario.devices.count, 23.0), rngs)


CELLS = ("cells=[{name: a, x_m: 0, y_m: 0, pathloss: uma}, {name: b, x_m: 1000, y_m: 0, pathloss: umi},"
         " {name: c, x_m: 2000, y_m: 0, pathloss: rma}]")


def test_cell_without_height_gets_its_models_nominal_height():
    # Old: 25 m whatever the model. TR 38.901 Table 7.4.1-1: UMa 25, UMi 10, RMa 35.
    w = world(["area={width_m: 2000, height_m: 2000}", CELLS])
    np.testing.assert_array_equal(w.cell_height_m, [25.0, 10.0, 35.0])
    assert [m.h_bs_m for m in w._pathloss] == [25.0, 10.0, 35.0]
    explicit = world(["area={width_m: 2000, height_m: 2000}",
                      "cells=[{name: a, x_m: 0, y_m: 0, pathloss: umi, height_m: 12}]"])
    np.testing.assert_array_equal(explicit.cell_height_m, [12.0])


def test_rician_k_per_model_from_table_7_5_6():
    n = 4000
    w = world(["area={width_m: 2000, height_m: 2000}", CELLS, f"devices.count={n}", "fl.devices_per_round=1",
               "radio.fading=rician"])
    k_db = w._k_los_db
    for cell, (mu, sigma) in enumerate([(9.0, 3.5), (9.0, 5.0), (7.0, 4.0)]):  # UMa, UMi, RMa LOS
        assert k_db[cell].mean() == pytest.approx(mu, abs=4 * sigma / np.sqrt(n))
        assert k_db[cell].std() == pytest.approx(sigma, rel=0.05)
    fixed = world(["area={width_m: 2000, height_m: 2000}", CELLS, "radio.fading=rician", "radio.rician_k_db=12"])
    np.testing.assert_array_equal(fixed._k_los_db, 12.0)


def test_rician_fading_only_on_los_links():
    # K = 30 dB: a LOS link barely fades; an NLOS link must be Rayleigh (|h|² ~ Exp(1)).
    from scipy import stats

    w = world(["area={width_m: 400, height_m: 400}", "cells=[{name: a, x_m: 200, y_m: 200, pathloss: uma}]",
               "devices.count=3000", "fl.devices_per_round=1", "radio.fading=rician", "radio.rician_k_db=30"])
    los = w.los[0]
    assert 100 < los.sum() < los.size - 100
    gains_los, gains_nlos = [], []
    for _ in range(3):
        w.tick(0.0)
        gains_los.append(w.fading_ul.gain_linear[0][w.los[0]])
        gains_nlos.append(w.fading_ul.gain_linear[0][~w.los[0]])
    g_los, g_nlos = np.concatenate(gains_los), np.concatenate(gains_nlos)
    assert stats.kstest(g_nlos, "expon").pvalue > 1e-3
    assert g_nlos.var() == pytest.approx(1.0, rel=0.1)  # Exp(1): variance 1
    k = 10 ** 3.0
    assert g_los.var() == pytest.approx((1 + 2 * k) / (k + 1) ** 2, rel=0.15)  # Rician |h|²: (1+2K)/(K+1)²
    assert g_los.mean() == pytest.approx(1.0, abs=0.01)


def test_rma_los_shadow_sigma_depends_on_distance():
    # d_BP = 2π·h_BS·h_UT·f_c/c = 2π·35·1.5·3.5e9/c ≈ 3.85 km: σ_SF(LOS) = 4 dB before, 6 dB beyond.
    d_bp = 2 * np.pi * 35.0 * 1.5 * 3.5e9 / SPEED_OF_LIGHT_M_S
    assert 3800 < d_bp < 3900
    w = world(["area={width_m: 8000, height_m: 100}", "cells=[{name: r, x_m: 0, y_m: 50, pathloss: rma}]",
               "devices.count=2", "fl.devices_per_round=1",
               "devices.mobility={model: static, params: {positions_m: [[1000, 50], [6000, 50]]}}"])
    w._los_draw[:] = 0.0  # u = 0 < P_LOS: both links LOS
    w.tick(0.0)
    assert w.los.all()
    np.testing.assert_array_equal(w.shadowing.std_db[0], [4.0, 6.0])


def a3_world(ttt_s: float, offset_db: float = 3.0, window_s: float = 5.0) -> World:
    w = world([f"radio.handover={{a3_offset_db: {offset_db}, time_to_trigger_s: {ttt_s},"
               f" ping_pong_window_s: {window_s}}}", "devices.count=1", "fl.devices_per_round=1"])
    w.serving_cell[:] = 0
    return w


def rsrp(a_dbm: float, b_dbm: float) -> np.ndarray:
    return np.array([[a_dbm], [b_dbm]])


# Cell b beats a by 4 dB (> 3 dB offset) at t = 1 and 2, falls back at t = 3, beats again at 4.
SCRIPT = [(0.0, rsrp(-80, -85)), (1.0, rsrp(-80, -76)), (2.0, rsrp(-80, -76)), (3.0, rsrp(-76, -80)),
          (4.0, rsrp(-80, -76)), (5.0, rsrp(-80, -76))]


def play(w: World) -> list[tuple[float, int, int, bool]]:
    log = []
    for t, r in SCRIPT:
        log += [(t, h.from_cell, h.to_cell, h.ping_pong) for h in w.evaluate_handovers(r, t)]
    return log


def test_a3_without_time_to_trigger_ping_pongs():
    # TTT = 0 is the old behaviour (hysteresis only): every crossing is a handover.
    assert play(a3_world(0.0)) == [(1.0, 0, 1, False), (3.0, 1, 0, True), (4.0, 0, 1, True)]


def test_time_to_trigger_holds_the_handover_until_the_condition_lasted():
    # TTT = 0.64 s: b must stay 3 dB better from t = 1 until >= 1.64 -> handover at t = 2;
    # a beats b only at t = 3, which starts the timer for the way back but never lasts.
    assert play(a3_world(0.64)) == [(2.0, 0, 1, False)]
    # TTT = 1.5 s: 1 -> 2 is only 1 s; the condition breaks at 3; from 4 it lasts only to 5.
    assert play(a3_world(1.5)) == []


def test_ping_pong_window():
    # Without TTT: a->b at 1, back to a at 3 (2 s after leaving it), to b again at 4 (1 s after).
    assert [h[3] for h in play(a3_world(0.0, window_s=0.5))] == [False, False, False]
    assert [h[3] for h in play(a3_world(0.0, window_s=1.0))] == [False, False, True]
    assert [h[3] for h in play(a3_world(0.0, window_s=2.0))] == [False, True, True]


def test_ping_pongs_counted_in_summary_and_traced(tmp_path):
    urban = SMOKE.parent / "urban_50dev.yaml"
    overrides = ["learning.mode=surrogate", "learning.algorithm.name=fedavg", "fl.rounds=3",
                 "radio.handover={time_to_trigger_s: 0.0, ping_pong_window_s: 30.0}"]
    summary = run_simulation(load_scenario(urban, overrides), tmp_path / "run")
    ev = pq.read_table(tmp_path / "run" / "events.parquet").to_pydict()
    handovers = [d for k, d in zip(ev["kind"], ev["detail"]) if k == "handover"]
    assert summary["handovers"] == len(handovers) > 0
    assert summary["ping_pongs"] == sum(d.endswith(" ping_pong") for d in handovers) > 0


def test_subbands_average_the_fading_of_each_link():
    flat = world(["devices.count=2000", "fl.devices_per_round=1"])
    selective = world(["devices.count=2000", "fl.devices_per_round=1", "radio.subbands=8"])
    g_flat, g_sel = flat.fading_ul.gain_linear, selective.fading_ul.gain_linear
    assert g_flat.var() == pytest.approx(1.0, rel=0.1)  # Exp(1)
    assert g_sel.var() < 0.2  # capacity-equivalent gain of 8 subbands: var <= ~1/8
    assert np.quantile(g_sel, 0.05) > 4 * np.quantile(g_flat, 0.05)
    with pytest.raises(Exception, match="radio.subbands"):
        world(["radio.subbands=0"])


def test_subband_reference_snr_is_the_noise_limited_link_budget():
    from radio.link import noise_power_dbm

    overrides = ["devices.count=5", "fl.devices_per_round=1", "radio.subbands=4"]
    w = world(overrides)
    ul, dl = w._reference_snrs(w.distances_m())
    scenario = load_scenario(SMOKE, ["learning.mode=surrogate", *overrides])
    # smoke: two UMi cells, 33 dBm, NF 5 dB, 20 MHz; UE 23 dBm (as built above), NF 9 dB.
    gains_db = np.array([getattr(c, "antenna_gain_dbi", 0.0) for c in scenario.cells])[:, None] \
        + getattr(scenario.devices, "antenna_gain_dbi", 0.0)
    loss = w.large_scale_loss_db
    np.testing.assert_allclose(10 * np.log10(ul), 23.0 + gains_db - loss - noise_power_dbm(20e6, 5.0), rtol=1e-12)
    np.testing.assert_allclose(10 * np.log10(dl), 33.0 + gains_db - loss - noise_power_dbm(20e6, 9.0), rtol=1e-12)
