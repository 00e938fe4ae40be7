"""CPU/DVFS model: t = C/f, E = κ C f², profiles and frequency policies."""

from __future__ import annotations

import dataclasses
import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from radio.compute import (
    FREQUENCY_POLICIES,
    PROFILES,
    compute_energy_j,
    compute_time_s,
    cycles_for_flops,
    min_energy_within_deadline,
)

REL_TOL = 1e-12


def test_hand_computed_point() -> None:
    # 1e9 FLOPs at 0.5 cycle/FLOP = 5e8 cycles; f = 2 GHz, κ = 1e-28
    cycles = cycles_for_flops(1e9, 0.5)
    assert cycles == pytest.approx(5e8, rel=REL_TOL)
    assert compute_time_s(cycles, 2e9) == pytest.approx(0.25, rel=REL_TOL)
    # E = 1e-28 * 5e8 * (2e9)^2 = 1e-28 * 5e8 * 4e18 = 0.2 J
    assert compute_energy_j(cycles, 2e9, 1e-28) == pytest.approx(0.2, rel=REL_TOL)


def test_doubling_frequency_halves_time_quadruples_energy() -> None:
    cycles = np.array([1e6, 3e8, 7.5e9, 0.0])
    f_hz = np.array([0.3e9, 1.0e9, 2.1e9, 1e9])
    np.testing.assert_allclose(compute_time_s(cycles, 2 * f_hz), compute_time_s(cycles, f_hz) / 2)
    np.testing.assert_allclose(compute_energy_j(cycles, 2 * f_hz, 1e-28),
                               4 * compute_energy_j(cycles, f_hz, 1e-28))


def test_vectorised_matches_scalar_reference() -> None:
    rng = np.random.default_rng(0)
    cycles = rng.uniform(0, 1e10, 50)
    f_hz = rng.uniform(1e8, 3e9, 50)
    kappa = rng.uniform(1e-29, 1e-27, 50)
    e = compute_energy_j(cycles, f_hz, kappa)
    t = compute_time_s(cycles, f_hz)
    for i in range(50):
        assert e[i] == pytest.approx(kappa[i] * cycles[i] * f_hz[i] ** 2, rel=REL_TOL)
        assert t[i] == pytest.approx(cycles[i] / f_hz[i], rel=REL_TOL)


def test_compute_input_validation() -> None:
    with pytest.raises(ValueError, match="f_hz"):
        compute_time_s(1.0, 0.0)
    with pytest.raises(ValueError, match="cycles"):
        compute_energy_j(-1.0, 1e9, 1e-28)
    with pytest.raises(ValueError, match="kappa"):
        compute_energy_j(1.0, 1e9, float("nan"))
    with pytest.raises(ValueError, match="cycles_per_flop"):
        cycles_for_flops(1.0, 0.0)


# ------------------------------------------------------------------ profiles
def test_profiles_shipped() -> None:
    assert {"high", "mid", "low", "iot"} <= set(PROFILES)
    for name, p in PROFILES.items():
        assert p.name == name
        assert p.kappa == 1e-28
        assert pickle.loads(pickle.dumps(p)) == p
    high = PROFILES["high"]
    assert (high.f_min_hz, high.f_max_hz, high.cycles_per_flop) == (0.5e9, 2.8e9, 0.25)
    assert high.battery_j == pytest.approx(54e3)
    assert (PROFILES["low"].battery_j, PROFILES["iot"].battery_j) == (20e3, 5e3)
    assert PROFILES["iot"].tx_power_dbm == 14.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        high.kappa = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("f_min_hz", 0.0, "> 0"),
        ("f_max_hz", 0.1e9, ">= f_min_hz"),
        ("cycles_per_flop", -1.0, "> 0"),
        ("kappa", 0.0, "> 0"),
        ("tx_power_dbm", 60.0, r"\[-40, 40\]"),
        ("idle_power_w", -0.1, ">= 0"),
        ("rx_power_w", float("inf"), ">= 0"),
        ("battery_j", 0.0, "> 0"),
        ("kappa", float("nan"), "not NaN"),
        ("name", "", "non-empty"),
    ],
)
def test_profile_validation_names_field_value_and_range(field, value, allowed) -> None:
    with pytest.raises(ValueError, match=rf"{field}=.*{allowed}") as info:
        dataclasses.replace(PROFILES["mid"], **{field: value})
    assert repr(value) in str(info.value)


def test_profile_allows_mains_power() -> None:
    p = dataclasses.replace(PROFILES["high"], battery_j=math.inf)
    assert p.battery_j == math.inf


# ------------------------------------------------------------------ policies
budgets = st.one_of(
    st.none(),
    st.just(math.inf),
    st.floats(min_value=-1.0, max_value=100.0),
)


@pytest.mark.parametrize("name", sorted(FREQUENCY_POLICIES))
@settings(max_examples=30, deadline=None)
@given(cycles=st.lists(st.floats(min_value=0, max_value=1e11), min_size=1, max_size=20),
       budget=budgets)
def test_policy_within_dvfs_range(name, cycles, budget) -> None:
    c = np.array(cycles)
    lo = np.full(c.size, 0.3e9)
    hi = np.linspace(0.3e9, 2.8e9, c.size)
    f = FREQUENCY_POLICIES[name](c, budget, lo, hi)
    assert f.shape == c.shape
    assert np.all(f >= lo) and np.all(f <= hi)


@pytest.mark.parametrize("name", sorted(FREQUENCY_POLICIES))
def test_policy_contract(name) -> None:
    policy = FREQUENCY_POLICIES[name]
    assert pickle.loads(pickle.dumps(policy)) is policy
    f = policy(np.array([1e9, 2e9]), np.array([1.0, 1.0]), 0.5e9, np.array([2.8e9, 1.0e9]))
    assert f.shape == (2,)
    with pytest.raises(ValueError, match="f_min_hz"):
        policy(np.array([1e9]), 1.0, 3e9, 2e9)


def test_max_policy_is_f_max() -> None:
    f = FREQUENCY_POLICIES["max"](np.array([1.0, 2.0]), None, 0.5e9, np.array([1e9, 2e9]))
    np.testing.assert_array_equal(f, [1e9, 2e9])


@settings(max_examples=50, deadline=None)
@given(cycles=st.lists(st.floats(min_value=1.0, max_value=1e11), min_size=1, max_size=20),
       budget_s=st.floats(min_value=1e-3, max_value=1e3))
def test_min_energy_meets_deadline_and_saves_energy(cycles, budget_s) -> None:
    c = np.array(cycles)
    lo, hi, kappa = 0.2e9, 2.0e9, 1e-28
    f = min_energy_within_deadline(c, budget_s, lo, hi)
    f_max = FREQUENCY_POLICIES["max"](c, budget_s, lo, hi)
    feasible = c / hi <= budget_s
    t = compute_time_s(c, f)
    assert np.all(t[feasible] <= budget_s * (1 + 1e-12))
    assert np.all(f[~feasible] == hi)  # infeasible: as fast as possible
    assert np.all(compute_energy_j(c, f, kappa) <= compute_energy_j(c, f_max, kappa))
    # Lowest such frequency: either f_min or exactly C / budget.
    tight = feasible & (f > lo)
    np.testing.assert_allclose(f[tight], c[tight] / budget_s, rtol=1e-12)


def test_min_energy_edge_budgets() -> None:
    c = np.array([1e9, 1e9, 1e9, 1e9, 1e9])
    budget = np.array([math.inf, 0.0, -2.0, 1e-6, 1.0])
    f = min_energy_within_deadline(c, budget, 0.5e9, 2.0e9)
    np.testing.assert_array_equal(f, [0.5e9, 2.0e9, 2.0e9, 2.0e9, 1e9])
    np.testing.assert_array_equal(min_energy_within_deadline(c, None, 0.5e9, 2.0e9),
                                  np.full(5, 0.5e9))
    with pytest.raises(ValueError, match="time_budget_s"):
        min_energy_within_deadline(c, float("nan"), 0.5e9, 2.0e9)
