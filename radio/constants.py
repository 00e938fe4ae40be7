"""Physical constants and decibel/watt conversion helpers shared by all radio models.

Every radio module takes its physical constants from here (never retyped). The
conversion helpers are vectorised: they accept scalars or numpy arrays of any shape
and return ``numpy.ndarray`` (0-d for scalar input) of dtype float64.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "SPEED_OF_LIGHT_M_S",
    "THERMAL_NOISE_DBM_PER_HZ",
    "BOLTZMANN_J_PER_K",
    "db_to_linear",
    "linear_to_db",
    "dbm_to_w",
    "w_to_dbm",
]

SPEED_OF_LIGHT_M_S: float = 299_792_458.0
"""Speed of light in vacuum [m/s] (exact, SI definition)."""

THERMAL_NOISE_DBM_PER_HZ: float = -174.0
"""Thermal noise power spectral density k·T0 at T0 = 290 K [dBm/Hz], rounded as in
3GPP link budgets (exact value -173.98 dBm/Hz)."""

BOLTZMANN_J_PER_K: float = 1.380_649e-23
"""Boltzmann constant [J/K] (exact, SI 2019 definition)."""


def db_to_linear(x_db: ArrayLike) -> NDArray[np.float64]:
    """Convert a power ratio from decibels to linear scale.

    Args:
        x_db: power ratio [dB], any shape.

    Returns:
        ``10 ** (x_db / 10)`` [linear], same shape as ``x_db``.
    """
    return np.power(10.0, np.asarray(x_db, dtype=np.float64) / 10.0)


def linear_to_db(x: ArrayLike) -> NDArray[np.float64]:
    """Convert a linear power ratio to decibels.

    Args:
        x: power ratio [linear, >= 0], any shape. Zero maps to ``-inf``.

    Returns:
        ``10 * log10(x)`` [dB], same shape as ``x``.
    """
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(np.asarray(x, dtype=np.float64))


def dbm_to_w(x_dbm: ArrayLike) -> NDArray[np.float64]:
    """Convert power from dBm to watts.

    Args:
        x_dbm: power [dBm], any shape.

    Returns:
        power [W], same shape as ``x_dbm`` (0 dBm = 1 mW).
    """
    return np.power(10.0, (np.asarray(x_dbm, dtype=np.float64) - 30.0) / 10.0)


def w_to_dbm(x_w: ArrayLike) -> NDArray[np.float64]:
    """Convert power from watts to dBm.

    Args:
        x_w: power [W, >= 0], any shape. Zero maps to ``-inf``.

    Returns:
        power [dBm], same shape as ``x_w`` (1 W = 30 dBm).
    """
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(np.asarray(x_w, dtype=np.float64)) + 30.0
