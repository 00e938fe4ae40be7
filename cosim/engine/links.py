"""Link budget of every (cell, device) pair: power control, interference, link abstraction.

`LinkBudget` turns the world's channel (path loss, shadowing, fading) into the
:class:`radio.share.ShareLinks` a cell's scheduler needs, vectorised over (cells,
devices):

- coupling gain g = G_BS + G_UE − PL − S + fading [dB -> linear] (antenna gains per cell
  and for the devices, 38.901 Table 7.3-1: BS element 8 dBi, UE 0 dBi by default);
- uplink: fractional power control (:func:`radio.power_control.pusch_power_dbm`) with
  the cell's P_O and α on the large-scale coupling loss (no fast fading: PL is an
  L3-filtered estimate), the device's P_CMAX, noise kT·NF_BS and the co-channel
  interference of the other cells' active uplink transmitters;
- downlink: the base station's fixed PSD P_BS/B, noise kT·NF_UE and the interference of
  the co-channel cells that have active downlink flows;
- the link abstraction of each direction (preset `nr`/`lte` plus overrides) and the
  cell's time share of each direction (FDD, or TDD with a slot pattern).

The interference state (which uplink transmitters radiate how much, which cells
transmit on the downlink) is reported by the schedulers after every reallocation
(`report_uplink`, `report_downlink`) and read at the next one.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from radio.abstraction import PRESETS, LinkAbstraction
from radio.constants import THERMAL_NOISE_DBM_PER_HZ, db_to_linear, dbm_to_w
from radio.duplex import time_fractions
from radio.interference import band_overlap_hz, downlink_interference_psd, uplink_interference_psd
from radio.ofdma import ResourceGrid
from radio.power_control import numerology
from radio.share import ShareLinks

def link_abstractions(radio) -> tuple[LinkAbstraction, LinkAbstraction, float]:
    """(uplink, downlink, access latency [s]) from the scenario's `radio` section."""
    preset = PRESETS[radio.preset]
    out = []
    for base, overhead in ((preset.uplink, radio.overhead_ul), (preset.downlink, radio.overhead_dl)):
        changes = {"kind": radio.abstraction}
        for field, value in (("snr_gap_db", radio.snr_gap_db), ("overhead", overhead),
                             ("max_spectral_efficiency_bps_hz", radio.max_spectral_efficiency_bps_hz),
                             ("min_sinr_db", radio.min_sinr_db), ("headroom_aware", radio.power_headroom_aware)):
            if value is not None:
                changes[field] = value
        out.append(dataclasses.replace(base, **changes))
    latency = preset.access_latency_s if radio.access_latency_s is None else radio.access_latency_s
    return out[0], out[1], float(latency)


class LinkBudget:
    """Per-cell radio parameters and the interference state; builds `ShareLinks`."""

    def __init__(self, scenario, p_cmax_w: np.ndarray) -> None:
        cells, devices, radio = scenario.cells, scenario.devices, scenario.radio
        self.n_cells = len(cells)
        self.n_devices = int(devices.count)
        arr = lambda attr: np.array([getattr(c, attr) for c in cells], dtype=float)  # noqa: E731
        self.ul_bandwidth_hz = arr("uplink_bandwidth_hz")
        self.dl_bandwidth_hz = arr("downlink_bandwidth_hz")
        self.bs_power_w = dbm_to_w(arr("tx_power_dbm"))
        self.bs_gain_db = arr("antenna_gain_dbi")
        self.ue_gain_db = float(devices.antenna_gain_dbi)
        self.p0_dbm = arr("p0_dbm")
        self.alpha = arr("alpha")
        self.mu = np.array([numerology(c.subcarrier_spacing_hz) for c in cells])
        self.ul_n_rb = np.array([ResourceGrid(c.uplink_bandwidth_hz, c.subcarrier_spacing_hz).n_resource_blocks
                                 for c in cells])
        self.dl_n_rb = np.array([ResourceGrid(c.downlink_bandwidth_hz, c.subcarrier_spacing_hz).n_resource_blocks
                                 for c in cells])
        fractions = np.array([time_fractions(c.duplex, c.tdd_pattern) for c in cells])
        self.ul_time_fraction, self.dl_time_fraction = fractions[:, 0], fractions[:, 1]
        self.bs_noise_psd = dbm_to_w(THERMAL_NOISE_DBM_PER_HZ + arr("noise_figure_db"))  # W/Hz
        self.ue_noise_psd = float(dbm_to_w(THERMAL_NOISE_DBM_PER_HZ + devices.noise_figure_db))
        self.p_cmax_w = np.asarray(p_cmax_w, dtype=float)
        self.ul_abstraction, self.dl_abstraction, self.access_latency_s = link_abstractions(radio)
        self.interference = bool(radio.interference)
        carrier = arr("carrier_hz")
        self.ul_overlap_hz = band_overlap_hz(carrier, self.ul_bandwidth_hz)
        self.dl_overlap_hz = band_overlap_hz(carrier, self.dl_bandwidth_hz)
        # Interference state, reported by the schedulers.
        self.ul_tx = {c: (np.zeros(0, dtype=np.int64), np.zeros(0)) for c in range(self.n_cells)}
        # Uplink interference PSD each cell's transmitters cause at every cell [W/Hz], (n_cells,)
        # per source cell; None: to recompute (its transmitters or the channel changed).
        self._ul_caused: list[np.ndarray | None] = [None] * self.n_cells
        self.dl_active = np.zeros(self.n_cells, dtype=bool)
        shape = (self.n_cells, self.n_devices)
        self.gain_ul = np.zeros(shape)
        self.gain_dl = np.zeros(shape)
        self.ul_target_psd = np.zeros(shape)
        self.full_power_share = np.ones(shape)

    # -- channel -----------------------------------------------------------------------
    def update(self, path_loss_db: np.ndarray, shadow_db: np.ndarray, fading_ul: np.ndarray,
               fading_dl: np.ndarray) -> None:
        """New channel: all arrays (n_cells, n_devices); fading as linear power gains."""
        self.gain_ul, self.gain_dl, self.full_power_share, self.ul_target_psd = self._budget(
            path_loss_db, shadow_db, fading_ul, fading_dl, self.p_cmax_w)
        self._ul_caused = [None] * self.n_cells

    def update_columns(self, devices: np.ndarray, path_loss_db: np.ndarray, shadow_db: np.ndarray,
                       fading_ul: np.ndarray, fading_dl: np.ndarray) -> None:
        """New channel of `devices` only (lazy world ticks): arrays (n_cells, len(devices))."""
        cols = self._budget(path_loss_db, shadow_db, fading_ul, fading_dl, self.p_cmax_w[devices])
        for full, part in zip((self.gain_ul, self.gain_dl, self.full_power_share, self.ul_target_psd), cols):
            full[:, devices] = part
        self._ul_caused = [None] * self.n_cells

    def _budget(self, path_loss_db, shadow_db, fading_ul, fading_dl, p_cmax_w):
        """(gain_ul, gain_dl, full_power_share, ul_target_psd) of the given links."""
        coupling_db = self.bs_gain_db[:, None] + self.ue_gain_db - path_loss_db - shadow_db
        large = db_to_linear(coupling_db)
        gain_ul = large * fading_ul
        gain_dl = large * fading_dl
        # Power per RB (TS 38.213 §7.1.1 with M_RB = 1) [W], on the large-scale coupling loss.
        p_rb_w = dbm_to_w(self.p0_dbm[:, None] + 10.0 * np.log10(2.0 ** self.mu[:, None])
                          + self.alpha[:, None] * (-coupling_db))
        n_rb = self.ul_n_rb[:, None]
        full_power_share = p_cmax_w[None, :] / (p_rb_w * n_rb)
        # Received PSD when the UE is on its power-control target (any share <= x̂) [W/Hz].
        ul_target_psd = p_rb_w * n_rb * gain_ul / self.ul_bandwidth_hz[:, None]
        return gain_ul, gain_dl, full_power_share, ul_target_psd

    # -- interference state ------------------------------------------------------------
    def report_uplink(self, cell: int, devices: np.ndarray, radiated_w: np.ndarray) -> None:
        """Cell `cell`'s uplink transmitters and the power each radiates now [W]."""
        self.ul_tx[cell] = (np.asarray(devices, dtype=np.int64), np.asarray(radiated_w, dtype=float))
        self._ul_caused[cell] = None

    def report_downlink(self, cell: int, active: bool) -> None:
        """Whether cell `cell` transmits on the downlink (has active flows)."""
        self.dl_active[cell] = bool(active)

    def uplink_interference_psd(self) -> np.ndarray:
        """Expected uplink interference PSD at every cell [W/Hz], shape (n_cells,)."""
        if not self.interference:
            return np.zeros(self.n_cells)
        # Linear in the transmitters: a sum over source cells, of which only those whose
        # transmitters changed since the last channel update are recomputed.
        for c, caused in enumerate(self._ul_caused):
            if caused is None:
                devices, power = self.ul_tx[c]
                on = power > 0
                self._ul_caused[c] = uplink_interference_psd(
                    self.gain_ul, self.ul_bandwidth_hz, self.ul_overlap_hz, devices[on],
                    np.full(int(on.sum()), c, dtype=np.int64), power[on])
        return np.sum(self._ul_caused, axis=0)

    def downlink_interference_psd(self, serving: np.ndarray, devices: np.ndarray) -> np.ndarray:
        """Expected downlink interference PSD at `devices` on cells `serving` [W/Hz]."""
        if not self.interference:
            return np.zeros(len(devices))
        return downlink_interference_psd(self.gain_dl, self.bs_power_w, self.dl_bandwidth_hz, self.dl_overlap_hz,
                                         self.dl_active, serving, devices)

    def _downlink_interference_on(self, cell: int, devices: np.ndarray) -> np.ndarray:
        """`downlink_interference_psd` of `devices` all served by `cell`, summed over the
        interfering cells only (a flow-count-sized vector per interferer, no (k, C) gather)."""
        i_psd = np.zeros(devices.size)
        if not self.interference:
            return i_psd
        b = self.dl_bandwidth_hz
        weight = self.dl_overlap_hz[cell] / b[cell] * (self.bs_power_w * self.dl_active / b)
        weight[cell] = 0.0  # own cell: orthogonal
        for other in np.flatnonzero(weight).tolist():
            i_psd = i_psd + weight[other] * self.gain_dl[other, devices]
        return i_psd

    # -- per-cell links ----------------------------------------------------------------
    def uplink_links(self, cell: int, devices: np.ndarray, interference_psd: float | None = None) -> ShareLinks:
        """Uplink `ShareLinks` of `devices` transmitting to `cell`."""
        i_psd = float(self.uplink_interference_psd()[cell]) if interference_psd is None else interference_psd
        ceiling = self.ul_target_psd[cell, devices] / (self.bs_noise_psd[cell] + i_psd)
        return ShareLinks(self.ul_bandwidth_hz[cell], int(self.ul_n_rb[cell]), ceiling,
                          self.full_power_share[cell, devices], self.p_cmax_w[devices], self.ul_abstraction,
                          float(self.ul_time_fraction[cell]))

    def downlink_links(self, cell: int, devices: np.ndarray) -> ShareLinks:
        """Downlink `ShareLinks` of `devices` served by `cell` (fixed PSD, device radiates 0)."""
        devices = np.asarray(devices, dtype=np.int64)
        i_psd = self._downlink_interference_on(cell, devices)
        ceiling = self.bs_power_w[cell] / self.dl_bandwidth_hz[cell] * self.gain_dl[cell, devices] / (
            self.ue_noise_psd + i_psd)
        return ShareLinks(self.dl_bandwidth_hz[cell], int(self.dl_n_rb[cell]), ceiling,
                          np.full(devices.size, np.inf), np.zeros(devices.size), self.dl_abstraction,
                          float(self.dl_time_fraction[cell]))

    def full_band_sinr(self, serving: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(uplink, downlink) SINR [linear] of every device alone on its serving cell's whole
        band (uplink at x = 1 with power control), with the current interference, shape (n_devices,)."""
        d = np.arange(self.n_devices)
        i_ul = self.uplink_interference_psd()[serving]
        ul = self.ul_target_psd[serving, d] / (self.bs_noise_psd[serving] + i_ul) * np.minimum(
            1.0, self.full_power_share[serving, d])
        i_dl = self.downlink_interference_psd(serving, d)
        dl = self.bs_power_w[serving] / self.dl_bandwidth_hz[serving] * self.gain_dl[serving, d] / (
            self.ue_noise_psd + i_dl)
        return ul, dl
