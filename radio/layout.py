"""3GPP hexagonal multi-site layouts and downlink geometry SINR, vectorised.

A :class:`HexLayout` is 1 + 6 + 12 + … sites (``n_rings`` rings around a centre site)
on a hexagonal lattice with inter-site distance ISD, three sectors per site with
bearings 30°, 150° and 270° (TR 38.901 Table 7.8-1). In this "clover-leaf" layout
every sector cell is a hexagon of radius ISD/3 and each sector's boresight points at
a neighbouring site, so the lattice vectors are u = ISD·(cos 30°, sin 30°) and
v = ISD·(0, 1). With ``wraparound`` (19 sites) every UT sees the nearest of seven
images of each site, displaced by the six rotations of 3u + 2v (|3u + 2v| = √19·ISD):
every site then has two full rings of interferers, as in 3GPP calibrations.

:func:`geometry_sinr_db` turns received powers into the serving cell (strongest, 0 dB
handover margin) and the full-buffer downlink SINR S / (Σ I + N) without fast fading,
the "geometry" of 3GPP calibration campaigns. :func:`draw_ut_placement` draws UT
heights and indoor state as TR 38.901 Table 7.2-1 prescribes for UMa/UMi.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from radio.antenna import SECTOR_BORESIGHTS_DEG, direction_deg, gcs_to_lcs_deg, panel_gain_dbi
from radio.constants import db_to_linear, linear_to_db
from radio.pathloss.o2i import draw_indoor_distance_m

__all__ = ["HexLayout", "PanelAntenna", "geometry_sinr_db", "draw_ut_placement", "UtPlacement"]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class PanelAntenna:
    """A BS panel: a vertical column of TR 38.901 Table 7.3-1 elements.

    Attributes:
        n_vertical: number of vertical elements M (1 = a single element).
        spacing_wavelengths: vertical spacing d_V [wavelengths].
        electrical_tilt_deg: θ_etilt [deg] (90 = none; 102 = 12° down).
        mechanical_downtilt_deg: β [deg] (> 0 points below the horizon).
    """

    n_vertical: int = 1
    spacing_wavelengths: float = 0.5
    electrical_tilt_deg: float = 90.0
    mechanical_downtilt_deg: float = 0.0

    def gain_dbi(self, zenith_deg: ArrayLike, azimuth_deg: ArrayLike, bearing_deg: ArrayLike) -> FloatArray:
        """Gain towards a global direction (θ, φ) of a panel with bearing α [dBi], broadcast shape."""
        theta_l, phi_l = gcs_to_lcs_deg(zenith_deg, azimuth_deg, bearing_deg, self.mechanical_downtilt_deg)
        return panel_gain_dbi(theta_l, phi_l, self.n_vertical, self.spacing_wavelengths, self.electrical_tilt_deg)


@dataclass(frozen=True)
class HexLayout:
    """Hexagonal sites with three sectors each.

    Attributes:
        isd_m: inter-site distance [m], > 0.
        n_rings: rings of sites around the centre (1 → 7 sites, 2 → 19 sites).
        h_bs_m: BS antenna height [m].
        wraparound: use the 19-site wrap-around (requires ``n_rings == 2``).
        boresights_deg: sector bearings [deg].
    """

    isd_m: float
    n_rings: int = 2
    h_bs_m: float = 25.0
    wraparound: bool = True
    boresights_deg: tuple[float, ...] = field(default=SECTOR_BORESIGHTS_DEG)

    def __post_init__(self) -> None:
        if not self.isd_m > 0.0:
            raise ValueError(f"isd_m={self.isd_m!r} must be > 0")
        if self.n_rings not in (0, 1, 2, 3, 4):
            raise ValueError(f"n_rings={self.n_rings!r} must be in 0..4")
        if self.wraparound and self.n_rings != 2:
            raise ValueError(f"wraparound needs n_rings=2 (19 sites), got n_rings={self.n_rings}")

    # -- geometry ------------------------------------------------------------------
    @property
    def _basis_m(self) -> FloatArray:
        """Lattice vectors u, v [m], shape (2, 2)."""
        c30, s30 = np.cos(np.radians(30.0)), np.sin(np.radians(30.0))
        return self.isd_m * np.array([[c30, s30], [0.0, 1.0]])

    @property
    def site_xy_m(self) -> FloatArray:
        """Site positions [m], shape (n_sites, 2); site 0 at the origin, then ring by ring."""
        qr = [(q, r) for q in range(-self.n_rings, self.n_rings + 1) for r in range(-self.n_rings, self.n_rings + 1)
              if (abs(q) + abs(r) + abs(q + r)) // 2 <= self.n_rings]
        qr.sort(key=lambda p: ((abs(p[0]) + abs(p[1]) + abs(p[0] + p[1])) // 2, np.arctan2(*(np.array(p) @ self._basis_m)[::-1])))
        return np.array(qr, dtype=np.float64) @ self._basis_m

    @property
    def n_sites(self) -> int:
        return 1 + 3 * self.n_rings * (self.n_rings + 1)

    @property
    def n_cells(self) -> int:
        return self.n_sites * len(self.boresights_deg)

    @property
    def cell_site(self) -> NDArray[np.int64]:
        """Site of each cell, shape (n_cells,); cells are ordered site-major."""
        return np.repeat(np.arange(self.n_sites), len(self.boresights_deg))

    @property
    def cell_bearing_deg(self) -> FloatArray:
        """Boresight bearing of each cell [deg], shape (n_cells,)."""
        return np.tile(np.asarray(self.boresights_deg, dtype=np.float64), self.n_sites)

    def wraparound_offsets_m(self) -> FloatArray:
        """Translations of the site cluster images [m], shape (7, 2) (first is zero), or (1, 2)."""
        if not self.wraparound:
            return np.zeros((1, 2))
        qr = [(0, 0), (3, 2)]
        for _ in range(5):  # rotate by +60°: u → v, v → v − u, i.e. (q, r) → (−r, q + r)
            q, r = qr[-1]
            qr.append((-r, q + r))
        return np.array(qr, dtype=np.float64) @ self._basis_m

    def displacement_m(self, ut_xy_m: ArrayLike) -> FloatArray:
        """UT position minus the nearest image of each site [m], shape (n_sites, n_ut, 2)."""
        ut = np.asarray(ut_xy_m, dtype=np.float64).reshape(-1, 2)
        images = self.site_xy_m[:, None, :] + self.wraparound_offsets_m()[None, :, :]  # (S, 7, 2)
        disp = ut[None, None, :, :] - images[:, :, None, :]  # (S, 7, U, 2)
        best = np.argmin(np.einsum("siuk,siuk->siu", disp, disp), axis=1)  # (S, U)
        return np.take_along_axis(disp, best[:, None, :, None], axis=1)[:, 0]

    def drop_uniform(self, rng: np.random.Generator, n_ut: int, min_distance_m: float = 0.0) -> FloatArray:
        """UT positions uniform over the sites' hexagons, ≥ ``min_distance_m`` from the own site [m], (n_ut, 2).

        Each site's area is its hexagon of apothem ISD/2 (flat sides facing the six
        neighbours); a site is chosen uniformly, then a point uniformly in its hexagon.
        """
        if n_ut < 0:
            raise ValueError(f"n_ut={n_ut!r} must be >= 0")
        if not 0.0 <= min_distance_m < self.isd_m / 2:
            raise ValueError(f"min_distance_m={min_distance_m!r} outside allowed range [0, {self.isd_m / 2})")
        apothem = self.isd_m / 2.0
        out = np.empty((0, 2))
        normals = np.radians(30.0 + 60.0 * np.arange(6))
        nvec = np.stack([np.cos(normals), np.sin(normals)], axis=1)  # (6, 2)
        radius = apothem / np.cos(np.radians(30.0))
        while len(out) < n_ut:
            cand = rng.uniform(-radius, radius, size=(2 * (n_ut - len(out)) + 8, 2))
            inside = np.all(cand @ nvec.T <= apothem, axis=1) & (np.hypot(cand[:, 0], cand[:, 1]) >= min_distance_m)
            out = np.concatenate([out, cand[inside]])
        out = out[:n_ut]
        site = rng.integers(0, self.n_sites, size=n_ut)
        return out + self.site_xy_m[site]

    def sector_gain_dbi(self, ut_xy_m: ArrayLike, h_ut_m: ArrayLike, antenna: PanelAntenna) -> FloatArray:
        """BS antenna gain of every cell towards every UT [dBi], shape (n_cells, n_ut)."""
        disp = self.displacement_m(ut_xy_m)  # (S, U, 2)
        zen, azi = direction_deg(disp[..., 0], disp[..., 1], self.h_bs_m, np.asarray(h_ut_m, dtype=np.float64))
        k = len(self.boresights_deg)
        bearings = np.asarray(self.boresights_deg, dtype=np.float64)[None, :, None]
        gain = antenna.gain_dbi(zen[:, None, :], azi[:, None, :], bearings)  # (S, k, U)
        return gain.reshape(self.n_sites * k, -1)


def geometry_sinr_db(rx_power_dbm: ArrayLike, noise_dbm: float) -> tuple[NDArray[np.int64], FloatArray]:
    """Serving cell and downlink SINR with every other cell interfering at full power.

    Args:
        rx_power_dbm: received power of every cell at every UT [dBm], shape (n_cells, n_ut).
        noise_dbm: noise power at the UT over the band [dBm].

    Returns:
        ``(serving, sinr_db)``: index of the strongest cell, shape (n_ut,), and
        10·log10(S / (Σ_{other cells} I + N)) [dB], shape (n_ut,).
    """
    p = db_to_linear(np.asarray(rx_power_dbm, dtype=np.float64))
    serving = np.argmax(p, axis=0)
    s = p[serving, np.arange(p.shape[1])]
    interference = p.sum(axis=0) - s
    return serving.astype(np.int64), linear_to_db(s / (interference + float(db_to_linear(noise_dbm))))


@dataclass(frozen=True)
class UtPlacement:
    """UT heights and indoor state, each shape (n_ut,).

    Attributes:
        h_ut_m: antenna height [m].
        indoor: True for an indoor UT.
        d2d_in_m: indoor distance d_2D-in [m] (0 outdoors).
    """

    h_ut_m: FloatArray
    indoor: NDArray[np.bool_]
    d2d_in_m: FloatArray


def draw_ut_placement(rng: np.random.Generator, n_ut: int, indoor_fraction: float = 0.8) -> UtPlacement:
    """UT heights and indoor state of TR 38.901 Table 7.2-1 (UMa / UMi).

    Outdoor UTs are at 1.5 m. An indoor UT is in a building of N_fl ~ U{4, …, 8}
    floors, on floor n_fl ~ U{1, …, N_fl}, at h_UT = 3·(n_fl − 1) + 1.5 m, with
    d_2D-in = min(U(0, 25), U(0, 25)) m (Table 7.4.3-2).

    Args:
        rng: generator for the draws.
        n_ut: number of UTs, >= 0.
        indoor_fraction: probability a UT is indoor, in [0, 1] (80 % in Table 7.2-1).
    """
    if not 0.0 <= indoor_fraction <= 1.0:
        raise ValueError(f"indoor_fraction={indoor_fraction!r} outside allowed range [0, 1]")
    indoor = rng.uniform(size=n_ut) < indoor_fraction
    n_floors = rng.integers(4, 9, size=n_ut)
    floor = np.floor(rng.uniform(size=n_ut) * n_floors).astype(np.int64) + 1
    h = np.where(indoor, 3.0 * (floor - 1) + 1.5, 1.5)
    d_in = np.where(indoor, draw_indoor_distance_m(rng, n_ut), 0.0)
    return UtPlacement(h_ut_m=h, indoor=indoor, d2d_in_m=d_in)
