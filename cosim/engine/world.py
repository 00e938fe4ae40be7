"""The simulated physical world: cells, device positions and the channel between them.

`World` owns the radio-layer objects (mobility, path loss per cell, correlated shadowing,
block fading) and turns them into the arrays the engine needs, all shaped
(n_cells, n_devices): large-scale loss, uplink and downlink spectral efficiency, and
each device's serving cell. `tick(dt_s)` advances mobility and redraws the channel; it
is called by the engine's world process every coherence interval.

Link-level conventions (see README, "Radio model"):
- fluid OFDMA: a flow given a fraction x of a cell's band B gets rate x * B * SE, where
  SE is computed with the transmitter's power spread over the whole band (fixed power
  spectral density). This is conservative for the uplink and exact for one device.
- LOS state is spatially consistent: each link keeps one uniform draw u and is LOS
  while u < P_LOS(d2D), so it only flips when the distance changes.
- a device is served by the cell with the strongest downlink received power without
  fast fading (RSRP-like); it hands over only when another cell is stronger by the
  hysteresis margin (an A3-style offset, `HANDOVER_HYSTERESIS_DB`), which keeps devices
  on a cell border from ping-ponging as shadowing drifts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from radio.channel import BlockFading, GudmundsonShadowing
from radio.link import snr_linear, spectral_efficiency_bps_hz
from radio.mobility import MOBILITY
from radio.pathloss import MODELS as PATHLOSS_MODELS

HANDOVER_HYSTERESIS_DB = 3.0


@dataclass(frozen=True)
class Handover:
    """A change of serving cell found at a world tick."""

    device: int
    from_cell: int
    to_cell: int


class World:
    """Cells, mobility and channel state for all devices, vectorised over (cells, devices)."""

    def __init__(
        self,
        scenario,
        device_tx_power_dbm: np.ndarray,
        rngs: dict[str, np.random.Generator],
    ) -> None:
        cells = scenario.cells
        devices = scenario.devices
        radio = scenario.radio
        self.n_cells = len(cells)
        self.n_devices = devices.count
        self.cell_names = [c.name for c in cells]
        self.cell_xy_m = np.array([[c.x_m, c.y_m] for c in cells], dtype=float)
        self.ul_bandwidth_hz = np.array([c.uplink_bandwidth_hz for c in cells], dtype=float)
        self.dl_bandwidth_hz = np.array([c.downlink_bandwidth_hz for c in cells], dtype=float)
        self._bs_tx_power_dbm = np.array([c.tx_power_dbm for c in cells], dtype=float)[:, None]
        self._bs_noise_figure_db = np.array([c.noise_figure_db for c in cells], dtype=float)[:, None]
        self._ue_noise_figure_db = float(devices.noise_figure_db)
        self._ue_tx_power_dbm = np.asarray(device_tx_power_dbm, dtype=float)[None, :]
        self._h_ut_m = float(devices.height_m)
        self._snr_gap_db = float(radio.snr_gap_db)
        self._max_se = float(radio.max_spectral_efficiency_bps_hz)
        self._pathloss = [
            PATHLOSS_MODELS[c.pathloss](carrier_hz=c.carrier_hz, h_bs_m=c.height_m, **dict(c.pathloss_params))
            for c in cells
        ]
        area = (float(scenario.area.width_m), float(scenario.area.height_m))
        mob = devices.mobility
        self.mobility = MOBILITY[mob.model](self.n_devices, area, rngs["mobility"], **dict(mob.params))
        shape = (self.n_cells, self.n_devices)
        self._los_draw = rngs["los"].uniform(size=shape)
        self.los = np.zeros(shape, dtype=bool)
        self._shadowing_enabled = bool(radio.shadowing)
        d2d = self.distances_m()
        self.los = self._los_state(d2d)
        std_db, decorr_m = self._shadow_params(d2d)
        self.shadowing = GudmundsonShadowing(std_db, decorr_m, shape, rngs["shadowing"])
        self.fading_ul = BlockFading(radio.fading, radio.rician_k_db, shape, rngs["fading"])
        self.fading_dl = BlockFading(radio.fading, radio.rician_k_db, shape, rngs["fading"])
        self.serving_cell = np.zeros(self.n_devices, dtype=np.int64)
        self._refresh(d2d)
        self.serving_cell = self._strongest_cell()

    # -- geometry and large-scale state ---------------------------------------------
    def distances_m(self) -> np.ndarray:
        """2-D distance from every cell to every device [m], shape (n_cells, n_devices)."""
        xy = self.mobility.positions_m
        return np.hypot(xy[:, 0] - self.cell_xy_m[:, 0:1], xy[:, 1] - self.cell_xy_m[:, 1:2])

    def _los_state(self, d2d_m: np.ndarray) -> np.ndarray:
        p_los = np.stack(
            [model.los_probability(d2d_m[c], self._h_ut_m) for c, model in enumerate(self._pathloss)]
        )
        return self._los_draw < p_los

    def _shadow_params(self, d2d_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        std = np.stack([np.broadcast_to(m.shadow_std_db(self.los[c]), d2d_m[c].shape) for c, m in enumerate(self._pathloss)])
        decorr = np.stack(
            [np.broadcast_to(m.decorrelation_distance_m(self.los[c]), d2d_m[c].shape) for c, m in enumerate(self._pathloss)]
        )
        if not self._shadowing_enabled:
            std = np.zeros_like(std)
        return std.astype(float), decorr.astype(float)

    def _refresh(self, d2d_m: np.ndarray) -> None:
        pl = np.stack(
            [model.loss_db(d2d_m[c], self._h_ut_m, self.los[c]) for c, model in enumerate(self._pathloss)]
        )
        self.large_scale_loss_db = pl + self.shadowing.value_db
        snr_ul = snr_linear(
            self._ue_tx_power_dbm, pl, self.shadowing.value_db, self.fading_ul.gain_linear,
            self.ul_bandwidth_hz[:, None], self._bs_noise_figure_db,
        )
        snr_dl = snr_linear(
            self._bs_tx_power_dbm, pl, self.shadowing.value_db, self.fading_dl.gain_linear,
            self.dl_bandwidth_hz[:, None], self._ue_noise_figure_db,
        )
        self.snr_ul_linear = snr_ul
        self.snr_dl_linear = snr_dl
        self.se_ul_bps_hz = spectral_efficiency_bps_hz(snr_ul, self._snr_gap_db, self._max_se)
        self.se_dl_bps_hz = spectral_efficiency_bps_hz(snr_dl, self._snr_gap_db, self._max_se)

    def _strongest_cell(self, hysteresis_db: float = 0.0) -> np.ndarray:
        """Best cell per device; the serving cell keeps a bonus of `hysteresis_db` [dB]."""
        rsrp_dbm = self._bs_tx_power_dbm - self.large_scale_loss_db
        rsrp_dbm[self.serving_cell, np.arange(self.n_devices)] += hysteresis_db
        return np.argmax(rsrp_dbm, axis=0).astype(np.int64)

    # -- time evolution ---------------------------------------------------------------
    def tick(self, dt_s: float) -> list[Handover]:
        """Advance mobility by `dt_s` [s], update shadowing, redraw fading; return handovers."""
        moved_m = self.mobility.step(dt_s)
        d2d = self.distances_m()
        self.los = self._los_state(d2d)
        std_db, decorr_m = self._shadow_params(d2d)
        self.shadowing.set_params(std_db, decorr_m)
        self.shadowing.step(moved_m)
        self.fading_ul.redraw()
        self.fading_dl.redraw()
        self._refresh(d2d)
        new_serving = self._strongest_cell(HANDOVER_HYSTERESIS_DB)
        changed = np.flatnonzero(new_serving != self.serving_cell)
        handovers = [Handover(int(d), int(self.serving_cell[d]), int(new_serving[d])) for d in changed]
        self.serving_cell = new_serving
        return handovers

    # -- per-device views used by the engine and policies -----------------------------
    def uplink_se(self, devices: np.ndarray) -> np.ndarray:
        """Uplink spectral efficiency to the serving cell [bit/s/Hz], shape (len(devices),)."""
        return self.se_ul_bps_hz[self.serving_cell[devices], devices]

    def downlink_se(self, devices: np.ndarray) -> np.ndarray:
        """Downlink spectral efficiency from the serving cell [bit/s/Hz]."""
        return self.se_dl_bps_hz[self.serving_cell[devices], devices]

    def uplink_full_band_rate_bps(self, devices: np.ndarray) -> np.ndarray:
        """Rate if the device had its serving cell's whole uplink band [bit/s]."""
        return self.uplink_se(devices) * self.ul_bandwidth_hz[self.serving_cell[devices]]
