"""Power control, share-dependent SINR and rate, link abstraction, presets: hand-derived values."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from radio.abstraction import NR_OVERHEAD_DL, NR_OVERHEAD_UL, PRESETS, LinkAbstraction
from radio.duplex import tdd_time_fractions, time_fractions
from radio.link import CQI_EFFICIENCY_BPS_HZ
from radio.power_control import numerology, pusch_power_dbm
from radio.share import ShareLinks

SHANNON = LinkAbstraction("shannon", 0.0, 100.0, 0.0)


# ------------------------------------------------------------------ TS 38.213 §7.1.1
def test_pusch_power_hand_values() -> None:
    # P0 = -85 dBm, alpha 0.8, PL 100 dB, mu 1, 10 RB: -85 + 10 log10(2*10) + 80 = 8.0103 dBm
    assert pusch_power_dbm(23.0, -85.0, 10, 0.8, 100.0, mu=1) == pytest.approx(-85 + 10 * math.log10(20) + 80)
    # PL 130 dB: -85 + 13.01 + 104 = 32 dBm > P_CMAX -> 23 dBm
    assert pusch_power_dbm(23.0, -85.0, 10, 0.8, 130.0, mu=1) == 23.0
    # alpha = 1 compensates the whole path loss
    assert pusch_power_dbm(23.0, -100.0, 1, 1.0, 90.0, mu=0) == pytest.approx(-10.0)
    with pytest.raises(ValueError, match="alpha"):
        pusch_power_dbm(23.0, -85.0, 1, 1.5, 90.0)
    with pytest.raises(ValueError, match="m_rb"):
        pusch_power_dbm(23.0, -85.0, 0, 0.8, 90.0)
    assert numerology(30e3) == 1 and numerology(15e3) == 0
    with pytest.raises(ValueError, match="subcarrier_spacing_hz"):
        numerology(20e3)


# ------------------------------------------------------------------ share-dependent SINR
def test_sinr_is_flat_below_full_power_share_and_falls_beyond() -> None:
    links = ShareLinks(20e6, 51, [100.0], [0.1], [0.2], SHANNON)
    np.testing.assert_allclose(links.sinr(np.array([0.05])), [100.0])
    np.testing.assert_allclose(links.sinr(np.array([0.4])), [25.0])  # 100 * 0.1 / 0.4
    np.testing.assert_allclose(links.radiated_power_w(np.array([0.05])), [0.1])  # on target: P_max x / x̂
    np.testing.assert_allclose(links.radiated_power_w(np.array([0.4])), [0.2])  # capped at P_max
    np.testing.assert_allclose(links.rate_bps(np.array([0.4])), [0.4 * 20e6 * math.log2(26.0)])


def test_overhead_gap_cap_and_min_sinr() -> None:
    ab = LinkAbstraction("shannon", 3.0, 5.0, 0.08, min_sinr_db=-5.0)
    gap = 10 ** 0.3
    np.testing.assert_allclose(ab.spectral_efficiency_bps_hz([1.0]), [0.92 * math.log2(1 + 1 / gap)])
    np.testing.assert_allclose(ab.spectral_efficiency_bps_hz([1e6]), [0.92 * 5.0])
    assert ab.spectral_efficiency_bps_hz([10 ** -0.51])[0] == 0.0  # -5.1 dB: nothing
    assert ab.spectral_efficiency_bps_hz([10 ** -0.49])[0] > 0.0


def test_cqi_abstraction_is_the_38214_table() -> None:
    ab = LinkAbstraction("cqi", 0.0, 7.4063, 0.0)
    thr = 2.0 ** CQI_EFFICIENCY_BPS_HZ - 1.0
    se = ab.spectral_efficiency_bps_hz(np.concatenate([[thr[0] * 0.99], thr, [1e9]]))
    np.testing.assert_allclose(se, np.concatenate([[0.0], CQI_EFFICIENCY_BPS_HZ, [7.4063]]))


def test_min_sinr_limits_how_far_a_power_limited_ue_spreads() -> None:
    ab = LinkAbstraction("shannon", 0.0, 100.0, 0.0, min_sinr_db=0.0)
    links = ShareLinks(1e6, 50, [10.0], [0.05], [0.2], ab)  # SINR = 10 * 0.05 / x: 1 at x = 0.5
    assert links.max_share[0] == pytest.approx(0.5)
    np.testing.assert_allclose(links.used_share(np.array([0.8])), [0.5])
    np.testing.assert_allclose(links.rate_bps(np.array([0.8])), [0.5 * 1e6 * 1.0])  # log2(1 + 1) = 1
    np.testing.assert_allclose(links.radiated_power_w(np.array([0.8])), [0.2])
    assert links.covered[0]
    dead = ShareLinks(1e6, 50, [0.5], [np.inf], [0.0], ab)
    assert not dead.covered[0] and dead.full_share_rate_bps[0] == 0.0


def test_flow_at_the_max_share_boundary_keeps_its_rate() -> None:
    # c = 5, x̂ = 0.01, minimum 0 dB: x_max = 0.01 * 5 / 1 = 0.05, where the SINR is
    # 5 * 0.01 / 0.05 = 1 (0 dB), exactly the minimum. In floats 0.01/0.05*5 = 0.9999999999999999,
    # and a flow given the whole band used to get rate 0 although it is covered.
    ab = LinkAbstraction("shannon", 0.0, 100.0, 0.0, min_sinr_db=0.0)
    links = ShareLinks(1e6, 50, [5.0], [0.01], [0.2], ab)
    assert links.max_share[0] == pytest.approx(0.05, rel=1e-15)
    assert links.sinr(links.max_share)[0] >= 1.0
    assert links.covered[0]
    # r(1) = x_max * B * log2(1 + 1) = 0.05 * 1e6 * 1 = 50,000 bit/s, at full power 0.2 W.
    np.testing.assert_allclose(links.rate_bps(np.array([1.0])), [50_000.0], rtol=1e-12)
    np.testing.assert_allclose(links.full_share_rate_bps, [50_000.0], rtol=1e-12)
    np.testing.assert_allclose(links.radiated_power_w(np.array([1.0])), [0.2])
    # Many power-limited links: every covered one keeps a positive rate on any share
    # beyond one RB, and its SINR on x_max clears the minimum (about 1 in 5 failed before).
    rng = np.random.default_rng(0)
    c, xp = rng.uniform(1.0, 10.0, 20_000), rng.uniform(0.01, 0.09, 20_000)
    many = ShareLinks(1e6, 50, c, xp, np.full(c.size, 0.2), ab)
    assert np.all(many.sinr(many.max_share) >= 1.0)
    assert np.all(many.rate_bps(np.ones(c.size))[many.covered] > 0.0)


def test_share_for_rate_near_the_lambert_w_branch_point() -> None:
    # A weak power-limited link: c = 0.005, x̂ = 0.25, 20 MHz, no minimum. Its rate tends to
    # B·c·x̂/ln 2 = 36,067 bit/s; r(1) = 20e6·log2(1 + 0.00125) = 36,044.6 bit/s. Asking for
    # 36,067 - 0.1% (q -> 1) used to return a share of 0.014 (whose rate is far lower):
    # Newton started at the peak of ln(1+y) - q·y and jumped off.
    ab = LinkAbstraction("shannon", 0.0, 1.0, 0.0)
    links = ShareLinks(20e6, 51, [0.005], [0.25], [0.0], ab)
    r_one = 20e6 * math.log2(1.0 + 0.00125)
    assert links.full_share_rate_bps[0] == pytest.approx(r_one, rel=1e-12)
    for target in (30_000.0, 36_000.0, 36_040.0, r_one * (1 - 1e-6)):
        x = links.share_for_rate(np.array([target]))[0]
        assert 0.0 < x <= 1.0 and links.rate_bps(np.array([x]))[0] == pytest.approx(target, rel=1e-9)
    for target in (r_one * (1 + 1e-6), 36_060.0, 36_067.0):
        assert links.share_for_rate(np.array([target]))[0] == np.inf


def _mixed_uplink_links() -> ShareLinks:
    """NR uplink links: full power reached early (x̂ small), late, never (inf), uncovered (c = 0)."""
    c = np.array([300.0, 5.0, 40.0, 0.0, 0.5, 1000.0])
    xp = np.array([0.01, 0.5, np.inf, 0.2, 0.03, 1e-4])
    return ShareLinks(20e6, 51, c, xp, np.full(6, 0.2), PRESETS["nr"].uplink, 0.75)


def test_rates_on_one_share_per_flow_equal_the_sinr_formula_bit_for_bit() -> None:
    # rate_bps on a (n,) share reuses SE(c) where the SINR is the ceiling (x <= x̂): the
    # same bits as evaluating SE on c · min(1, x̂/x) everywhere, as the (n, k) path does.
    links = _mixed_uplink_links()
    ab = links.abstraction
    for x in (np.full(6, 1.0 / 6), np.full(6, 1.0 / 51), np.ones(6), np.array([0.5, 0.0, 1e-3, 0.3, 0.02, 0.9])):
        u = links.used_share(x)
        hz = links.bandwidth_hz * links.time_fraction  # B·τ, multiplied in this order
        expected = u * hz * ab.spectral_efficiency_bps_hz(links.sinr(u))
        assert (u > links.full_power_share).any() and (u <= links.full_power_share).any()
        assert np.array_equal(links.rate_bps(x), expected)
        assert np.array_equal(links.rate_bps(x), links.rate_bps(x[:, None])[:, 0])


def test_take_keeps_the_quantities_already_computed_bit_for_bit() -> None:
    links = _mixed_uplink_links()
    links.full_share_rate_bps  # computes max_share, one_rb_carries and SE(c) on all flows
    for index in (np.array([4, 0, 2]), np.array([True, False, True, True, False, True])):
        sub = links.take(index)
        fresh = ShareLinks(links.bandwidth_hz, links.n_rb, links.sinr_ceiling[index], links.full_power_share[index],
                           links.max_power_w[index], links.abstraction, links.time_fraction)
        for name in ("max_share", "one_rb_carries", "full_share_rate_bps", "covered"):
            assert np.array_equal(getattr(sub, name), getattr(fresh, name)), name
        assert np.array_equal(sub.radiated_power_w(np.full(sub.n, 0.3)), fresh.radiated_power_w(np.full(sub.n, 0.3)))
    assert links.take(3).n == 1  # a scalar index still gives (1,) links


@pytest.mark.parametrize("kind", ["shannon", "cqi"])
def test_fixed_psd_links_take_the_short_cut_to_the_same_bits(kind) -> None:
    # All x̂ = inf (the downlink): x_max and one-RB coverage are read off c directly; the
    # same flows next to one power-controlled flow (the general path) give the same bits.
    ab = dataclasses.replace(PRESETS["nr"].downlink, kind=kind)
    s_min = ShareLinks(20e6, 51, [1.0], [np.inf], [0.0], ab)._min_sinr()
    c = np.array([0.0, s_min, np.nextafter(s_min, 0.0), 0.3 * s_min, 7.0, 2e3])
    fixed = ShareLinks(20e6, 51, c, np.full(6, np.inf), np.zeros(6), ab, 0.6)
    mixed = ShareLinks(20e6, 51, np.append(c, 5.0), np.append(np.full(6, np.inf), 0.1), np.append(np.zeros(6), 0.2),
                       ab, 0.6)
    assert fixed._fixed_psd and not mixed._fixed_psd
    for name in ("one_rb_carries", "max_share", "covered", "full_share_rate_bps"):
        assert np.array_equal(getattr(fixed, name), getattr(mixed, name)[:6]), name
    assert fixed.one_rb_carries.tolist() == [False, True, False, False, True, True]


def test_a_link_below_the_minimum_on_one_rb_carries_nothing() -> None:
    # c = 1.5, x̂ = 0.01, 50 RB, minimum 0 dB: on one RB (x = 0.02 > x̂) the SINR is
    # 1.5 * 0.01 / 0.02 = 0.75 < 1. The UE would reach the minimum only on x = 0.015, less
    # than one RB (PRBs are the smallest grant): out of coverage, no rate on any share.
    ab = LinkAbstraction("shannon", 0.0, 100.0, 0.0, min_sinr_db=0.0)
    links = ShareLinks(1e6, 50, [1.5, 2.5], [0.01, 0.01], [0.2, 0.2], ab)  # 2nd: 1.25 on one RB
    np.testing.assert_array_equal(links.one_rb_carries, [False, True])
    np.testing.assert_array_equal(links.covered, [False, True])
    assert links.max_share[0] == 0.0 and links.max_share[1] == pytest.approx(0.025)
    np.testing.assert_array_equal(links.rate_bps(np.array([[0.015, 0.02, 1.0]] * 2))[0], [0.0, 0.0, 0.0])
    assert links.share_for_rate(np.array([1.0, 1.0]))[0] == np.inf
    cqi = ShareLinks(1e6, 50, [1.5], [0.01], [0.2], LinkAbstraction("cqi", 0.0, 7.4, 0.0, min_sinr_db=0.0))
    assert not cqi.covered[0] and cqi.full_share_rate_bps[0] == 0.0 and cqi.share_for_rate([1.0])[0] == np.inf


def test_headroom_unaware_ue_spreads_its_power_over_the_whole_grant() -> None:
    # c = 10, x̂ = 0.05, minimum 0 dB: SINR(x) = 10 * min(1, 0.05 / x) reaches 1 at x = 0.5.
    aware = LinkAbstraction("shannon", 0.0, 100.0, 0.0, min_sinr_db=0.0)
    unaware = LinkAbstraction("shannon", 0.0, 100.0, 0.0, min_sinr_db=0.0, headroom_aware=False)
    x = np.array([[0.4, 0.5, 0.6, 1.0]])
    a = ShareLinks(1e6, 50, [10.0], [0.05], [0.2], aware)
    u = ShareLinks(1e6, 50, [10.0], [0.05], [0.2], unaware)
    r_04 = 0.4 * 1e6 * math.log2(1 + 10 * 0.05 / 0.4)  # SINR 1.25 on the whole 0.4
    np.testing.assert_allclose(a.rate_bps(x)[0], [r_04, 0.5e6, 0.5e6, 0.5e6])  # keeps to x = 0.5
    np.testing.assert_allclose(u.rate_bps(x)[0], [r_04, 0.5e6, 0.0, 0.0])  # SINR 0.83, 0.5 < 1: nothing
    np.testing.assert_allclose(u.radiated_power_w(x)[0], [0.2, 0.2, 0.0, 0.0])
    assert u.covered[0] and u.full_share_rate_bps[0] == 0.0  # covered on one RB, starved by a full grant
    assert u.share_for_rate(np.array([r_04]))[0] == pytest.approx(0.4)
    with pytest.raises(ValueError, match="headroom_aware"):
        LinkAbstraction("shannon", headroom_aware="yes")
    assert not PRESETS["lte"].uplink.headroom_aware and PRESETS["nr"].uplink.headroom_aware


abstractions = st.builds(LinkAbstraction, kind=st.sampled_from(["shannon", "cqi"]), snr_gap_db=st.floats(0, 6),
                         max_spectral_efficiency_bps_hz=st.floats(1, 8), overhead=st.floats(0, 0.4),
                         min_sinr_db=st.one_of(st.just(-np.inf), st.floats(-10, 10)))


@settings(max_examples=60, deadline=None)
@given(c=st.floats(1e-3, 1e4), xp=st.one_of(st.just(np.inf), st.floats(1e-3, 2.0)), ab=abstractions,
       x=st.floats(1e-3, 1.0))
def test_rate_monotone_and_inverse_is_smallest_share(c, xp, ab, x) -> None:
    links = ShareLinks(10e6, 52, [c], [xp], [0.2], ab)
    grid = np.linspace(1e-4, 1.0, 400)
    r = links.rate_bps(grid[None, :])[0]
    assert np.all(np.diff(r) >= -1e-6 * r.max())  # non-decreasing (upper envelope)
    target = links.rate_bps(np.array([x]))[0]
    share = links.share_for_rate(np.array([target]))[0]
    if target > 0:
        # Where the rate is nearly flat in x (weak power-limited links) the share is only
        # defined up to the round-off of the rate: then r(share) must still match r(x).
        assert share <= x * (1 + 1e-8) or links.rate_bps(np.array([min(share, 1.0)]))[0] == pytest.approx(target, rel=1e-9)
        assert links.rate_bps(np.array([min(share * (1 + 1e-9), 1.0)]))[0] >= target * (1 - 1e-8)
        # A little less share gives less rate (it is the smallest).
        less = links.rate_bps(np.array([share * (1 - 1e-6)]))[0]
        assert less < target * (1 + 1e-12) or less == pytest.approx(target, rel=1e-9)  # flat: ill-conditioned
    assert links.share_for_rate(np.array([links.full_share_rate_bps[0] * 1.01 + 1.0]))[0] == np.inf


@settings(max_examples=40, deadline=None)
@given(c=st.floats(1e-2, 1e4), xp=st.floats(1e-3, 1.0))
def test_shannon_rate_is_concave_in_the_share(c, xp) -> None:
    links = ShareLinks(10e6, 52, [c], [xp], [0.2], SHANNON)
    grid = np.linspace(0.0, 1.0, 201)
    r = links.rate_bps(grid[None, :])[0]
    assert np.all(np.diff(r, 2) <= 1e-6 * r.max())


# ------------------------------------------------------------------ presets and duplexing
def test_presets_documented_values() -> None:
    nr = PRESETS["nr"]
    assert nr.uplink.overhead == NR_OVERHEAD_UL == 0.08 and nr.downlink.overhead == NR_OVERHEAD_DL == 0.14
    assert nr.uplink.max_spectral_efficiency_bps_hz == pytest.approx(7.4063)
    # Minimum SINR = where CQI 1 (0.1523 bit/s/Hz) becomes usable with the 3 dB gap.
    assert nr.uplink.min_sinr_db == pytest.approx(3.0 + 10 * math.log10(2 ** 0.1523 - 1))
    # 38.306 peak rate, 20 MHz / 51 PRB at 30 kHz, 1 layer, DL: 1e-6 * 7.40625 * 51*12 / (1e-3/28) * 0.86
    peak = 7.40625 * 51 * 12 * 14 * 2 * 1e3 * (1 - 0.14)
    assert peak / 1e6 == pytest.approx(109.1, abs=0.1)
    assert PRESETS["lte"].access_latency_s > nr.access_latency_s


def test_tdd_fractions() -> None:
    ul, dl = tdd_time_fractions("DDDSU")
    assert ul == pytest.approx((1 + 2 / 14) / 5) and dl == pytest.approx((3 + 10 / 14) / 5)
    assert time_fractions("fdd") == (1.0, 1.0)
    with pytest.raises(ValueError, match="tdd_pattern"):
        tdd_time_fractions("DDDD")
    with pytest.raises(ValueError, match="duplex"):
        time_fractions("hdx")
