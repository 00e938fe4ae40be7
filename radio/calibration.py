"""The 3GPP TR 38.901 §7.8.1 large-scale calibration drop, and its published reference.

:func:`large_scale_drop` places UTs in a 19-site × 3-sector UMa network with
wrap-around and returns, per UT, the coupling loss to its serving cell and the
downlink geometry — the two large-scale metrics 3GPP companies calibrated their
system-level simulators on. Set-up (TR 38.901 Table 7.8-1, Table 7.2-1):

* ISD 500 m, h_BS 25 m, sectors at 30°/150°/270°, wrap-around (:class:`radio.layout.HexLayout`);
* BS: a column of 10 Table 7.3-1 elements, 0.5 λ, electrical tilt 102° (12° down);
  UT: isotropic; BS power 44 dBm over 20 MHz at 6 GHz; UT noise figure 9 dB;
* 80 % of UTs indoor on floor n_fl of an N_fl-floor building (:func:`radio.layout.draw_ut_placement`),
  O2I loss of §7.4.3 with a share ``high_loss_fraction`` of high-loss buildings;
* TR 38.901 UMa path loss and LOS probability (the latter on the outdoor distance),
  log-normal shadowing σ 4/6 dB per site–UT link (shared by the site's sectors);
* minimum 2-D distance 35 m, serving cell = strongest received power (0 dB margin).

:data:`R1_165974_UMA_6GHZ` holds the published reference: the median of the companies'
curves in 3GPP R1-165974 (summary of the large-scale calibration, TR 38.900 v14.0.0
parameters), UMa at 6 GHz, at 5 %, 50 % and 95 %, as tabulated in QuaDRiGa's
``tutorials/calib_3GPP_ref_data.m`` (variables ``gf38900a`` and ``cl38900a``).
Geometry there is the serving power over the sum of all other cells' powers (no noise).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from radio.channel import GudmundsonShadowing
from radio.layout import HexLayout, PanelAntenna, draw_ut_placement, geometry_sinr_db
from radio.link import noise_power_dbm
from radio.pathloss.o2i import INDOOR_LOSS_DB_PER_M, O2I_STD_HIGH_DB, O2I_STD_LOW_DB, wall_loss_db
from radio.pathloss.uma import UMa

__all__ = ["R1_165974_UMA_6GHZ", "large_scale_drop"]

R1_165974_UMA_6GHZ: dict[str, tuple[float, float, float]] = {
    "geometry_db": (-1.0, 8.6, 25.6),
    "coupling_loss_db": (-150.4, -120.3, -86.0),
}
"""3GPP R1-165974 UMa 6 GHz at (5 %, 50 %, 95 %): geometry [dB] and coupling loss [dB]."""


def large_scale_drop(
    rng: np.random.Generator,
    n_ut: int,
    carrier_hz: float = 6e9,
    high_loss_fraction: float = 0.5,
    tx_power_dbm: float = 44.0,
    bandwidth_hz: float = 20e6,
    ut_noise_figure_db: float = 9.0,
) -> dict[str, NDArray[np.float64]]:
    """One calibration drop; per-UT metrics, each shape (n_ut,).

    Args:
        rng: generator for every draw of the drop.
        n_ut: number of UTs, >= 1.
        carrier_hz: carrier frequency [Hz].
        high_loss_fraction: share of indoor UTs in high-loss buildings, in [0, 1].
        tx_power_dbm: BS transmit power [dBm].
        bandwidth_hz: band for the thermal noise [Hz].
        ut_noise_figure_db: UT noise figure [dB].

    Returns:
        ``coupling_loss_db`` (gains minus losses to the serving cell, negative [dB]),
        ``geometry_db`` (S / Σ I [dB]) and ``sinr_db`` (S / (Σ I + N) [dB]).
    """
    if not 0.0 <= high_loss_fraction <= 1.0:
        raise ValueError(f"high_loss_fraction={high_loss_fraction!r} outside allowed range [0, 1]")
    layout = HexLayout(isd_m=500.0, n_rings=2, h_bs_m=25.0, wraparound=True)
    antenna = PanelAntenna(n_vertical=10, spacing_wavelengths=0.5, electrical_tilt_deg=102.0)
    model = UMa(carrier_hz=carrier_hz, h_bs_m=25.0)
    ut_xy = layout.drop_uniform(rng, n_ut, min_distance_m=35.0)
    place = draw_ut_placement(rng, n_ut, indoor_fraction=0.8)
    disp = layout.displacement_m(ut_xy)
    d2d = np.hypot(disp[..., 0], disp[..., 1])  # (sites, UTs)
    d2d_out = np.maximum(d2d - place.d2d_in_m, 1.0)
    los = rng.uniform(size=d2d.shape) < model.los_probability(d2d_out, place.h_ut_m)
    loss = model.loss_db(d2d, place.h_ut_m, los)
    shadow = GudmundsonShadowing(model.shadow_std_db(los), model.decorrelation_distance_m(los), d2d.shape, rng).value_db
    high = rng.uniform(size=n_ut) < high_loss_fraction
    sigma_p = np.where(high, O2I_STD_HIGH_DB, O2I_STD_LOW_DB)
    o2i = np.where(place.indoor, wall_loss_db(carrier_hz, high) + INDOOR_LOSS_DB_PER_M * place.d2d_in_m
                   + sigma_p * rng.standard_normal(n_ut), 0.0)
    gain = layout.sector_gain_dbi(ut_xy, place.h_ut_m, antenna)  # (cells, UTs)
    coupling = gain - np.repeat(loss + shadow + o2i[None, :], len(layout.boresights_deg), axis=0)
    serving, geometry = geometry_sinr_db(tx_power_dbm + coupling, noise_dbm=-np.inf)
    _, sinr = geometry_sinr_db(tx_power_dbm + coupling, noise_dbm=float(noise_power_dbm(bandwidth_hz, ut_noise_figure_db)))
    return {"coupling_loss_db": coupling[serving, np.arange(n_ut)], "geometry_db": geometry, "sinr_db": sinr}
