"""Base-station antenna patterns of 3GPP TR 38.901 §7.1.3 and §7.3, vectorised.

* :func:`element_gain_dbi` — the single-element radiation power pattern of TR 38.901
  Table 7.3-1 in the antenna's local coordinate system (LCS)::

      A_V(θ') = −min(12·((θ' − 90°)/θ_3dB)², SLA_V)        θ_3dB = 65°, SLA_V = 30 dB
      A_H(φ') = −min(12·(φ'/φ_3dB)², A_max)                φ_3dB = 65°, A_max = 30 dB
      A(θ', φ') = −min(−(A_V + A_H), A_max)
      G(θ', φ') = G_E,max + A(θ', φ')                      G_E,max = 8 dBi

  θ' is the zenith angle (90° = the element's horizon plane), φ' the azimuth from
  boresight, both in degrees.
* :func:`gcs_to_lcs_deg` — TR 38.901 eq. (7.1-7)/(7.1-8) with slant γ = 0: the
  angles seen by an antenna with bearing α and mechanical downtilt β (β > 0 tilts
  the boresight below the horizon) for a direction given in the global system.
* :func:`panel_gain_dbi` — the element pattern times the array factor of M vertical
  elements with spacing d_V (in wavelengths) fed with the electrical-tilt weights of
  TR 36.873 §7.1.1 (also the BS configuration of the TR 38.901 Table 7.8-1 calibration):
  w_m = exp(−j·2π·(m−1)·d_V·cos θ_etilt)/√M, so the gain peaks at
  G_E,max + 10·log10(M) in the direction θ' = θ_etilt.
* :func:`direction_deg` — zenith and azimuth [deg] of the line from a BS antenna to
  a UT in the global system.

All functions broadcast over numpy arrays of any shape. Angles are in degrees.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "ELEMENT_BEAMWIDTH_3DB_DEG",
    "ELEMENT_SLA_V_DB",
    "ELEMENT_A_MAX_DB",
    "ELEMENT_MAX_GAIN_DBI",
    "SECTOR_BORESIGHTS_DEG",
    "element_gain_dbi",
    "gcs_to_lcs_deg",
    "panel_gain_dbi",
    "direction_deg",
]

FloatArray = NDArray[np.float64]

ELEMENT_BEAMWIDTH_3DB_DEG: float = 65.0
"""Vertical and horizontal 3 dB beamwidth θ_3dB = φ_3dB of Table 7.3-1 [deg]."""
ELEMENT_SLA_V_DB: float = 30.0
"""Vertical side-lobe attenuation SLA_V of Table 7.3-1 [dB]."""
ELEMENT_A_MAX_DB: float = 30.0
"""Front-to-back ratio A_max of Table 7.3-1 [dB]."""
ELEMENT_MAX_GAIN_DBI: float = 8.0
"""Maximum directional gain of one element G_E,max of Table 7.3-1 [dBi]."""
SECTOR_BORESIGHTS_DEG: tuple[float, float, float] = (30.0, 150.0, 270.0)
"""Bearings of the three sectors of a site (TR 38.901 Table 7.8-1) [deg, from +x, counter-clockwise]."""


def element_gain_dbi(zenith_lcs_deg: ArrayLike, azimuth_lcs_deg: ArrayLike) -> FloatArray:
    """Power gain of one TR 38.901 Table 7.3-1 antenna element [dBi].

    Args:
        zenith_lcs_deg: zenith angle θ' in the element's LCS [deg], in [0, 180]
            (90 = horizon of the element), any shape.
        azimuth_lcs_deg: azimuth φ' from boresight [deg], any real value (wrapped
            into (−180, 180]), broadcastable.

    Returns:
        G_E,max + A(θ', φ') [dBi], broadcast shape; between −22 and 8 dBi.
    """
    theta = np.asarray(zenith_lcs_deg, dtype=np.float64)
    phi = _wrap_deg(np.asarray(azimuth_lcs_deg, dtype=np.float64))
    a_v = -np.minimum(12.0 * ((theta - 90.0) / ELEMENT_BEAMWIDTH_3DB_DEG) ** 2, ELEMENT_SLA_V_DB)
    a_h = -np.minimum(12.0 * (phi / ELEMENT_BEAMWIDTH_3DB_DEG) ** 2, ELEMENT_A_MAX_DB)
    return ELEMENT_MAX_GAIN_DBI - np.minimum(-(a_v + a_h), ELEMENT_A_MAX_DB)


def gcs_to_lcs_deg(
    zenith_deg: ArrayLike, azimuth_deg: ArrayLike, bearing_deg: ArrayLike, downtilt_deg: ArrayLike = 0.0
) -> tuple[FloatArray, FloatArray]:
    """Angles of a global direction in the LCS of a rotated antenna (slant γ = 0).

    TR 38.901 eq. (7.1-7) and (7.1-8) with γ = 0:
    θ' = arccos(cos β·cos θ + sin β·cos(φ − α)·sin θ),
    φ' = arg(cos β·sin θ·cos(φ − α) − sin β·cos θ + j·sin θ·sin(φ − α)).

    Args:
        zenith_deg: zenith angle θ of the direction in the global system [deg], any shape.
        azimuth_deg: azimuth φ of the direction [deg], broadcastable.
        bearing_deg: antenna bearing α (boresight azimuth) [deg], broadcastable.
        downtilt_deg: mechanical downtilt β [deg] (> 0 points below the horizon), broadcastable.

    Returns:
        ``(θ', φ')`` [deg], broadcast shape; θ' in [0, 180], φ' in (−180, 180].
    """
    th = np.radians(np.asarray(zenith_deg, dtype=np.float64))
    dphi = np.radians(np.asarray(azimuth_deg, dtype=np.float64) - np.asarray(bearing_deg, dtype=np.float64))
    b = np.radians(np.asarray(downtilt_deg, dtype=np.float64))
    cos_t = np.clip(np.cos(b) * np.cos(th) + np.sin(b) * np.cos(dphi) * np.sin(th), -1.0, 1.0)
    theta_l = np.degrees(np.arccos(cos_t))
    phi_l = np.degrees(np.arctan2(np.sin(th) * np.sin(dphi), np.cos(b) * np.sin(th) * np.cos(dphi) - np.sin(b) * np.cos(th)))
    return theta_l, phi_l


def panel_gain_dbi(
    zenith_lcs_deg: ArrayLike,
    azimuth_lcs_deg: ArrayLike,
    n_vertical: int = 1,
    spacing_wavelengths: float = 0.5,
    electrical_tilt_deg: float = 90.0,
) -> FloatArray:
    """Gain of a vertical column of M Table 7.3-1 elements with electrical tilt [dBi].

    G = G_E(θ', φ') + 10·log10 |Σ_m w_m·exp(j·2π·(m−1)·d_V·cos θ')|² with the
    weights w_m = exp(−j·2π·(m−1)·d_V·cos θ_etilt)/√M of TR 36.873 §7.1.1.

    Args:
        zenith_lcs_deg: zenith angle θ' in the panel's LCS [deg], any shape.
        azimuth_lcs_deg: azimuth φ' from boresight [deg], broadcastable.
        n_vertical: number of vertical elements M >= 1 (1 = the bare element).
        spacing_wavelengths: element spacing d_V [wavelengths], > 0.
        electrical_tilt_deg: θ_etilt [deg] in [0, 180]; 90 = no tilt, 102 = the
            12° downtilt of the TR 38.901 UMa/UMi calibration.

    Returns:
        gain [dBi], broadcast shape; maximum G_E,max + 10·log10(M).
    """
    m = int(n_vertical)
    if m < 1 or m != n_vertical:
        raise ValueError(f"n_vertical={n_vertical!r} must be an integer >= 1")
    if not spacing_wavelengths > 0.0:
        raise ValueError(f"spacing_wavelengths={spacing_wavelengths!r} must be > 0")
    if not 0.0 <= electrical_tilt_deg <= 180.0:
        raise ValueError(f"electrical_tilt_deg={electrical_tilt_deg!r} outside allowed range [0, 180]")
    theta = np.asarray(zenith_lcs_deg, dtype=np.float64)
    element = element_gain_dbi(theta, azimuth_lcs_deg)
    if m == 1:
        return element
    psi = 2.0 * np.pi * spacing_wavelengths * (np.cos(np.radians(theta)) - np.cos(np.radians(electrical_tilt_deg)))
    # |Σ_{k<M} e^{jkψ}|² / M = sin²(Mψ/2) / (M·sin²(ψ/2)); summed directly for exactness at ψ = 0.
    k = np.arange(m, dtype=np.float64)
    af = np.abs(np.exp(1j * np.multiply.outer(psi, k)).sum(axis=-1)) ** 2 / m
    with np.errstate(divide="ignore"):
        return element + 10.0 * np.log10(af)


def direction_deg(
    dx_m: ArrayLike, dy_m: ArrayLike, h_bs_m: ArrayLike, h_ut_m: ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Zenith and azimuth of the line from a BS antenna to a UT, global system [deg].

    Args:
        dx_m: x_UT − x_BS [m], any shape.
        dy_m: y_UT − y_BS [m], broadcastable.
        h_bs_m: BS antenna height [m], broadcastable.
        h_ut_m: UT antenna height [m], broadcastable.

    Returns:
        ``(θ, φ)`` [deg]: θ = atan2(d_2D, h_UT − h_BS) measured from the zenith (> 90
        when the UT is below the BS), φ = atan2(dy, dx) in (−180, 180].
    """
    dx = np.asarray(dx_m, dtype=np.float64)
    dy = np.asarray(dy_m, dtype=np.float64)
    dz = np.asarray(h_ut_m, dtype=np.float64) - np.asarray(h_bs_m, dtype=np.float64)
    zenith = np.degrees(np.arctan2(np.hypot(dx, dy), dz))
    azimuth = np.degrees(np.arctan2(dy, dx))
    return zenith, azimuth


def _wrap_deg(x: FloatArray) -> FloatArray:
    """Wrap angles [deg] into (−180, 180]."""
    return 180.0 - np.mod(180.0 - x, 360.0)
