"""Outdoor-to-indoor (O2I) building penetration loss, TR 38.901 §7.4.3 (Tables 7.4.3-1/-2).

For a UT inside a building the path loss is
PL = PL_b + PL_tw + PL_in + N(0, σ_P²), where PL_b is the outdoor model evaluated at
the total distance, PL_tw the loss through the external wall and PL_in = 0.5·d_2D-in
the loss inside. Two building types (f in GHz):

* low-loss:  PL_tw = 5 − 10·log10(0.3·10^(−L_glass/10) + 0.7·10^(−L_concrete/10)), σ_P = 4.4 dB
* high-loss: PL_tw = 5 − 10·log10(0.7·10^(−L_IIRglass/10) + 0.3·10^(−L_concrete/10)), σ_P = 6.5 dB

with L_glass = 2 + 0.2·f, L_IIRglass = 23 + 0.3·f, L_concrete = 5 + 4·f (Table 7.4.3-1).
For UMa and UMi-Street Canyon, d_2D-in is the minimum of two independent U(0, 25 m)
draws (Table 7.4.3-2 note).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "O2I_STD_LOW_DB",
    "O2I_STD_HIGH_DB",
    "INDOOR_LOSS_DB_PER_M",
    "wall_loss_db",
    "draw_indoor_distance_m",
]

O2I_STD_LOW_DB: float = 4.4
"""σ_P of the low-loss model [dB] (Table 7.4.3-2)."""
O2I_STD_HIGH_DB: float = 6.5
"""σ_P of the high-loss model [dB] (Table 7.4.3-2)."""
INDOOR_LOSS_DB_PER_M: float = 0.5
"""PL_in per metre of indoor distance [dB/m] (Table 7.4.3-2)."""


def wall_loss_db(carrier_hz: float, high_loss: ArrayLike) -> NDArray[np.float64]:
    """External-wall loss PL_tw of TR 38.901 Table 7.4.3-2 [dB].

    Args:
        carrier_hz: carrier frequency [Hz], > 0.
        high_loss: True for the high-loss building model (IRR glass + concrete),
            False for low-loss (standard glass + concrete), any shape.

    Returns:
        PL_tw [dB], shape of ``high_loss``.
    """
    if not carrier_hz > 0.0:
        raise ValueError(f"carrier_hz={carrier_hz!r} must be > 0")
    f = carrier_hz / 1e9
    l_glass, l_irr, l_concrete = 2.0 + 0.2 * f, 23.0 + 0.3 * f, 5.0 + 4.0 * f
    low = 5.0 - 10.0 * np.log10(0.3 * 10 ** (-l_glass / 10) + 0.7 * 10 ** (-l_concrete / 10))
    high = 5.0 - 10.0 * np.log10(0.7 * 10 ** (-l_irr / 10) + 0.3 * 10 ** (-l_concrete / 10))
    return np.where(np.asarray(high_loss, dtype=bool), high, low).astype(np.float64)


def draw_indoor_distance_m(rng: np.random.Generator, size: int | tuple[int, ...], max_m: float = 25.0) -> NDArray[np.float64]:
    """Indoor distance d_2D-in = min(U(0, max), U(0, max)) [m] (UMa / UMi, Table 7.4.3-2).

    Args:
        rng: generator for the draws.
        size: output shape.
        max_m: upper end of each uniform draw [m], > 0 (25 m for UMa and UMi).

    Returns:
        d_2D-in [m], shape ``size``.
    """
    if not max_m > 0.0:
        raise ValueError(f"max_m={max_m!r} must be > 0")
    return np.minimum(rng.uniform(0.0, max_m, size), rng.uniform(0.0, max_m, size))
