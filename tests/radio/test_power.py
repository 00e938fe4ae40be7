"""UE power consumption: drawn (not radiated) transmit power, receive/idle states, and the
CPU's static floor with its energy-optimal DVFS clock."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from radio.compute import (
    FREQUENCY_POLICIES,
    PROFILES,
    compute_energy_j,
    compute_time_s,
    energy_optimal_frequency_hz,
    min_energy_within_deadline,
)
from radio.power import drawn_tx_power_w

PHONES = ("high", "mid", "low")
P_23DBM_W = 10 ** (23 / 10) / 1000  # 0.19953 W


def test_drawn_tx_power_hand_computed() -> None:
    # 0.2 W radiated through a 25 % PA plus 1.2 W of circuit: 1.2 + 0.8 = 2.0 W.
    assert drawn_tx_power_w(0.2, 0.25, 1.2) == pytest.approx(2.0, rel=1e-12)
    # Vectorised over devices, each with its own profile numbers.
    p = np.array([0.2, 0.1, 0.0, 0.025])
    eta = np.array([0.25, 0.2, 0.3, 0.45])
    circuit = np.array([1.2, 1.1, 1.2, 0.056])
    out = drawn_tx_power_w(p, eta, circuit)
    for i in range(4):
        assert out[i] == pytest.approx(circuit[i] + p[i] / eta[i], rel=1e-12)


@pytest.mark.parametrize("name", PHONES)
def test_phone_draws_one_to_three_watts_at_23_dbm(name) -> None:
    # Jensen et al. 2012 / Lauridsen et al. 2014: an LTE UE draws roughly 1-3 W when it
    # transmits at 23 dBm (the old model charged the radiated 0.2 W).
    p = PROFILES[name]
    drawn = float(drawn_tx_power_w(P_23DBM_W, p.pa_efficiency, p.tx_circuit_power_w))
    assert 1.0 <= drawn <= 3.0
    assert drawn > 5 * P_23DBM_W
    # Transmitting at full power costs more than receiving (the old model had rx 0.5 W > tx 0.2 W).
    assert drawn > p.rx_power_w > p.idle_power_w


def test_iot_matches_cellular_iot_assumption() -> None:
    # TR 45.820's cellular-IoT energy model: 500 mW drawn at 23 dBm, 80 mW receiving.
    iot = PROFILES["iot"]
    assert drawn_tx_power_w(P_23DBM_W, iot.pa_efficiency, iot.tx_circuit_power_w) == pytest.approx(0.5, rel=0.01)
    assert iot.rx_power_w == pytest.approx(0.08)


@pytest.mark.parametrize(("args", "name"), [((-0.1, 0.25, 1.0), "radiated_w"), ((0.1, 0.0, 1.0), "pa_efficiency"),
                                            ((0.1, 1.5, 1.0), "pa_efficiency"), ((0.1, 0.3, -1.0), "tx_circuit_power_w"),
                                            ((float("nan"), 0.3, 1.0), "radiated_w")])
def test_drawn_tx_power_rejects_bad_input(args, name) -> None:
    with pytest.raises(ValueError, match=name):
        drawn_tx_power_w(*args)


@pytest.mark.parametrize(("field", "value"), [("pa_efficiency", 0.0), ("pa_efficiency", 1.01),
                                              ("tx_circuit_power_w", -0.1), ("cpu_static_power_w", math.inf)])
def test_profile_rejects_bad_power_fields(field, value) -> None:
    with pytest.raises(ValueError, match=rf"{field}=.*allowed"):
        dataclasses.replace(PROFILES["mid"], **{field: value})


# ------------------------------------------------------------------ compute with a static floor
def test_compute_energy_with_static_floor_hand_computed() -> None:
    # 5e8 cycles at 1 GHz, κ = 1e-28, P_static = 0.2 W: t = 0.5 s,
    # E = 0.2 * 0.5 + 1e-28 * 5e8 * 1e18 = 0.1 + 0.05 = 0.15 J.
    assert compute_energy_j(5e8, 1e9, 1e-28, 0.2) == pytest.approx(0.15, rel=1e-12)
    # Same as (P_static + κ f³) · t.
    t = compute_time_s(5e8, 1e9)
    assert compute_energy_j(5e8, 1e9, 1e-28, 0.2) == pytest.approx((0.2 + 1e-28 * 1e27) * t, rel=1e-12)
    with pytest.raises(ValueError, match="static_power_w"):
        compute_energy_j(1.0, 1e9, 1e-28, -0.1)


def test_energy_optimal_frequency_hand_computed() -> None:
    # f* = (P_static / 2κ)^(1/3): 0.2 W, κ = 1e-28 -> (1e27)^(1/3) = 1e9 Hz.
    assert energy_optimal_frequency_hz(1e-28, 0.2) == pytest.approx(1e9, rel=1e-12)
    f = np.linspace(0.2e9, 3e9, 2801)
    energy = compute_energy_j(1e9, f, 1e-28, 0.2)
    assert f[np.argmin(energy)] == pytest.approx(1e9, abs=1e6)
    assert energy_optimal_frequency_hz(1e-28, 0.0) == 0.0


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_each_profile_has_an_interior_energy_optimum(name) -> None:
    p = PROFILES[name]
    f_star = float(energy_optimal_frequency_hz(p.kappa, p.cpu_static_power_w))
    assert p.f_min_hz < f_star < p.f_max_hz


def test_min_energy_without_deadline_runs_at_the_optimum_not_f_min() -> None:
    # Old model (no static floor): min_energy always picked f_min. Now it picks f*.
    mid = PROFILES["mid"]
    f = min_energy_within_deadline(np.array([1e9]), None, mid.f_min_hz, mid.f_max_hz,
                                   kappa=mid.kappa, static_power_w=mid.cpu_static_power_w)
    assert f[0] == pytest.approx(1e9, rel=1e-12)
    assert f[0] > mid.f_min_hz


@settings(max_examples=60, deadline=None)
@given(cycles=st.floats(min_value=1e6, max_value=5e10),
       budget_s=st.one_of(st.none(), st.floats(min_value=1e-3, max_value=1e3)),
       static_w=st.floats(min_value=0.0, max_value=2.0),
       kappa=st.floats(min_value=1e-29, max_value=1e-27))
def test_min_energy_is_the_constrained_minimum(cycles, budget_s, static_w, kappa) -> None:
    # Brute force: the cheapest frequency on a fine grid of the feasible range must not
    # beat the closed form.
    lo, hi = 0.2e9, 2.5e9
    f = float(min_energy_within_deadline(np.array([cycles]), budget_s, lo, hi, kappa=kappa,
                                         static_power_w=static_w)[0])
    assert lo <= f <= hi
    need = lo if budget_s is None else max(lo, cycles / budget_s)
    if need > hi:
        assert f == hi
        return
    grid = np.linspace(need, hi, 4001)
    best = float(np.min(compute_energy_j(cycles, grid, kappa, static_w)))
    assert f >= need * (1 - 1e-12)
    assert float(compute_energy_j(cycles, f, kappa, static_w)) <= best * (1 + 1e-9)


def test_max_policy_ignores_power_arguments() -> None:
    f = FREQUENCY_POLICIES["max"](np.array([1.0]), None, 0.5e9, 2e9, kappa=1e-28, static_power_w=0.2)
    np.testing.assert_array_equal(f, [2e9])
