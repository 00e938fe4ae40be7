"""Hexagonal 3GPP layout, wrap-around, UT placement, O2I loss and geometry SINR."""

from __future__ import annotations

import math

import numpy as np
import pytest

from radio.layout import HexLayout, PanelAntenna, draw_ut_placement, geometry_sinr_db
from radio.pathloss.o2i import draw_indoor_distance_m, wall_loss_db

ISD = 500.0


def _ring_distances(d: np.ndarray) -> list[float]:
    return sorted(np.round(d, 6).tolist())


def test_19_sites_in_two_rings_with_neighbours_on_the_boresights():
    lay = HexLayout(ISD, n_rings=2)
    xy = lay.site_xy_m
    assert xy.shape == (19, 2) and lay.n_cells == 57
    r = np.hypot(xy[:, 0], xy[:, 1])
    want = [0.0] + [ISD] * 6 + [ISD * math.sqrt(3)] * 6 + [2 * ISD] * 6
    assert _ring_distances(r) == pytest.approx(sorted(want))
    # The first ring lies at bearings 30°, 90°, …, 330°: sector boresights (30°, 150°, 270°) point at neighbours.
    bearings = sorted(np.mod(np.degrees(np.arctan2(xy[1:7, 1], xy[1:7, 0])), 360.0))
    assert bearings == pytest.approx([30.0, 90.0, 150.0, 210.0, 270.0, 330.0])
    assert HexLayout(ISD, n_rings=1, wraparound=False).site_xy_m.shape == (7, 2)


def test_wraparound_offsets_are_rotations_of_3u_plus_2v():
    off = HexLayout(ISD).wraparound_offsets_m()
    assert off.shape == (7, 2) and np.allclose(off[0], 0.0)
    assert np.allclose(np.hypot(off[1:, 0], off[1:, 1]), math.sqrt(19.0) * ISD)
    ang = np.sort(np.mod(np.degrees(np.arctan2(off[1:, 1], off[1:, 0])) - np.degrees(np.arctan2(off[1, 1], off[1, 0])), 360))
    assert ang == pytest.approx([0.0, 60.0, 120.0, 180.0, 240.0, 300.0])


def test_wraparound_makes_every_site_see_two_full_rings():
    # A UT standing on any site sees, through the nearest images, the same ring structure
    # as a UT on the centre site: 1 at 0, 6 at ISD, 6 at √3·ISD, 6 at 2·ISD.
    lay = HexLayout(ISD)
    want = sorted([0.0] + [ISD] * 6 + [ISD * math.sqrt(3)] * 6 + [2 * ISD] * 6)
    disp = lay.displacement_m(lay.site_xy_m)  # (19 sites, 19 UTs, 2)
    for ut in range(19):
        assert _ring_distances(np.hypot(disp[:, ut, 0], disp[:, ut, 1])) == pytest.approx(want)
    # Without wrap-around an edge site sees far fewer close neighbours.
    plain = HexLayout(ISD, wraparound=False).displacement_m(lay.site_xy_m[-1:])
    assert np.sum(np.hypot(plain[:, 0, 0], plain[:, 0, 1]) < ISD * 1.01) < 7


def test_drop_is_inside_the_site_hexagons_and_respects_the_minimum_distance():
    lay = HexLayout(ISD)
    ut = lay.drop_uniform(np.random.default_rng(3), 4000, min_distance_m=35.0)
    d = np.hypot(*(ut[None, :, :] - lay.site_xy_m[:, None, :]).transpose(2, 0, 1))
    nearest = d.min(axis=0)
    assert np.all(nearest >= 35.0 - 1e-9) and np.all(nearest <= ISD / math.sqrt(3) + 1e-9)
    # Uniform over 19 equal hexagons: each site owns ~1/19 of the UTs.
    counts = np.bincount(d.argmin(axis=0), minlength=19)
    assert counts.min() > 4000 / 19 * 0.7
    with pytest.raises(ValueError, match="min_distance_m"):
        lay.drop_uniform(np.random.default_rng(0), 10, min_distance_m=ISD)


def test_sector_gain_peaks_on_the_boresight_of_its_own_sector():
    lay = HexLayout(ISD, n_rings=1, wraparound=False)
    ant = PanelAntenna(n_vertical=10, spacing_wavelengths=0.5, electrical_tilt_deg=102.0)
    # UT 100 m from site 0 along 150°: sector 1 (bearing 150°) sees it on boresight.
    ut = np.array([[100.0 * math.cos(math.radians(150.0)), 100.0 * math.sin(math.radians(150.0))]])
    g = lay.sector_gain_dbi(ut, 1.5, ant)
    assert g.shape == (21, 1)
    zen = 90.0 + math.degrees(math.atan2(23.5, 100.0))
    want = float(ant.gain_dbi(zen, 150.0, 150.0))
    assert g[1, 0] == pytest.approx(want)
    assert g[1, 0] > g[0, 0] + 10.0 and g[1, 0] > g[2, 0] + 10.0


def test_geometry_sinr_by_hand():
    # Two equal cells: S = I, no noise -> 0 dB; with N = S: S/(I+N) = 1/2 -> -3.01 dB.
    rx = np.array([[-80.0, -70.0], [-80.0, -90.0]])
    serving, sinr = geometry_sinr_db(rx, noise_dbm=-300.0)
    assert serving[1] == 0 and sinr[0] == pytest.approx(0.0, abs=1e-9) and sinr[1] == pytest.approx(20.0)
    _, sinr = geometry_sinr_db(rx[:, :1], noise_dbm=-80.0)
    assert sinr[0] == pytest.approx(-10 * math.log10(2.0))


def test_ut_placement_follows_table_7_2_1():
    p = draw_ut_placement(np.random.default_rng(5), 50_000, indoor_fraction=0.8)
    assert abs(p.indoor.mean() - 0.8) < 0.01
    assert np.all(p.h_ut_m[~p.indoor] == 1.5) and np.all(p.d2d_in_m[~p.indoor] == 0.0)
    floors = np.round((p.h_ut_m[p.indoor] - 1.5) / 3.0).astype(int) + 1
    assert floors.min() == 1 and floors.max() == 8
    # P(n_fl = 1) = E[1/N_fl] with N_fl uniform on 4..8.
    want = np.mean([1 / n for n in range(4, 9)])
    assert abs(np.mean(floors == 1) - want) < 0.01
    # P(n_fl = 8) = P(N_fl = 8)·1/8 = 1/40.
    assert abs(np.mean(floors == 8) - 1 / 40) < 0.005
    with pytest.raises(ValueError, match="indoor_fraction"):
        draw_ut_placement(np.random.default_rng(0), 3, indoor_fraction=1.5)


def test_o2i_wall_loss_by_hand_at_6_ghz():
    # low: L_glass = 3.2, L_concrete = 29 -> 5 − 10·log10(0.3·10^−0.32 + 0.7·10^−2.9) = 13.40 dB
    low = 5.0 - 10 * math.log10(0.3 * 10 ** (-3.2 / 10) + 0.7 * 10 ** (-29 / 10))
    # high: L_IIRglass = 24.8 -> 5 − 10·log10(0.7·10^−2.48 + 0.3·10^−2.9) = 30.69 dB
    high = 5.0 - 10 * math.log10(0.7 * 10 ** (-24.8 / 10) + 0.3 * 10 ** (-29 / 10))
    assert low == pytest.approx(13.40, abs=0.01) and high == pytest.approx(30.69, abs=0.01)
    assert wall_loss_db(6e9, [False, True]) == pytest.approx([low, high])


def test_indoor_distance_is_min_of_two_uniforms():
    d = draw_indoor_distance_m(np.random.default_rng(2), 200_000)
    assert d.min() >= 0.0 and d.max() <= 25.0
    assert d.mean() == pytest.approx(25.0 / 3.0, rel=0.01)  # E[min(U1, U2)] = a/3
