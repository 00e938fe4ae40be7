"""OFDMA allocators and resource grid: invariants, closed forms, registry contract."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from radio.abstraction import LinkAbstraction
from radio.ofdma import (
    ALLOCATORS,
    ResourceGrid,
    equal,
    largest_remainder,
    max_rate,
    min_time,
    proportional_fair,
)
from radio.share import ShareLinks

SUM_TOL = 1e-12
BANDWIDTH_HZ = 20e6
N_RB = 51
SHANNON = LinkAbstraction("shannon", 0.0, 100.0, 0.0)  # plain log2(1 + SINR)


def linear(se, n_rb=N_RB) -> ShareLinks:
    """Fixed-PSD links with rate x * B * se (SINR 2^se - 1 on any share)."""
    se = np.asarray(se, dtype=float)
    return ShareLinks(BANDWIDTH_HZ, n_rb, np.exp2(se) - 1.0, np.full(se.size, np.inf), np.zeros(se.size), SHANNON)


abstractions = st.builds(
    LinkAbstraction,
    kind=st.sampled_from(["shannon", "cqi"]),
    snr_gap_db=st.floats(0.0, 6.0),
    max_spectral_efficiency_bps_hz=st.floats(1.0, 10.0),
    overhead=st.floats(0.0, 0.5),
    min_sinr_db=st.one_of(st.just(-np.inf), st.floats(-10.0, 10.0)),
)

flows = st.integers(1, 30).flatmap(
    lambda n: st.tuples(
        st.lists(st.one_of(st.just(0.0), st.floats(0.0, 1e4), st.floats(0.0, 1e-300)), min_size=n, max_size=n),
        st.lists(st.one_of(st.just(np.inf), st.floats(1e-4, 10.0)), min_size=n, max_size=n),
        st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n),
        st.lists(st.integers(0, 10**8).map(float), min_size=n, max_size=n),
        st.lists(st.one_of(st.just(0.0), st.floats(min_value=1e3, max_value=1e9)), min_size=n, max_size=n),
        abstractions,
        st.sampled_from([1.0, 0.229]),
    )
)


def build(state):
    ceiling, xp, power, rem, avg, ab, tau = state
    return ShareLinks(BANDWIDTH_HZ, N_RB, ceiling, xp, power, ab, tau), np.array(rem), np.array(avg)


# -------------------------------------------------------- registry contract
@pytest.mark.parametrize("name", sorted(ALLOCATORS))
@settings(max_examples=30, deadline=None)
@given(state=flows)
def test_shares_nonnegative_and_sum_to_one(name, state) -> None:
    links, rem, avg = build(state)
    x = ALLOCATORS[name](links, rem, avg)
    assert x.shape == (links.n,) and x.dtype == np.float64
    assert np.all(np.isfinite(x)) and np.all(x >= 0.0)
    assert abs(x.sum() - 1.0) < SUM_TOL * max(1, links.n) * 10
    covered = links.full_share_rate_bps > 0
    if name != "equal" and np.any(covered):  # flows that cannot send never take band
        assert np.all(x[~covered] == 0.0)
    assert np.all(np.isfinite(links.rate_bps(x))) and np.all(links.rate_bps(x) >= 0)


@pytest.mark.parametrize("name", sorted(ALLOCATORS))
def test_contract_empty_single_pickle_and_errors(name) -> None:
    from cosim.checks import check_allocator  # the reusable plugin check holds for every built-in

    check_allocator(ALLOCATORS[name], channel_blind=name == "equal")
    alloc = ALLOCATORS[name]
    assert alloc(linear([]), np.zeros(0), np.zeros(0)).shape == (0,)
    np.testing.assert_array_equal(alloc(linear([2.0]), [100.0], [1e6]), [1.0])
    assert pickle.loads(pickle.dumps(alloc)) is alloc
    args = (linear([1.0, 2.0]), [10.0, 20.0], [1.0, 1.0])
    np.testing.assert_array_equal(alloc(*args), alloc(*args))  # deterministic
    with pytest.raises(ValueError, match="shape mismatch"):
        alloc(linear([1.0, 2.0]), [1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="remaining_bytes"):
        alloc(linear([1.0]), [float("nan")], [1.0])
    with pytest.raises(ValueError, match="average_rate_bps"):
        alloc(linear([1.0]), [1.0], [-1.0])
    with pytest.raises(TypeError, match="ShareLinks"):
        alloc([1.0], [1.0], [1.0])


@pytest.mark.parametrize("name", sorted(ALLOCATORS))
def test_all_uncovered_gives_equal_shares(name) -> None:
    np.testing.assert_allclose(ALLOCATORS[name](linear([0.0] * 4), [1, 2, 3, 4], [0, 1, 2, 3]), np.full(4, 0.25))


# ------------------------------------------------------------ per allocator
@settings(max_examples=25, deadline=None)
@given(state=flows)
def test_equal_is_one_over_n(state) -> None:
    links, rem, avg = build(state)
    np.testing.assert_allclose(equal(links, rem, avg), np.full(links.n, 1.0 / links.n))


@settings(max_examples=60, deadline=None)
@given(state=flows)
@example(state=([0.0, 0.005, 1.0], [np.inf, 0.25, np.inf], [0.0, 0.0, 0.0], [0.0, 1.0, 16.0], [0.0, 0.0, 0.0],
                LinkAbstraction("shannon", 0.0, 1.0, 0.0), 1.0))  # a weak power-limited link near W's branch point
@example(state=([0.0, 1.0, 1.192092896e-07], [np.inf, np.inf, 0.25], [0.0, 0.0, 0.0], [0.0, 1.0, 1.0], [0.0, 0.0, 0.0],
                LinkAbstraction("shannon", 0.0, 1.0, 0.0), 1.0))  # a rate flat in the share (-69 dB, power limited)
def test_min_time_equalises_completion_times_with_concave_rates(state) -> None:
    links, rem, avg = build(state)
    x = min_time(links, rem, avg)
    live = (links.full_share_rate_bps > 0) & (rem > 0)
    if not np.any(live):
        return
    t_s = 8.0 * rem[live] / links.rate_bps(x)[live]
    if links.abstraction.kind == "shannon":  # cqi rates have plateaus: equal only up to them
        np.testing.assert_allclose(t_s, t_s.max(), rtol=1e-6)
    # Nobody finishes later than under equal shares (min_time minimises the makespan).
    t_equal = 8.0 * rem[live] / links.rate_bps(np.full(links.n, 1.0 / links.n))[live]
    assert t_s.max() <= t_equal.max() * (1 + 1e-9)


def test_min_time_linear_rates_hand_example() -> None:
    # rem/SE = 100/1, 100/4, 300/2 -> 100, 25, 150 ; sum 275 (rate linear in the share)
    x = min_time(linear([1.0, 4.0, 2.0]), [100.0, 100.0, 300.0], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(x, [100 / 275, 25 / 275, 150 / 275], rtol=1e-12)


def test_min_time_power_limited_hand_example() -> None:
    # Two power-limited UEs, x̂ -> 0 so SINR = a/x exactly (a = c * x̂): a1 = 1, a2 = 4.
    # Equal finish T with rates x log2(1 + a/x) * B needs bisection; check against a brute force.
    links = ShareLinks(1e6, 50, [1e6, 4e6], [1e-6, 1e-6], [0.2, 0.2], SHANNON)
    rem = np.array([50_000.0, 50_000.0])
    x = min_time(links, rem, np.zeros(2))
    grid = np.linspace(1e-4, 1 - 1e-4, 200_001)
    t1 = 8 * rem[0] / (grid * 1e6 * np.log2(1 + 1.0 / grid))
    t2 = 8 * rem[1] / ((1 - grid) * 1e6 * np.log2(1 + 4.0 / (1 - grid)))
    best = grid[np.argmin(np.maximum(t1, t2))]
    assert x[0] == pytest.approx(best, abs=1e-4)
    assert x[0] > 0.5  # the weaker UE needs more band to finish with the other


@settings(max_examples=25, deadline=None)
@given(se=st.lists(st.one_of(st.just(0.0), st.floats(0.01, 10.0)), min_size=1, max_size=20))
def test_max_rate_linear_rates_everything_to_best_link(se) -> None:
    se = np.array(se)
    x = max_rate(linear(se), np.ones(se.size), np.ones(se.size))
    if np.any(se > 0):
        expected = np.zeros(se.size)
        expected[int(np.argmax(np.exp2(se) - 1.0))] = 1.0  # best SINR, lowest index among ties
        np.testing.assert_array_equal(x, expected)


def test_max_rate_tie_lowest_index() -> None:
    np.testing.assert_array_equal(max_rate(linear([1.0, 3.0, 3.0]), [1, 1, 1], [1, 1, 1]), [0, 1, 0])


@settings(max_examples=25, deadline=None)
@given(a=st.lists(st.floats(0.01, 100.0), min_size=2, max_size=2))
def test_max_rate_water_fills_power_limited_links(a) -> None:
    # Two power-limited UEs (SINR a_i / x): the greedy RB rule equals brute force on the grid.
    links = ShareLinks(1e6, 20, np.array(a) * 1e6, [1e-6, 1e-6], [0.2, 0.2], SHANNON)
    x = max_rate(links, [1.0, 1.0], [0.0, 0.0])
    k = np.arange(21) / 20
    sums = [links.rate_bps(np.array([ki, 1 - ki])).sum() for ki in k]
    assert links.rate_bps(x).sum() == pytest.approx(max(sums), rel=1e-12)
    assert 0.0 < x[0] < 1.0 or max(a) / min(a) > 50  # comparable UEs share


def test_proportional_fair_metric_hand_example() -> None:
    # m = r(1)/avg = [2, 4, 1] * B / [1e6, 4e6, 1e6] -> [2, 1, 1] -> [0.5, 0.25, 0.25]
    x = proportional_fair(linear([2.0, 4.0, 1.0]), [1, 1, 1], [1e6, 4e6, 1e6])
    np.testing.assert_allclose(x, [0.5, 0.25, 0.25])
    # Equal averages: shares proportional to the full-band rate.
    np.testing.assert_allclose(proportional_fair(linear([1.0, 3.0]), [1, 1], [5.0, 5.0]), [0.25, 0.75])
    # A zero average is infinitely hungry: such flows share the band by r(1).
    np.testing.assert_allclose(proportional_fair(linear([2.0, 4.0, 1.0, 0.0]), [1] * 4, [0.0, 1e6, 0.0, 0.0]),
                               [2 / 3, 0.0, 1 / 3, 0.0])


def test_proportional_fair_ewma_converges_to_equal_time_shares() -> None:
    # Static channel, rate-linear flows: PF's fixed point is equal shares, the maximiser of
    # Σ log(rate) (the PF objective).
    links = linear([0.5, 2.0, 6.0])
    full = links.full_share_rate_bps
    avg = full.copy()  # start far from equilibrium (as if alone)
    for _ in range(400):
        x = proportional_fair(links, np.ones(3), avg)
        avg = 0.9 * avg + 0.1 * links.rate_bps(x)
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
