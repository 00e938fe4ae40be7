"""Uplink (PUSCH) open-loop power control, 3GPP TS 38.213 §7.1.1.

A UE transmitting on M_RB resource blocks of numerology μ (SCS = 15·2^μ kHz) uses

    P_PUSCH = min(P_CMAX, P_O + 10·log10(2^μ · M_RB) + α·PL)        [dBm]

(the closed-loop term f and the MCS term Δ_TF are 0 here: an ideal closed loop has
converged, and Δ_TF is disabled by default, deltaMCS not configured). P_O is the
received power the cell asks for per 180 kHz [dBm], α in [0, 1] the fraction of the
path loss PL [dB] the UE compensates (fractional power control), P_CMAX the UE's
maximum output power (23 dBm for power class 3).

The UE thus puts a fixed power spectral density on *its own* resource blocks until it
reaches P_CMAX; from then on the PSD falls as the allocation grows. A flow's SINR is
therefore a function of its share of the band (see :mod:`radio.share`).

Defaults (:data:`DEFAULT_P0_DBM`, :data:`DEFAULT_ALPHA`): α = 0.8 with P_O = −85 dBm,
fractional power control in the range that Simonsson & Furuskär ("Uplink power control
in LTE — overview and performance", VTC 2008-Fall) and Castellanos et al.
("Performance of uplink fractional power control in UTRAN LTE", VTC 2008-Spring) found
to balance cell-edge and mean throughput (α ≈ 0.7–0.8).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["DEFAULT_ALPHA", "DEFAULT_P0_DBM", "pusch_power_dbm", "numerology"]

DEFAULT_P0_DBM: float = -85.0
"""P_O_PUSCH [dBm per 180 kHz], cosim's default."""
DEFAULT_ALPHA: float = 0.8
"""α, cosim's default fractional path-loss compensation."""


def numerology(subcarrier_spacing_hz: float) -> int:
    """μ with SCS = 15 kHz · 2^μ (TS 38.211 Table 4.2-1); raises for other spacings."""
    mu = float(np.log2(float(subcarrier_spacing_hz) / 15e3))
    if mu < 0 or abs(mu - round(mu)) > 1e-9:
        raise ValueError(f"subcarrier_spacing_hz={subcarrier_spacing_hz!r} out of range; allowed: 15e3 * 2**mu, mu >= 0")
    return int(round(mu))


def pusch_power_dbm(
    p_cmax_dbm: ArrayLike,
    p0_dbm: ArrayLike,
    m_rb: ArrayLike,
    alpha: ArrayLike,
    path_loss_db: ArrayLike,
    mu: int = 1,
) -> NDArray[np.float64]:
    """PUSCH transmit power of TS 38.213 §7.1.1 (f = Δ_TF = 0) [dBm].

    Args:
        p_cmax_dbm: UE maximum output power P_CMAX [dBm], broadcastable.
        p0_dbm: P_O_PUSCH [dBm per 180 kHz], broadcastable.
        m_rb: allocated resource blocks M_RB (> 0, fractional allowed for a fluid share).
        alpha: path-loss compensation α in [0, 1], broadcastable.
        path_loss_db: downlink path-loss estimate PL [dB] (large-scale, positive).
        mu: numerology μ (SCS = 15·2^μ kHz).

    Returns:
        min(P_CMAX, P_O + 10·log10(2^μ·M_RB) + α·PL) [dBm], broadcast shape.
    """
    m = np.asarray(m_rb, dtype=np.float64)
    a = np.asarray(alpha, dtype=np.float64)
    if np.any(~(m > 0.0)):
        raise ValueError(f"m_rb={m.tolist()} out of range; allowed: > 0")
    if np.any(~((a >= 0.0) & (a <= 1.0))):
        raise ValueError(f"alpha={a.tolist()} out of range; allowed: [0, 1]")
    open_loop = np.asarray(p0_dbm, dtype=np.float64) + 10.0 * np.log10(2.0 ** mu * m) + a * np.asarray(path_loss_db, dtype=np.float64)
    return np.minimum(np.asarray(p_cmax_dbm, dtype=np.float64), open_loop)
