"""Co-channel interference between cells, expected over each victim's band.

Cells interfere in one direction when their bands in that direction overlap (same
carrier, overlapping bandwidth); the overlap in Hz is :func:`band_overlap_hz`. Own-cell
transmissions are orthogonal (OFDMA) and never interfere.

Interference is taken as its expectation over the victim's band, as a power spectral
density [W/Hz] added to the noise PSD:

- downlink: a base station with active downlink flows spreads P_BS over its band B'
  (fixed PSD P_BS/B'); a device on cell c receives from each other active cell c'
  ``g[c', d] · P_BS,c'/B'_c' · overlap(c, c')/B_c`` (the fraction of c's band it covers);
- uplink: an active uplink transmitter j of cell c' radiates P_j on a random share of
  B'; averaged over the RB assignment its PSD over B' is P_j/B', so cell c receives
  ``g[c, j] · P_j/B'_c' · overlap(c, c')/B_c``.

Frames of co-channel TDD cells are taken as aligned (same pattern): uplink interferes
with uplink and downlink with downlink; cross-link interference is not modelled.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["band_overlap_hz", "downlink_interference_psd", "uplink_interference_psd"]

FloatArray = NDArray[np.float64]


def band_overlap_hz(carrier_hz: ArrayLike, bandwidth_hz: ArrayLike) -> FloatArray:
    """Overlap [Hz] of every pair of bands centred on ``carrier_hz``, shape (n_cells, n_cells).

    Args:
        carrier_hz: centre frequency of each cell's band [Hz], shape (n_cells,).
        bandwidth_hz: width of each band [Hz], > 0, shape (n_cells,).

    Returns:
        max(0, min(hi_a, hi_b) − max(lo_a, lo_b)); the diagonal is each band's width.
    """
    f = np.asarray(carrier_hz, dtype=np.float64)
    b = np.asarray(bandwidth_hz, dtype=np.float64)
    lo, hi = f - b / 2.0, f + b / 2.0
    return np.maximum(0.0, np.minimum(hi[:, None], hi[None, :]) - np.maximum(lo[:, None], lo[None, :]))


def downlink_interference_psd(
    gain_linear: ArrayLike,
    bs_power_w: ArrayLike,
    bandwidth_hz: ArrayLike,
    overlap_hz: ArrayLike,
    active: ArrayLike,
    serving: ArrayLike,
    devices: ArrayLike,
) -> FloatArray:
    """Expected downlink interference PSD at devices on their cells' bands [W/Hz].

    Args:
        gain_linear: coupling gain cell -> device [linear], shape (n_cells, n_devices).
        bs_power_w: each base station's total transmit power [W], shape (n_cells,).
        bandwidth_hz: each cell's downlink band [Hz], shape (n_cells,).
        overlap_hz: downlink band overlap, shape (n_cells, n_cells) (:func:`band_overlap_hz`).
        active: whether each cell transmits (has active downlink flows), shape (n_cells,).
        serving: the cell whose band each listed device receives on, shape (k,).
        devices: device indices, shape (k,).

    Returns:
        interference PSD [W/Hz], shape (k,).
    """
    b = np.asarray(bandwidth_hz, dtype=np.float64)
    weight = np.asarray(overlap_hz, dtype=np.float64) / b[:, None] * (np.asarray(bs_power_w, dtype=np.float64)
                                                                       * np.asarray(active, dtype=np.float64) / b)[None, :]
    np.fill_diagonal(weight, 0.0)  # own cell: orthogonal
    g = np.asarray(gain_linear, dtype=np.float64)[:, np.asarray(devices, dtype=np.int64)]  # (C, k)
    return np.einsum("kc,ck->k", weight[np.asarray(serving, dtype=np.int64)], g)


def uplink_interference_psd(
    gain_linear: ArrayLike,
    bandwidth_hz: ArrayLike,
    overlap_hz: ArrayLike,
    tx_devices: ArrayLike,
    tx_cells: ArrayLike,
    tx_power_w: ArrayLike,
) -> FloatArray:
    """Expected uplink interference PSD at every cell's receiver [W/Hz], shape (n_cells,).

    Args:
        gain_linear: coupling gain cell <- device [linear], shape (n_cells, n_devices).
        bandwidth_hz: each cell's uplink band [Hz], shape (n_cells,).
        overlap_hz: uplink band overlap, shape (n_cells, n_cells).
        tx_devices: the active uplink transmitters, shape (m,).
        tx_cells: the cell each transmits to, shape (m,).
        tx_power_w: the power each radiates [W], shape (m,).
    """
    b = np.asarray(bandwidth_hz, dtype=np.float64)
    cells = np.asarray(tx_cells, dtype=np.int64)
    ov = np.asarray(overlap_hz, dtype=np.float64)[:, cells]  # (C, m)
    ov[cells, np.arange(cells.size)] = 0.0  # own cell: orthogonal
    psd = np.asarray(tx_power_w, dtype=np.float64) / b[cells]  # (m,)
    g = np.asarray(gain_linear, dtype=np.float64)[:, np.asarray(tx_devices, dtype=np.int64)]
    return (g * ov * psd[None, :]).sum(axis=1) / b
