"""TR 38.901 antenna pattern (Table 7.3-1), LCS rotation (eq. 7.1-7/7.1-8) and panel array factor.

Expected values are re-derived by hand from the published formulas.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from radio.antenna import (
    ELEMENT_MAX_GAIN_DBI,
    SECTOR_BORESIGHTS_DEG,
    direction_deg,
    element_gain_dbi,
    gcs_to_lcs_deg,
    panel_gain_dbi,
)


def test_table_7_3_1_constants():
    assert ELEMENT_MAX_GAIN_DBI == 8.0
    assert SECTOR_BORESIGHTS_DEG == (30.0, 150.0, 270.0)


@pytest.mark.parametrize(
    "theta, phi, expected",
    [
        (90.0, 0.0, 8.0),  # boresight: G_E,max
        (90.0, 32.5, 8.0 - 3.0),  # half the 3 dB beamwidth off in azimuth: 12·(32.5/65)² = 3 dB
        (90.0 + 32.5, 0.0, 8.0 - 3.0),  # same in elevation
        (90.0, 65.0, 8.0 - 12.0),  # 12·1² = 12 dB
        (90.0, 180.0, 8.0 - 30.0),  # behind: A_max
        (0.0, 0.0, 8.0 - 12.0 * (90.0 / 65.0) ** 2),  # zenith: 23.0 dB < SLA_V, not clipped
        (120.0, 40.0, 8.0 - (12 * (30 / 65) ** 2 + 12 * (40 / 65) ** 2)),  # A_V + A_H summed
        (170.0, 100.0, 8.0 - 30.0),  # sum exceeds A_max: clipped
    ],
)
def test_element_pattern_by_hand(theta, phi, expected):
    assert float(element_gain_dbi(theta, phi)) == pytest.approx(expected, abs=1e-9)


def test_element_pattern_wraps_azimuth_and_broadcasts():
    g = element_gain_dbi(np.array([[90.0], [100.0]]), np.array([10.0, 370.0, -350.0]))
    assert g.shape == (2, 3)
    assert np.allclose(g[:, 0], g[:, 1]) and np.allclose(g[:, 0], g[:, 2])
    assert np.all(g <= 8.0) and np.all(g >= 8.0 - 30.0)


def test_lcs_rotation_downtilt_and_bearing():
    # Boresight of an antenna with bearing 30° and 12° downtilt, seen in the GCS as
    # zenith 102°, azimuth 30°, is the LCS boresight (90°, 0°).
    th, ph = gcs_to_lcs_deg(102.0, 30.0, 30.0, 12.0)
    assert float(th) == pytest.approx(90.0, abs=1e-9) and float(ph) == pytest.approx(0.0, abs=1e-9)
    # The horizon in the boresight direction appears 12° above boresight: θ' = 78°.
    th, ph = gcs_to_lcs_deg(90.0, 30.0, 30.0, 12.0)
    assert float(th) == pytest.approx(78.0, abs=1e-9)
    # Without tilt the rotation is a pure azimuth shift.
    th, ph = gcs_to_lcs_deg(95.0, 200.0, 150.0, 0.0)
    assert float(th) == pytest.approx(95.0) and float(ph) == pytest.approx(50.0)
    # eq. (7.1-7) at an arbitrary point, by hand: θ=80°, φ−α=40°, β=10°.
    t, d, b = map(math.radians, (80.0, 40.0, 10.0))
    want_th = math.degrees(math.acos(math.cos(b) * math.cos(t) + math.sin(b) * math.cos(d) * math.sin(t)))
    want_ph = math.degrees(math.atan2(math.sin(t) * math.sin(d), math.cos(b) * math.sin(t) * math.cos(d) - math.sin(b) * math.cos(t)))
    th, ph = gcs_to_lcs_deg(80.0, 70.0, 30.0, 10.0)
    assert float(th) == pytest.approx(want_th) and float(ph) == pytest.approx(want_ph)


def test_panel_peak_gain_is_element_plus_10log10_m_at_the_electrical_tilt():
    g = panel_gain_dbi(102.0, 0.0, n_vertical=10, spacing_wavelengths=0.5, electrical_tilt_deg=102.0)
    expected = 8.0 - 12.0 * (12.0 / 65.0) ** 2 + 10.0  # element at θ'=102°, plus 10·log10(10)
    assert float(g) == pytest.approx(expected, abs=1e-9)


def test_panel_array_factor_by_hand():
    # M = 2, d = 0.5 λ, no tilt: AF = |1 + e^{jπ cos θ}|² / 2 = 1 + cos(π cos θ).
    for theta in (60.0, 90.0, 120.0, 150.0):
        af = 1.0 + math.cos(math.pi * math.cos(math.radians(theta)))
        want = float(element_gain_dbi(theta, 0.0)) + 10.0 * math.log10(af)
        assert float(panel_gain_dbi(theta, 0.0, 2, 0.5, 90.0)) == pytest.approx(want, abs=1e-9)
    # First null of a 10-element, 0.5 λ column tilted to 102°: ψ = 2π/10 → cos θ = cos 102° + 0.2.
    null_theta = math.degrees(math.acos(math.cos(math.radians(102.0)) + 0.2))
    assert float(panel_gain_dbi(null_theta, 0.0, 10, 0.5, 102.0)) < -40.0


def test_panel_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n_vertical"):
        panel_gain_dbi(90.0, 0.0, n_vertical=0)
    with pytest.raises(ValueError, match="spacing_wavelengths"):
        panel_gain_dbi(90.0, 0.0, n_vertical=2, spacing_wavelengths=0.0)
    with pytest.raises(ValueError, match="electrical_tilt_deg"):
        panel_gain_dbi(90.0, 0.0, n_vertical=2, electrical_tilt_deg=200.0)


def test_direction_from_bs_to_ut():
    zen, azi = direction_deg(100.0, 100.0, 25.0, 1.5)
    assert float(azi) == pytest.approx(45.0)
    assert float(zen) == pytest.approx(90.0 + math.degrees(math.atan2(23.5, math.hypot(100.0, 100.0))))
