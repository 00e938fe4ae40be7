"""The simulated physical world: cells, device positions and the channel between them.

`World` owns the radio-layer objects (mobility, path loss per cell, correlated shadowing,
block fading) and turns them into the arrays the engine needs, all shaped
(n_cells, n_devices): large-scale loss, uplink and downlink spectral efficiency, and
each device's serving cell. `tick(dt_s)` advances mobility and redraws the channel; it
is called by the engine's world process every coherence interval.

Link-level conventions (see README, "Radio model"):
- fluid OFDMA with power on the allocated resources: `links` (a
  `cosim.engine.links.LinkBudget`) turns the channel into each flow's rate as a function
  of its share (uplink power control, SINR with co-channel interference of active
  cells, link abstraction, TDD time shares); it is refreshed at every tick.
- LOS state is spatially consistent: each link keeps one uniform draw u and is LOS
  while u < P_LOS(d2D), so it only flips when the distance changes.
- a device is served by the cell with the strongest downlink received power without
  fast fading (RSRP-like). It hands over on an A3 event (TS 38.331 §5.5.4.4): a
  neighbour stronger than the serving cell by `radio.handover.a3_offset_db` at every
  world tick for at least `radio.handover.time_to_trigger_s`. A handover back to the
  cell the device left, at most `radio.handover.ping_pong_window_s` after leaving it,
  is a ping-pong (TR 36.839 §5.2 counts a stay shorter than a minimum time of stay).
- fading: Rayleigh, or with `radio.fading: rician` Rician on LOS links only, with K
  drawn once per link from the cell model's TR 38.901 Table 7.5-6 (μ_K, σ_K) (or
  `radio.rician_k_db` for every LOS link); NLOS links are Rayleigh (K = 0).
- frequency-selective fading with `radio.subbands` = N > 1: N independent subband gains
  per link and block, combined into the capacity-equivalent gain at the link's
  noise-limited full-band SNR (its SE is the mean of the per-subband SEs).
- shadowing σ per link from its model with the link's distance (RMa LOS: 4 dB up to
  the breakpoint, 6 dB beyond).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cosim.engine.links import LinkBudget
from radio.channel import BlockFading, GudmundsonShadowing
from radio.constants import THERMAL_NOISE_DBM_PER_HZ, db_to_linear, dbm_to_w
from radio.share import ShareLinks
from radio.mobility import MOBILITY
from radio.pathloss import MODELS as PATHLOSS_MODELS
from radio.pathloss import nominal_bs_height_m

#: Timer tolerance [s]: tick times are k*dt, so an elapsed time of exactly the TTT or
#: the ping-pong window may differ from it by float round-off.
_WINDOW_EPS_S = 1e-9


@dataclass(frozen=True)
class Handover:
    """A change of serving cell found at a world tick."""

    device: int
    from_cell: int
    to_cell: int
    ping_pong: bool = False


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
        self._h_ut_m = float(devices.height_m)
        self.cell_height_m = np.array(
            [nominal_bs_height_m(c.pathloss) if c.height_m is None else c.height_m for c in cells], dtype=float)
        self.links = LinkBudget(scenario, dbm_to_w(np.asarray(device_tx_power_dbm, dtype=float)))
        self._pathloss = [
            PATHLOSS_MODELS[c.pathloss](carrier_hz=c.carrier_hz, h_bs_m=h, **dict(c.pathloss_params))
            for c, h in zip(cells, self.cell_height_m)
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
        # Rician K of each link if it is LOS (drawn once, Table 7.5-6); NLOS links use K = 0.
        self._k_los_db = self._draw_k_factors_db(radio, rngs) if radio.fading == "rician" else np.zeros(shape)
        self._subbands = int(radio.subbands)
        self._reference_budget_db = self._reference_link_budgets_db(scenario, device_tx_power_dbm)
        ref_ul, ref_dl = self._reference_snrs(d2d)
        self.fading_ul = BlockFading(radio.fading, 0.0, shape, rngs["fading"], los=self.los, k_factor_los_db=self._k_los_db,
                                     subbands=self._subbands, reference_snr=ref_ul)
        self.fading_dl = BlockFading(radio.fading, 0.0, shape, rngs["fading"], los=self.los, k_factor_los_db=self._k_los_db,
                                     subbands=self._subbands, reference_snr=ref_dl)
        handover = radio.handover
        self._a3_offset_db = float(handover.a3_offset_db)
        self._ttt_s = float(handover.time_to_trigger_s)
        self._ping_pong_window_s = float(handover.ping_pong_window_s)
        self.now_s = 0.0
        self._a3_target = np.full(self.n_devices, -1, dtype=np.int64)  # neighbour meeting A3, or -1
        self._a3_since_s = np.full(self.n_devices, np.nan)  # when it started meeting it
        self._previous_cell = np.full(self.n_devices, -1, dtype=np.int64)  # cell left at the last handover
        self._left_at_s = np.full(self.n_devices, np.nan)
        self.serving_cell = np.zeros(self.n_devices, dtype=np.int64)
        # Lazy ticks (radio.idle_update_s): idle devices are re-evaluated every this many ticks.
        idle_s = getattr(radio, "idle_update_s", None)
        self.idle_every_ticks = 1 if idle_s is None else max(1, int(round(idle_s / float(radio.coherence_s))))
        self._lazy_ticks = 0
        self._synced_s = np.zeros(self.n_devices)  # when each device was last re-evaluated [s]
        self._moved_m: np.ndarray | None = None  # path length not yet applied (models stepping all devices)
        self.updated_devices: np.ndarray | None = None  # devices the last tick re-evaluated (None: all)
        self.updated_dt_s: np.ndarray | float = 0.0  # and the time each had not been [s]
        self._refresh(d2d)
        self.serving_cell = self._strongest_cell()

    # -- geometry and large-scale state ---------------------------------------------
    def distances_m(self) -> np.ndarray:
        """2-D distance from every cell to every device [m], shape (n_cells, n_devices)."""
        xy = self.mobility.positions_m
        dx, dy = xy[:, 0] - self.cell_xy_m[:, 0:1], xy[:, 1] - self.cell_xy_m[:, 1:2]
        return np.sqrt(dx * dx + dy * dy)  # metres: no overflow; ~9x faster than np.hypot

    def _los_state(self, d2d_m: np.ndarray, draw: np.ndarray | None = None) -> np.ndarray:
        p_los = np.stack(
            [model.los_probability(d2d_m[c], self._h_ut_m) for c, model in enumerate(self._pathloss)]
        )
        return (self._los_draw if draw is None else draw) < p_los

    def _draw_k_factors_db(self, radio, rngs: dict[str, np.random.Generator]) -> np.ndarray:
        """K [dB] each link has while LOS, shape (n_cells, n_devices): N(μ_K, σ_K) of its cell's
        model (TR 38.901 Table 7.5-6), or `radio.rician_k_db` for every link when set."""
        shape = (self.n_cells, self.n_devices)
        if radio.rician_k_db is not None:
            return np.full(shape, float(radio.rician_k_db))
        z = rngs["kfactor"].standard_normal(shape)
        k_db = np.empty(shape)
        for c, model in enumerate(self._pathloss):
            mu_db, sigma_db = model.RICIAN_K_LOS_DB or (9.0, 0.0)
            k_db[c] = mu_db + sigma_db * z[c]
        return np.clip(k_db, -50.0, 50.0)

    def _reference_snrs(self, d2d_m: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Noise-limited full-band, full-power SNR without fast fading (uplink, downlink),
        the reference of the subband abstraction (`radio.channel.BlockFading`); None, None
        with a single subband (nothing to abstract)."""
        if self._subbands == 1:
            return None, None
        pl = np.stack([model.loss_db(d2d_m[c], self._h_ut_m, self.los[c]) for c, model in enumerate(self._pathloss)])
        loss_db = pl + self.shadowing.value_db
        ul_db, dl_db = self._reference_budget_db
        return db_to_linear(ul_db - loss_db), db_to_linear(dl_db - loss_db)

    @staticmethod
    def _reference_link_budgets_db(scenario, device_tx_power_dbm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Transmit power + antenna gains − full-band noise power [dB], uplink (n_cells, n_devices)
        and downlink (n_cells, 1): the SNR of a link is this minus its loss. Antenna gains are
        counted when the scenario defines them (`antenna_gain_dbi`), else 0 dBi."""
        cells, devices = scenario.cells, scenario.devices
        column = lambda name: np.array([float(getattr(c, name, 0.0)) for c in cells])[:, None]  # noqa: E731
        gains_db = column("antenna_gain_dbi") + float(getattr(devices, "antenna_gain_dbi", 0.0))
        ul_noise_dbm = (THERMAL_NOISE_DBM_PER_HZ + 10.0 * np.log10(column("uplink_bandwidth_hz"))
                        + column("noise_figure_db"))
        dl_noise_dbm = (THERMAL_NOISE_DBM_PER_HZ + 10.0 * np.log10(column("downlink_bandwidth_hz"))
                        + float(devices.noise_figure_db))
        ul = np.asarray(device_tx_power_dbm, dtype=float)[None, :] + gains_db - ul_noise_dbm
        dl = column("tx_power_dbm") + gains_db - dl_noise_dbm
        return ul, dl

    def _shadow_params(self, d2d_m: np.ndarray, los: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        # σ needs the distance: RMa LOS is 4 dB up to its breakpoint and 6 dB beyond.
        los = self.los if los is None else los
        std = np.stack([np.broadcast_to(m.shadow_std_db(los[c], d2d_m[c], self._h_ut_m), d2d_m[c].shape)
                        for c, m in enumerate(self._pathloss)])
        decorr = np.stack(
            [np.broadcast_to(m.decorrelation_distance_m(los[c]), d2d_m[c].shape) for c, m in enumerate(self._pathloss)]
        )
        if not self._shadowing_enabled:
            std = np.zeros_like(std)
        return std.astype(float), decorr.astype(float)

    def _refresh(self, d2d_m: np.ndarray) -> None:
        pl = np.stack(
            [model.loss_db(d2d_m[c], self._h_ut_m, self.los[c]) for c, model in enumerate(self._pathloss)]
        )
        self.large_scale_loss_db = pl + self.shadowing.value_db
        self.links.update(pl, self.shadowing.value_db, self.fading_ul.gain_linear, self.fading_dl.gain_linear)

    # Diagnostics (computed when read, not at every tick): SNR of each (cell, device) link
    # alone on the whole band at full power (UE at P_CMAX), no interference, and its SE.
    @property
    def snr_ul_linear(self) -> np.ndarray:
        """Uplink full-band SNR at P_CMAX, no interference [linear], (n_cells, n_devices)."""
        lb = self.links
        return lb.p_cmax_w[None, :] * lb.gain_ul / (lb.bs_noise_psd[:, None] * lb.ul_bandwidth_hz[:, None])

    @property
    def snr_dl_linear(self) -> np.ndarray:
        """Downlink full-band SNR, no interference [linear], (n_cells, n_devices)."""
        lb = self.links
        return lb.bs_power_w[:, None] * lb.gain_dl / (lb.ue_noise_psd * lb.dl_bandwidth_hz[:, None])

    @property
    def se_ul_bps_hz(self) -> np.ndarray:
        """Spectral efficiency of `snr_ul_linear` [bit/s/Hz], (n_cells, n_devices)."""
        return self.links.ul_abstraction.spectral_efficiency_bps_hz(self.snr_ul_linear)

    @property
    def se_dl_bps_hz(self) -> np.ndarray:
        """Spectral efficiency of `snr_dl_linear` [bit/s/Hz], (n_cells, n_devices)."""
        return self.links.dl_abstraction.spectral_efficiency_bps_hz(self.snr_dl_linear)

    def _rsrp_dbm(self) -> np.ndarray:
        """Received power without fast fading [dBm], shape (n_cells, n_devices)."""
        return self._bs_tx_power_dbm - self.large_scale_loss_db

    def _strongest_cell(self) -> np.ndarray:
        """Best cell per device by RSRP (initial attachment)."""
        return np.argmax(self._rsrp_dbm(), axis=0).astype(np.int64)

    def evaluate_handovers(self, rsrp_dbm: np.ndarray, now_s: float,
                           devices: np.ndarray | None = None) -> list[Handover]:
        """One A3 measurement instant: hand over the devices whose best neighbour has been
        stronger than their serving cell by the A3 offset since at least `time_to_trigger_s`.

        Args:
            rsrp_dbm: received power per cell and device [dBm], shape (n_cells, n_devices),
                or (n_cells, len(devices)) when `devices` is given.
            now_s: time of this measurement [s], non-decreasing across calls.
            devices: the devices measured (ascending); None: all.

        Returns:
            the handovers made (serving cells updated), ping-pongs flagged: a return to
            the cell left at most `ping_pong_window_s` earlier.
        """
        d, from_cell, to_cell, ping_pong = self._a3(rsrp_dbm, now_s, devices)
        return [Handover(*h) for h in zip(d.tolist(), from_cell.tolist(), to_cell.tolist(), ping_pong.tolist())]

    def _a3(self, rsrp_dbm: np.ndarray, now_s: float, devices: np.ndarray | None) -> tuple[np.ndarray, ...]:
        """`evaluate_handovers` as arrays: (devices, from cells, to cells, ping-pong flags)."""
        self.now_s = float(now_s)
        ids = np.arange(self.n_devices) if devices is None else np.asarray(devices, dtype=np.int64)
        cols = np.arange(ids.size)
        rsrp = np.array(rsrp_dbm, dtype=float)
        serving = self.serving_cell[ids]
        serving_rsrp = rsrp[serving, cols]
        rsrp[serving, cols] = -np.inf
        best = np.argmax(rsrp, axis=0).astype(np.int64)
        meets = rsrp[best, cols] > serving_rsrp + self._a3_offset_db
        # The timer runs while the same neighbour keeps meeting the entry condition.
        restart = meets & (best != self._a3_target[ids])
        since = np.where(restart, self.now_s, self._a3_since_s[ids])
        since = np.where(meets, since, np.nan)
        target = np.where(meets, best, -1)
        fire = meets & (self.now_s - since >= self._ttt_s - _WINDOW_EPS_S)
        target[fire] = -1
        since[fire] = np.nan
        self._a3_target[ids] = target
        self._a3_since_s[ids] = since
        local = np.flatnonzero(fire)
        d = ids[local]
        to_cell, from_cell = best[local], serving[local]
        ping_pong = (to_cell == self._previous_cell[d]) & (
            self.now_s - self._left_at_s[d] <= self._ping_pong_window_s + _WINDOW_EPS_S)
        self._previous_cell[d] = from_cell
        self._left_at_s[d] = self.now_s
        self.serving_cell[d] = to_cell
        return d, from_cell, to_cell, ping_pong

    # -- time evolution ---------------------------------------------------------------
    def tick(self, dt_s: float, now_s: float | None = None) -> list[Handover]:
        """Advance mobility by `dt_s` [s], update shadowing, redraw fading; return handovers.

        `now_s` is the simulated time of this tick (default: the last tick's + `dt_s`);
        the handover timers run on it.
        """
        moved_m = self.mobility.step(dt_s)
        d2d = self.distances_m()
        self.los = self._los_state(d2d)
        std_db, decorr_m = self._shadow_params(d2d)
        self.shadowing.set_params(std_db, decorr_m)
        self.shadowing.step(moved_m)
        ref_ul, ref_dl = self._reference_snrs(d2d)
        self.fading_ul.redraw(self.los, ref_ul)
        self.fading_dl.redraw(self.los, ref_dl)
        self._refresh(d2d)
        return self.evaluate_handovers(self._rsrp_dbm(), self.now_s + dt_s if now_s is None else now_s)

    def tick_lazy(self, dt_s: float, now_s: float, active: np.ndarray) -> tuple[np.ndarray, ...]:
        """A tick that re-evaluates only `active` devices and every `idle_every_ticks`-th idle
        one (a rotating slice, so each idle device every `idle_every_ticks` ticks); the
        others keep their channel, serving cell and A3 timers until their turn. Mobility is
        exact (a device re-evaluated walks the whole time since its last evaluation);
        shadowing takes one AR(1) step over the whole path; fading is redrawn. See README,
        "Idle devices". `updated_devices`/`updated_dt_s` say whom it re-evaluated. Returns
        the handovers as arrays (devices, from cells, to cells, ping-pong flags): at a
        million devices there are too many for a `Handover` object each.
        """
        k, n = self.idle_every_ticks, self.n_devices
        self._lazy_ticks += 1
        mask = np.zeros(n, dtype=bool)
        mask[self._lazy_ticks % k::k] = True
        mask[np.asarray(active, dtype=np.int64)] = True
        dev = np.flatnonzero(mask)
        elapsed_s = now_s - self._synced_s[dev]
        if self.mobility.steps_devices:
            moved_m = self.mobility.step_devices(dev, elapsed_s)
        else:  # the model moves every device together: walk all, apply the path when due
            if self._moved_m is None:
                self._moved_m = np.zeros(n)
            self._moved_m += self.mobility.step(dt_s)
            moved_m = self._moved_m[dev]
            self._moved_m[dev] = 0.0
        self._synced_s[dev] = now_s
        self.updated_devices, self.updated_dt_s = dev, elapsed_s
        xy = self.mobility.positions_of(dev)
        dx, dy = xy[:, 0] - self.cell_xy_m[:, 0:1], xy[:, 1] - self.cell_xy_m[:, 1:2]
        d2d = np.sqrt(dx * dx + dy * dy)
        los = self._los_state(d2d, self._los_draw[:, dev])
        self.los[:, dev] = los
        std_db, decorr_m = self._shadow_params(d2d, los)
        shadow_db = self.shadowing.step_columns(dev, moved_m, std_db, decorr_m)
        pl = np.stack([model.loss_db(d2d[c], self._h_ut_m, los[c]) for c, model in enumerate(self._pathloss)])
        loss_db = pl + shadow_db
        ref_ul = ref_dl = None
        if self._subbands > 1:
            ul_db, dl_db = self._reference_budget_db
            ref_ul, ref_dl = db_to_linear(ul_db[:, dev] - loss_db), db_to_linear(dl_db - loss_db)
        fading_ul = self.fading_ul.redraw_columns(dev, los, ref_ul)
        fading_dl = self.fading_dl.redraw_columns(dev, los, ref_dl)
        self.large_scale_loss_db[:, dev] = loss_db
        self.links.update_columns(dev, pl, shadow_db, fading_ul, fading_dl)
        return self._a3(self._bs_tx_power_dbm - loss_db, now_s, dev)

    # -- per-device views used by the engine and policies -----------------------------
    def uplink_links(self, cell: int, devices: np.ndarray) -> ShareLinks:
        """Uplink rate functions of `devices` transmitting to `cell` (current interference)."""
        return self.links.uplink_links(cell, np.asarray(devices, dtype=np.int64))

    def downlink_links(self, cell: int, devices: np.ndarray) -> ShareLinks:
        """Downlink rate functions of `devices` served by `cell` (current interference)."""
        return self.links.downlink_links(cell, np.asarray(devices, dtype=np.int64))

    def _full_band_rate_bps(self, devices: np.ndarray, direction: str) -> np.ndarray:
        devices = np.asarray(devices, dtype=np.int64)
        serving = self.serving_cell[devices]
        rate = np.zeros(devices.size)
        i_ul = self.links.uplink_interference_psd() if direction == "ul" else None  # once for all cells
        for cell in np.unique(serving):  # a loop over cells, vectorised over their devices
            on = serving == cell
            links = (self.links.uplink_links(int(cell), devices[on], float(i_ul[cell])) if direction == "ul"
                     else self.links.downlink_links(int(cell), devices[on]))
            rate[on] = links.full_share_rate_bps
        return rate

    def uplink_full_band_rate_bps(self, devices: np.ndarray) -> np.ndarray:
        """Rate if the device had its serving cell's whole uplink band [bit/s] (best use of it)."""
        return self._full_band_rate_bps(devices, "ul")

    def downlink_full_band_rate_bps(self, devices: np.ndarray) -> np.ndarray:
        """Rate if the device had its serving cell's whole downlink band [bit/s]."""
        return self._full_band_rate_bps(devices, "dl")
