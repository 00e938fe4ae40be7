"""Mobility models: registry contract, area invariants, speed bounds, street geometry."""

from __future__ import annotations

import pickle

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from radio.mobility import MOBILITY, GaussMarkov, RandomWaypoint, Static, StreetGrid

AREA_M = (500.0, 300.0)
TOL_M = 1e-9
N_DEV = 40

dt_lists = st.lists(
    st.floats(min_value=0.0, max_value=400.0, allow_nan=False), min_size=1, max_size=8
)


def make(name: str, seed: int = 0, n: int = N_DEV, **params):
    return MOBILITY[name](n, AREA_M, np.random.default_rng(seed), **params)


def in_area(pos_m: np.ndarray) -> bool:
    return bool(
        np.all(pos_m >= -TOL_M) and np.all(pos_m[:, 0] <= AREA_M[0] + TOL_M)
        and np.all(pos_m[:, 1] <= AREA_M[1] + TOL_M)
    )


# ----------------------------------------------------------- registry contract
@pytest.mark.parametrize("name", sorted(MOBILITY))
def test_conformance_check(name: str) -> None:
    """The reusable plugin check (``cosim.checks``) holds for every built-in mobility model."""
    from cosim.checks import check_mobility

    check_mobility(MOBILITY[name])


@pytest.mark.parametrize("name", sorted(MOBILITY))
def test_contract_shapes_and_types(name: str) -> None:
    m = make(name)
    assert m.positions_m.shape == (N_DEV, 2)
    assert m.speeds_mps.shape == (N_DEV,)
    d = m.step(3.0)
    assert d.shape == (N_DEV,) and d.dtype == np.float64
    assert np.all(d >= 0.0)
    assert np.array_equal(m.step(0.0), np.zeros(N_DEV))


@pytest.mark.parametrize("name", sorted(MOBILITY))
def test_contract_same_seed_same_trajectory_and_pickle(name: str) -> None:
    a, b = make(name, seed=7), make(name, seed=7)
    a.step(5.0)
    b.step(5.0)
    clone = pickle.loads(pickle.dumps(a))
    for dt in (0.3, 12.0, 100.0):
        da, db, dc = a.step(dt), b.step(dt), clone.step(dt)
        assert np.array_equal(da, db) and np.array_equal(da, dc)
        assert np.array_equal(a.positions_m, b.positions_m)
        assert np.array_equal(a.positions_m, clone.positions_m)


@pytest.mark.parametrize("name", sorted(m for m in MOBILITY if m != "static"))
def test_different_seeds_differ(name: str) -> None:
    a, b = make(name, seed=1), make(name, seed=2)
    a.step(10.0)
    b.step(10.0)
    assert not np.array_equal(a.positions_m, b.positions_m)


@pytest.mark.parametrize("name", sorted(MOBILITY))
def test_contract_rejects_unknown_param(name: str) -> None:
    with pytest.raises(TypeError, match="bogus_param") as info:
        make(name, bogus_param=1)
    for allowed in MOBILITY[name].PARAMS:
        assert allowed in str(info.value)


@pytest.mark.parametrize("name", sorted(MOBILITY))
def test_contract_rejects_bad_dt_and_area(name: str) -> None:
    m = make(name)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="dt_s"):
            m.step(bad)
    with pytest.raises(ValueError, match="area_m"):
        MOBILITY[name](3, (0.0, 10.0), np.random.default_rng(0))


@pytest.mark.parametrize("name", sorted(MOBILITY))
def test_positions_are_copies(name: str) -> None:
    m = make(name)
    p = m.positions_m
    p[:] = -123.0
    assert in_area(m.positions_m)


@pytest.mark.parametrize("name", sorted(MOBILITY))
def test_zero_devices(name: str) -> None:
    m = make(name, n=0)
    assert m.step(5.0).shape == (0,)
    assert m.positions_m.shape == (0, 2)


# ------------------------------------------------------------- area invariant
@pytest.mark.parametrize("name", sorted(MOBILITY))
@settings(max_examples=15, deadline=None)
@given(dts=dt_lists, seed=st.integers(0, 2**16))
def test_positions_stay_in_area(name: str, dts: list[float], seed: int) -> None:
    m = make(name, seed=seed, n=10)
    assert in_area(m.positions_m)
    for dt in dts:
        m.step(dt)
        assert in_area(m.positions_m)


# ----------------------------------------------------------- distance bounds
@settings(max_examples=15, deadline=None)
@given(dts=dt_lists, seed=st.integers(0, 2**16), pause_s=st.sampled_from([0.0, 2.0]))
def test_random_waypoint_distance_bounded_by_max_speed(dts, seed, pause_s) -> None:
    m = make("random_waypoint", seed=seed, n=10, speed_mps=(0.5, 2.0), pause_s=pause_s)
    for dt in dts:
        before = m.positions_m
        d = m.step(dt)
        disp = np.linalg.norm(m.positions_m - before, axis=1)
        assert np.all(d <= 2.0 * dt * (1 + 1e-9) + TOL_M)
        assert np.all(disp <= d + 1e-6)


@settings(max_examples=15, deadline=None)
@given(dts=dt_lists, seed=st.integers(0, 2**16))
def test_street_grid_distance_is_speed_times_dt(dts, seed) -> None:
    m = make("street_grid", seed=seed, n=10, block_m=50.0)
    v = m.speeds_mps
    assert np.all((v >= 0.5) & (v <= 1.5))
    for dt in dts:
        before = m.positions_m
        d = m.step(dt)
        # Streets never pause: path length is exactly own speed x dt.
        np.testing.assert_allclose(d, v * dt, rtol=1e-9, atol=1e-9)
        # Manhattan displacement can never exceed the path length.
        manhattan = np.abs(m.positions_m - before).sum(axis=1)
        assert np.all(manhattan <= d + 1e-6)


@settings(max_examples=15, deadline=None)
@given(dt=st.floats(min_value=0.0, max_value=0.99), seed=st.integers(0, 2**16))
def test_gauss_markov_distance_within_step(dt: float, seed: int) -> None:
    m = make("gauss_markov", seed=seed, n=10, update_interval_s=1.0)
    m.step(0.5)
    for _ in range(4):
        v_before = m.speeds_mps
        before = m.positions_m
        d = m.step(dt)  # dt < interval: at most one velocity update inside the step
        bound = np.maximum(v_before, m.speeds_mps) * dt
        assert np.all(d <= bound * (1 + 1e-12) + 1e-12)
        disp = np.linalg.norm(m.positions_m - before, axis=1)
        assert np.all(disp <= d + 1e-6)


# ------------------------------------------------------------ model specifics
def test_static_never_moves_and_accepts_positions() -> None:
    pos = np.array([[0.0, 0.0], [500.0, 300.0], [10.0, 20.0]])
    m = Static(3, AREA_M, np.random.default_rng(0), positions_m=pos)
    for dt in (1.0, 1e4):
        assert np.array_equal(m.step(dt), np.zeros(3))
        assert np.array_equal(m.positions_m, pos)
    assert np.array_equal(m.speeds_mps, np.zeros(3))
    with pytest.raises(ValueError, match="positions_m"):
        Static(3, AREA_M, np.random.default_rng(0), positions_m=pos[:2])
    with pytest.raises(ValueError, match="positions_m"):
        Static(1, AREA_M, np.random.default_rng(0), positions_m=[[600.0, 1.0]])


def test_random_waypoint_pause_and_bad_values() -> None:
    m = RandomWaypoint(1, AREA_M, np.random.default_rng(3), speed_mps=(1.0, 1.0), pause_s=10.0)
    leg_m = float(np.linalg.norm(m._target_m[0] - m.positions_m[0]))
    d = m.step(leg_m + 4.0)  # reach the waypoint, then pause 4 s of 10 s
    np.testing.assert_allclose(d, [leg_m])
    assert m.speeds_mps[0] == 0.0
    np.testing.assert_allclose(m.step(6.0), [0.0])  # still pausing
    np.testing.assert_allclose(m.step(2.0), [2.0])  # walking again at 1 m/s
    with pytest.raises(ValueError, match=r"speed_mps.*0 < min <= max"):
        RandomWaypoint(2, AREA_M, np.random.default_rng(0), speed_mps=(0.0, 1.0))
    with pytest.raises(ValueError, match=r"speed_mps"):
        RandomWaypoint(2, AREA_M, np.random.default_rng(0), speed_mps=(2.0, 1.0))
    with pytest.raises(ValueError, match=r"pause_s=-1"):
        RandomWaypoint(2, AREA_M, np.random.default_rng(0), pause_s=-1)


def test_gauss_markov_alpha_one_is_constant_velocity_with_reflection() -> None:
    m = GaussMarkov(1, (10.0, 10.0), np.random.default_rng(0), alpha=1.0,
                    mean_speed_mps=3.0, update_interval_s=0.5)
    m._pos_m[:] = [[2.0, 5.0]]
    m._dir_rad[:] = 0.0  # +x
    m._mean_dir_rad[:] = 0.0
    d = m.step(10.0)  # 30 m: 2 -> 10 (8 m), back to 0 (10 m), out to 10 (10 m), back 2 m
    np.testing.assert_allclose(d, [30.0])
    np.testing.assert_allclose(m.positions_m, [[8.0, 5.0]], atol=1e-9)
    np.testing.assert_allclose(np.cos(m._dir_rad), [-1.0], atol=1e-12)  # now heading -x


def test_gauss_markov_speed_statistics() -> None:
    # Stationary AR(1): mean s̄, std σ_s (clipping at 0 negligible for s̄ = 5σ).
    m = GaussMarkov(4000, AREA_M, np.random.default_rng(11), mean_speed_mps=1.5,
                    alpha=0.5, speed_std_mps=0.3)
    m.step(20.0)
    v = m.speeds_mps
    assert abs(v.mean() - 1.5) < 0.03
    assert abs(v.std() - 0.3) < 0.03
    with pytest.raises(ValueError, match=r"alpha=1.5.*\[0.0, 1.0\]"):
        GaussMarkov(2, AREA_M, np.random.default_rng(0), alpha=1.5)
    with pytest.raises(ValueError, match="update_interval_s"):
        GaussMarkov(2, AREA_M, np.random.default_rng(0), update_interval_s=0.0)


def on_street(pos_m: np.ndarray, block_m: float) -> np.ndarray:
    r = pos_m / block_m
    err = np.abs(r - np.round(r)) * block_m
    return np.min(err, axis=1) <= 1e-9


@settings(max_examples=15, deadline=None)
@given(dts=dt_lists, seed=st.integers(0, 2**16),
       block_m=st.sampled_from([30.0, 50.0, 70.0, 100.0]))
def test_street_grid_devices_on_streets(dts, seed, block_m) -> None:
    m = make("street_grid", seed=seed, n=12, block_m=block_m, speed_mps=(1.0, 20.0))
    assert np.all(on_street(m.positions_m, block_m))
    for dt in dts:
        m.step(dt)
        assert np.all(on_street(m.positions_m, block_m))
        assert in_area(m.positions_m)


def test_street_grid_follows_shortest_path_and_redraws_destination() -> None:
    m = StreetGrid(1, (400.0, 400.0), np.random.default_rng(5), block_m=100.0,
                   speed_mps=(10.0, 10.0))
    nodes = list(m.graph.nodes)
    assert m.graph.number_of_nodes() == 25
    start, dest = int(m._from[0]), int(m.destinations[0])
    hops = nx.shortest_path_length(m.graph, nodes[start], nodes[dest])
    m.step(hops * 10.0)  # exactly hops edges of 100 m at 10 m/s
    np.testing.assert_allclose(m.positions_m[0], m.node_xy_m[dest], atol=1e-9)
    assert m.destinations[0] != dest  # arrived: new destination drawn
    # Many edges in one step (overshoot across nodes) keep exact path length.
    np.testing.assert_allclose(m.step(137.0), [1370.0])
    assert np.all(on_street(m.positions_m, 100.0))


def test_street_grid_next_hop_matches_networkx() -> None:
    m = StreetGrid(0, (300.0, 200.0), np.random.default_rng(0), block_m=100.0)
    nodes = list(m.graph.nodes)
    for u in range(len(nodes)):
        for d in range(len(nodes)):
            if u == d:
                continue
            nxt = nodes[m._next_hop[d, u]]
            assert m.graph.has_edge(nodes[u], nxt)
            # next hop is one step closer to the destination
            assert (nx.shortest_path_length(m.graph, nxt, nodes[d])
                    == nx.shortest_path_length(m.graph, nodes[u], nodes[d]) - 1)


def test_street_grid_bad_block() -> None:
    with pytest.raises(ValueError, match=r"block_m=1000.*intersections"):
        StreetGrid(2, (100.0, 100.0), np.random.default_rng(0), block_m=1000.0)
    with pytest.raises(ValueError, match=r"block_m=1.*4096"):
        StreetGrid(2, (1000.0, 1000.0), np.random.default_rng(0), block_m=1.0)
    with pytest.raises(ValueError, match=r"block_m=-5"):
        StreetGrid(2, (1000.0, 1000.0), np.random.default_rng(0), block_m=-5)
