"""OFDMA allocators and resource grid: invariants, closed forms, registry contract."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from radio.ofdma import (
    ALLOCATORS,
    ResourceGrid,
    equal,
    largest_remainder,
    max_rate,
    min_time,
    proportional_fair,
)

SUM_TOL = 1e-12
BANDWIDTH_HZ = 20e6

se_values = st.floats(min_value=0.0, max_value=10.0, allow_nan=False)
flows = st.integers(1, 30).flatmap(
    lambda n: st.tuples(
        st.lists(st.one_of(st.just(0.0), se_values), min_size=n, max_size=n),
        st.lists(st.floats(min_value=0.0, max_value=1e8), min_size=n, max_size=n),
        st.lists(st.one_of(st.just(0.0), st.floats(min_value=1e3, max_value=1e9)),
                 min_size=n, max_size=n),
    )
)

# Physically meaningful ranges (SE of a covered link >= 1e-3 bit/s/Hz, whole bytes):
# closed-form checks need them; the invariant tests above also use subnormals.
realistic_flows = st.integers(1, 30).flatmap(
    lambda n: st.tuples(
        st.lists(st.one_of(st.just(0.0), st.floats(min_value=1e-3, max_value=10.0)),
                 min_size=n, max_size=n),
        st.lists(st.integers(0, 10**8).map(float), min_size=n, max_size=n),
        st.lists(st.floats(min_value=0.0, max_value=1e9), min_size=n, max_size=n),
    )
)


# -------------------------------------------------------- registry contract
@pytest.mark.parametrize("name", sorted(ALLOCATORS))
@settings(max_examples=25, deadline=None)
@given(state=flows)
def test_shares_nonnegative_and_sum_to_one(name, state) -> None:
    se, rem, avg = (np.array(v) for v in state)
    x = ALLOCATORS[name](se, rem, avg)
    assert x.shape == se.shape and x.dtype == np.float64
    assert np.all(np.isfinite(x)) and np.all(x >= 0.0)
    assert abs(x.sum() - 1.0) < SUM_TOL * max(1, se.size)
    if name != "equal" and np.any(se > 0):  # uncovered flows never take band
        assert np.all(x[se == 0] == 0.0)


@pytest.mark.parametrize("name", sorted(ALLOCATORS))
def test_contract_empty_single_pickle_and_errors(name) -> None:
    from cosim.checks import check_allocator  # the reusable plugin check holds for every built-in

    check_allocator(ALLOCATORS[name], channel_blind=name == "equal")
    alloc = ALLOCATORS[name]
    assert alloc(np.zeros(0), np.zeros(0), np.zeros(0)).shape == (0,)
    np.testing.assert_array_equal(alloc([2.0], [100.0], [1e6]), [1.0])
    assert pickle.loads(pickle.dumps(alloc)) is alloc
    args = ([1.0, 2.0], [10.0, 20.0], [1.0, 1.0])
    np.testing.assert_array_equal(alloc(*args), alloc(*args))  # deterministic
    with pytest.raises(ValueError, match="shape mismatch"):
        alloc([1.0, 2.0], [1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="spectral_efficiency_bps_hz"):
        alloc([-1.0], [1.0], [1.0])
    with pytest.raises(ValueError, match="remaining_bytes"):
        alloc([1.0], [float("nan")], [1.0])


@pytest.mark.parametrize("name", sorted(ALLOCATORS))
def test_all_uncovered_gives_equal_shares(name) -> None:
    np.testing.assert_allclose(ALLOCATORS[name]([0.0, 0.0, 0.0, 0.0], [1, 2, 3, 4], [0, 1, 2, 3]),
                               np.full(4, 0.25))


# ------------------------------------------------------------ per allocator
@settings(max_examples=25, deadline=None)
@given(state=flows)
def test_equal_is_one_over_n(state) -> None:
    se, rem, avg = (np.array(v) for v in state)
    np.testing.assert_allclose(equal(se, rem, avg), np.full(se.size, 1.0 / se.size))


@settings(max_examples=40, deadline=None)
@given(state=realistic_flows)
def test_min_time_equalises_completion_times(state) -> None:
    se, rem, avg = (np.array(v) for v in state)
    x = min_time(se, rem, avg)
    live = (se > 0) & (rem > 0)
    if not np.any(live):
        return
    t_s = 8.0 * rem[live] / (x[live] * BANDWIDTH_HZ * se[live])
    np.testing.assert_allclose(t_s, t_s[0], rtol=1e-9)
    # Common time equals the closed form 8 Σ(rem/SE) / B.
    expected_s = 8.0 * np.sum(rem[live] / se[live]) / BANDWIDTH_HZ
    np.testing.assert_allclose(t_s[0], expected_s, rtol=1e-9)


def test_min_time_hand_example() -> None:
    # rem/SE = 100/1, 100/4, 300/2 -> 100, 25, 150 ; sum 275
    x = min_time([1.0, 4.0, 2.0], [100.0, 100.0, 300.0], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(x, [100 / 275, 25 / 275, 150 / 275])


@settings(max_examples=25, deadline=None)
@given(state=flows)
def test_max_rate_gives_everything_to_best_link(state) -> None:
    se, rem, avg = (np.array(v) for v in state)
    x = max_rate(se, rem, avg)
    if np.any(se > 0):
        best = int(np.flatnonzero(se == se.max())[0])  # lowest index among ties
        expected = np.zeros(se.size)
        expected[best] = 1.0
        np.testing.assert_array_equal(x, expected)


def test_max_rate_tie_lowest_index() -> None:
    np.testing.assert_array_equal(max_rate([1.0, 3.0, 3.0], [1, 1, 1], [1, 1, 1]), [0, 1, 0])


def test_proportional_fair_metric_and_fresh_flows() -> None:
    # m = SE / avg = [2/1e6, 4/4e6, 1/1e6] = [2, 1, 1] e-6 -> [0.5, 0.25, 0.25]
    x = proportional_fair([2.0, 4.0, 1.0], [1, 1, 1], [1e6, 4e6, 1e6])
    np.testing.assert_allclose(x, [0.5, 0.25, 0.25])
    # Flows without history (avg 0) take the band, split by SE.
    x = proportional_fair([2.0, 4.0, 1.0, 0.0], [1, 1, 1, 1], [0.0, 1e6, 0.0, 0.0])
    np.testing.assert_allclose(x, [2 / 3, 0.0, 1 / 3, 0.0])
    # Equal history: shares proportional to SE.
    np.testing.assert_allclose(proportional_fair([1.0, 3.0], [1, 1], [5.0, 5.0]), [0.25, 0.75])


def test_proportional_fair_ewma_converges_to_equal_time_shares() -> None:
    # Static channel: with R̄ tracking the served rate, PF's fixed point is equal
    # shares, the maximiser of Σ log(rate) (the PF objective).
    se = np.array([0.5, 2.0, 6.0])
    avg = se * BANDWIDTH_HZ  # start far from equilibrium (as if alone)
    for _ in range(400):
        x = proportional_fair(se, np.ones(3), avg)
        avg = 0.9 * avg + 0.1 * x * BANDWIDTH_HZ * se
    np.testing.assert_allclose(x, np.full(3, 1 / 3), atol=1e-6)


# ------------------------------------------------------------ resource grid
@pytest.mark.parametrize(
    ("bandwidth_hz", "scs_hz", "n_rb"),
    [(20e6, 30e3, 51), (100e6, 30e3, 273), (20e6, 15e3, 106), (5e6, 15e3, 25),
     (40e6, 30e3, 106), (100e6, 60e3, 135), (10e6, 30e3, 24)],
)
def test_resource_grid_ts38101_table(bandwidth_hz, scs_hz, n_rb) -> None:
    assert ResourceGrid(bandwidth_hz, scs_hz).n_resource_blocks == n_rb


def test_resource_grid_fallback_and_errors() -> None:
    # 12 MHz @ 30 kHz is not in the table: floor(0.9 * 12e6 / 360e3) = 30
    assert ResourceGrid(12e6, 30e3).n_resource_blocks == 30
    assert ResourceGrid(20e6).subcarrier_spacing_hz == 30e3
    with pytest.raises(ValueError, match="bandwidth_hz"):
        ResourceGrid(-1.0)
    with pytest.raises(ValueError, match="no resource block"):
        ResourceGrid(100e3, 30e3)
    with pytest.raises(ValueError, match="subcarrier_spacing_hz"):
        ResourceGrid(20e6, 0.0)


fractions = st.lists(st.one_of(st.just(0.0), st.floats(min_value=1e-9, max_value=1.0)),
                     min_size=1, max_size=300).filter(lambda v: sum(v) > 0)


@settings(max_examples=40, deadline=None)
@given(raw=fractions, bw=st.sampled_from([(20e6, 30e3), (100e6, 30e3), (5e6, 15e3)]))
def test_largest_remainder_invariants(raw, bw) -> None:
    x = np.array(raw) / np.sum(raw)
    grid = ResourceGrid(*bw)
    n_rb = grid.n_resource_blocks
    blocks = grid.to_resource_blocks(x)
    assert np.issubdtype(blocks.dtype, np.integer)
    assert blocks.sum() == n_rb
    assert np.all(blocks >= 0)
    assert np.all(np.abs(blocks - x * n_rb) < 1.0)
    assert np.all(blocks[x == 0.0] == 0)
    eff = grid.effective_fractions(x)
    assert abs(eff.sum() - 1.0) < 1e-12
    np.testing.assert_array_equal(eff, blocks / n_rb)


def test_largest_remainder_hand_example() -> None:
    # quotas 10*[0.45, 0.35, 0.2] = 4.5, 3.5, 2 -> floors 4,3,2 (9), one left -> first tie
    np.testing.assert_array_equal(largest_remainder([0.45, 0.35, 0.2], 10), [5, 3, 2])
    np.testing.assert_array_equal(largest_remainder([0.5, 0.5, 0.0], 3), [2, 1, 0])
    assert largest_remainder([], 51).shape == (0,)
    with pytest.raises(ValueError, match="fractions"):
        largest_remainder([0.0, 0.0], 5)
