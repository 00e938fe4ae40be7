"""A flow's rate as a function of its share of the band (power on allocated resources).

Fluid OFDMA gives flow ``i`` a fraction ``x_i`` of its cell's band ``B``. With uplink
power control (TS 38.213 §7.1.1, :mod:`radio.power_control`) the UE keeps a fixed
power per RB until it reaches P_CMAX, so on its share its SINR is

    SINR_i(x) = c_i · min(1, x̂_i / x)

where ``c_i`` is the SINR the power-control target gives (the *ceiling*) and ``x̂_i`` the
share at which the UE reaches P_CMAX (``x̂ = P_CMAX / (P_RB · N_RB)``). Noise and
interference are spread over the share too (``N0 · x · B``), so below ``x̂`` the SINR does
not depend on ``x``; above it the UE's fixed total power is spread thinner. The downlink
base station keeps a fixed power spectral density (its power over its whole band), the
case ``x̂ = ∞``. The rate

    r_i(x) = x · B · τ · SE(SINR_i(x))

(τ: the direction's share of time under TDD, SE from :class:`radio.abstraction.
LinkAbstraction`, overhead included) is concave in ``x`` for the ``shannon`` mapping
(x·log(1 + a/x) is the perspective of a concave function). Below the minimum SINR a link
carries nothing, so a power-limited UE never spreads its power over more than
``x_max = x̂·c/SINR_min``: it transmits on ``u(x) = min(x, x_max)`` and leaves the rest of
its grant unused (:meth:`ShareLinks.used_share`), which keeps ``r`` non-decreasing. Under
``cqi`` the rate is a staircase; the UE likewise uses the share ``u(x) <= x`` that gives the
highest rate (the upper monotone envelope).

The radiated power on share ``x`` is ``P_max · min(1, u(x)/x̂)``: exactly the power the
SINR was computed with, which the engine charges (one power, one truth).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import lambertw

from radio.abstraction import LinkAbstraction

__all__ = ["ShareLinks"]

FloatArray = NDArray[np.float64]


def _as_1d(name: str, value: ArrayLike) -> FloatArray:
    a = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D (n_flows,), got shape {a.shape}")
    return a


@dataclass(frozen=True)
class ShareLinks:
    """Link parameters of ``n`` flows sharing one cell's band in one direction.

    Args:
        bandwidth_hz: the band B [Hz], > 0.
        n_rb: resource blocks in the band, >= 1 (a flow holds at least one to be covered).
        sinr_ceiling: c, SINR [linear, >= 0] on any share up to ``full_power_share``,
            shape (n,).
        full_power_share: x̂, the share at which the transmitter reaches its maximum
            power (``inf``: fixed PSD, the downlink), > 0, shape (n,).
        max_power_w: P_max radiated by the device at x >= x̂ [W] (0 on the downlink,
            where the device radiates nothing), shape (n,).
        abstraction: the SINR -> SE mapping (gap, cap, overhead, minimum SINR).
        time_fraction: τ, the share of time this direction gets (TDD), in (0, 1].
    """

    bandwidth_hz: float
    n_rb: int
    sinr_ceiling: FloatArray
    full_power_share: FloatArray
    max_power_w: FloatArray
    abstraction: LinkAbstraction
    time_fraction: float = 1.0

    def __post_init__(self) -> None:
        c = _as_1d("sinr_ceiling", self.sinr_ceiling)
        xp = _as_1d("full_power_share", self.full_power_share)
        p = _as_1d("max_power_w", self.max_power_w)
        if not (c.shape == xp.shape == p.shape):
            raise ValueError(f"shape mismatch: sinr_ceiling {c.shape}, full_power_share {xp.shape}, "
                             f"max_power_w {p.shape}")
        if c.size and not ((c >= 0.0) & np.isfinite(c)).all():
            raise ValueError(f"sinr_ceiling={c.tolist()} out of range; allowed: finite, >= 0")
        if xp.size and not (xp > 0.0).all():
            raise ValueError(f"full_power_share={xp.tolist()} out of range; allowed: > 0 (inf = fixed PSD)")
        if p.size and not ((p >= 0.0) & np.isfinite(p)).all():
            raise ValueError(f"max_power_w={p.tolist()} out of range; allowed: finite, >= 0 [W]")
        if not (np.isfinite(self.bandwidth_hz) and self.bandwidth_hz > 0):
            raise ValueError(f"bandwidth_hz={self.bandwidth_hz!r} out of range; allowed: > 0 [Hz]")
        if int(self.n_rb) < 1:
            raise ValueError(f"n_rb={self.n_rb!r} out of range; allowed: >= 1")
        if not 0.0 < self.time_fraction <= 1.0:
            raise ValueError(f"time_fraction={self.time_fraction!r} out of range; allowed: (0, 1]")
        object.__setattr__(self, "sinr_ceiling", c)
        object.__setattr__(self, "full_power_share", xp)
        object.__setattr__(self, "max_power_w", p)

    # -- basic quantities ---------------------------------------------------------------
    @property
    def n(self) -> int:
        """Number of flows."""
        return int(self.sinr_ceiling.size)

    @property
    def _hz(self) -> float:
        """B · τ: the band times this direction's share of time [Hz] (SE includes 1 − OH)."""
        return self.bandwidth_hz * self.time_fraction

    def _bcast(self, x: ArrayLike) -> FloatArray:
        """Shares as float array broadcast to (n,) or (n, k)."""
        x = np.asarray(x, dtype=np.float64)
        return x if x.ndim == 2 or x.shape == (self.n,) else np.broadcast_to(x, (self.n,))

    def sinr(self, x: ArrayLike) -> FloatArray:
        """SINR [linear] on share ``x`` (shape (n,) or (n, k)): c · min(1, x̂/x)."""
        x = self._bcast(x)
        c, xp = self._col(self.sinr_ceiling, x), self._col(self.full_power_share, x)
        # x̂/x where x > 0 (never a division by zero), inf elsewhere.
        ratio = np.divide(xp, x, out=np.full(np.broadcast_shapes(xp.shape, x.shape), np.inf), where=x > 0.0)
        return c * np.minimum(1.0, ratio)

    @staticmethod
    def _col(v: FloatArray, like: FloatArray) -> FloatArray:
        return v[:, None] if like.ndim == 2 else v

    def _raw_rate(self, x: FloatArray) -> FloatArray:
        if x.ndim != 1:
            return x * self._hz * self.abstraction.spectral_efficiency_bps_hz(self.sinr(x))
        # The SINR is exactly the ceiling c (c · min(1, x̂/x) with x̂/x >= 1, or x <= 0) except
        # where x > x̂: there only is the SE evaluated anew; elsewhere it is SE(c), computed
        # once per links (the scheduler evaluates rates several times per reallocation).
        xp = self.full_power_share
        limited = x > xp
        if not limited.any():
            return x * self._hz * self._ceiling_se
        se = self._ceiling_se.copy()
        c, xl = self.sinr_ceiling[limited], x[limited]
        se[limited] = self.abstraction.spectral_efficiency_bps_hz(c * np.minimum(1.0, xp[limited] / xl))
        return x * self._hz * se

    @cached_property
    def _ceiling_se(self) -> FloatArray:
        """SE(c) [bit/s/Hz] of each flow: its SE on any share up to x̂, (n,)."""
        return self.abstraction.spectral_efficiency_bps_hz(self.sinr_ceiling)

    def _min_sinr(self) -> float:
        """Lowest SINR [linear] that carries anything under this abstraction."""
        s = self.abstraction.min_sinr_linear
        if self.abstraction.kind == "cqi":
            s = max(s, float(self.abstraction.cqi_thresholds_linear()[0]))
        return s

    @cached_property
    def one_rb_carries(self) -> NDArray[np.bool_]:
        """True where one resource block, the smallest grant (TS 38.214 §6.1.2.2: PUSCH/PDSCH
        are allocated in whole PRBs), reaches the minimum SINR at the link's power, (n,).

        A power-limited UE whose SINR on one RB at P_CMAX is below the minimum cannot
        concentrate its power on a fraction of an RB: it carries nothing on any share.
        """
        # Fixed PSD: the SINR is c · min(1, inf) = c exactly on any share.
        s1 = self.sinr_ceiling if self._fixed_psd else self.sinr(np.full(self.n, 1.0 / int(self.n_rb)))
        return (s1 >= self._min_sinr()) & (self.sinr_ceiling > 0.0)

    @cached_property
    def _fixed_psd(self) -> bool:
        """Whether every flow keeps a fixed PSD (x̂ = inf: the downlink)."""
        return bool(np.isposinf(self.full_power_share).all())

    @cached_property
    def max_share(self) -> FloatArray:
        """x_max: the largest share on which the SINR stays at or above the minimum, (n,);
        0 where one RB does not reach it (:attr:`one_rb_carries`).

        ``x̂·c/SINR_min`` is rounded, and the rate evaluates the SINR on it with its own
        expression ``c·min(1, x̂/x)``, which can land an ulp below the minimum (zero rate
        for a flow at the boundary). So x_max is stepped down, an ulp at a time, until that
        same expression clears the minimum: the share and the rate agree exactly.
        """
        if self._fixed_psd:
            # x̂·c/SINR_min = inf where one RB carries (c > 0): the whole band, on which the
            # SINR is c >= the minimum (no stepping down); 0 elsewhere.
            return np.where(self.one_rb_carries, 1.0, 0.0)
        s_min = self._min_sinr()
        c, xp = self.sinr_ceiling, self.full_power_share
        if s_min > 0.0:
            with np.errstate(divide="ignore", invalid="ignore"):  # inf · 0: NaN, where one RB does not carry
                spread = xp * c / max(s_min, 1e-300)
        else:
            spread = np.inf
        x = np.where(self.one_rb_carries, np.minimum(1.0, spread), 0.0)  # >= 1 RB where it carries
        for _ in range(16):  # a few ulps of round-off at most
            short = (x > 0.0) & (self.sinr(x) < s_min)
            if not short.any():
                break
            x = np.where(short, np.nextafter(x, 0.0), x)
        return x

    # -- rate, used share, power ---------------------------------------------------------
    def _cqi_envelope(self, x: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(u, r̂) under ``cqi``: the best share u <= x and its rate, shapes of x.

        The maximum of r over [0, x] is at x or at the right end of a CQI level's range,
        b_k = x̂·c/thr_k (where the SINR falls to thr_k), whose rate is b_k·B·τ·SE_k.
        """
        from radio.link import CQI_EFFICIENCY_BPS_HZ

        ab = self.abstraction
        flat = x.reshape(self.n, -1)  # (n, k)
        thr = np.maximum(ab.cqi_thresholds_linear(), ab.min_sinr_linear)  # (15,)
        c, xp = self.sinr_ceiling[:, None], self.full_power_share[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            breaks = np.where(c >= thr[None, :], np.minimum(xp * c / thr[None, :], 1.0), 0.0)  # (n, 15)
        ok = breaks[:, None, :] <= flat[:, :, None]  # (n, k, 15)
        level_rate = np.where(ok, breaks[:, None, :] * self._hz * ab.efficiency * CQI_EFFICIENCY_BPS_HZ, -1.0)
        own = self._raw_rate_matrix(flat)  # (n, k)
        best = np.argmax(level_rate, axis=2)  # (n, k)
        best_rate = np.take_along_axis(level_rate, best[:, :, None], axis=2)[:, :, 0]
        use_break = best_rate > own
        u = np.where(use_break, np.take_along_axis(np.broadcast_to(breaks[:, None, :], ok.shape), best[:, :, None],
                                                   axis=2)[:, :, 0], flat)
        r = np.where(use_break, best_rate, own)
        return u.reshape(x.shape), r.reshape(x.shape)

    def used_share(self, x: ArrayLike) -> FloatArray:
        """u(x) <= x: the part of its share a flow transmits on (the best one), shape of x."""
        x = self._bcast(x)
        if not self.abstraction.headroom_aware:  # the whole grant, or nothing
            return np.where(self.rate_bps(x) > 0.0, x, 0.0)
        if self.abstraction.kind == "shannon":
            return np.minimum(x, self._col(self.max_share, x))
        return np.where(self._col(self.one_rb_carries, x), self._cqi_envelope(x)[0], 0.0)

    def _raw_rate_matrix(self, x: FloatArray) -> FloatArray:
        c, xp = self.sinr_ceiling[:, None], self.full_power_share[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(x > 0.0, xp / np.where(x > 0.0, x, 1.0), np.inf)
        return x * self._hz * self.abstraction.spectral_efficiency_bps_hz(c * np.minimum(1.0, ratio))

    def rate_bps(self, x: ArrayLike) -> FloatArray:
        """r(x) [bit/s] of each flow on share ``x`` (shape (n,) or (n, k)); 0 for x = 0."""
        x = self._bcast(x)
        if not self.abstraction.headroom_aware:  # SINR on the whole grant (0 below the minimum)
            return np.where(self._col(self.one_rb_carries, x), self._raw_rate(x), 0.0)
        if self.abstraction.kind == "cqi":
            return np.where(self._col(self.one_rb_carries, x), self._cqi_envelope(x)[1], 0.0)
        return self._raw_rate(self.used_share(x))

    def radiated_power_w(self, x: ArrayLike) -> FloatArray:
        """Power the device radiates while transmitting on share ``x`` [W]: P_max·min(1, u/x̂)."""
        x = self._bcast(x)
        u = self.used_share(x)
        return self._col(self.max_power_w, x) * np.minimum(1.0, u / self._col(self.full_power_share, x))

    @property
    def full_share_rate_bps(self) -> FloatArray:
        """r(1): the rate of each flow alone on the band [bit/s], (n,)."""
        return self.rate_bps(np.ones(self.n))

    @property
    def ceiling_rate_bps(self) -> FloatArray:
        """B·τ·SE(c): the rate per unit share at the SINR ceiling, an upper bound of r(x)/x, (n,)."""
        return self._hz * self._ceiling_se

    def take(self, index: ArrayLike) -> "ShareLinks":
        """The links of a subset of the flows (integer index or boolean mask).

        A subset of validated links needs no validation; the per-flow quantities already
        computed here (:attr:`one_rb_carries`, :attr:`max_share`, SE(c), each a function of its
        own flow only) are carried over instead of recomputed.
        """
        c, xp, p = self.sinr_ceiling[index], self.full_power_share[index], self.max_power_w[index]
        if np.ndim(c) != 1:  # a scalar index: let the constructor make it (1,)
            return ShareLinks(self.bandwidth_hz, self.n_rb, c, xp, p, self.abstraction, self.time_fraction)
        sub = object.__new__(ShareLinks)
        fields = sub.__dict__  # frozen dataclass: set the fields as __post_init__ would
        fields.update(bandwidth_hz=self.bandwidth_hz, n_rb=self.n_rb, sinr_ceiling=c, full_power_share=xp,
                      max_power_w=p, abstraction=self.abstraction, time_fraction=self.time_fraction)
        for name in ("one_rb_carries", "max_share", "_ceiling_se"):
            if name in self.__dict__:
                fields[name] = self.__dict__[name][index]
        return sub

    @property
    def covered(self) -> FloatArray:
        """True where one resource block carries data (SINR >= minimum), shape (n,)."""
        return self.rate_bps(np.full(self.n, 1.0 / int(self.n_rb))) > 0.0

    # -- inverse -------------------------------------------------------------------------
    def share_for_rate(self, rate_bps: ArrayLike) -> FloatArray:
        """Smallest share with r(x) >= rate (``inf`` if even x = 1 falls short), shape (n,).

        Exact: linear where the SINR is at its ceiling, the Lambert-W solution of
        x·log2(1 + a/(Γx)) = ρ where the UE is power limited (``shannon``), and the
        best CQI level's linear piece under ``cqi``.
        """
        # In units of the raw (pre-overhead) SE: ρ = r / (B·τ·(1 − OH)).
        rho = np.broadcast_to(np.asarray(rate_bps, dtype=np.float64), (self.n,)) / (
            self._hz * self.abstraction.efficiency)
        if self.abstraction.kind == "cqi":
            return self._share_for_rate_cqi(rho)
        ab = self.abstraction
        c, xp, x_max = self.sinr_ceiling, self.full_power_share, self.max_share
        c_eff = np.minimum(c, ab.saturation_sinr_linear())
        se_lin = np.where(c_eff > 0.0, np.log2(1.0 + c_eff / ab.gap_linear), 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_knee = np.where(c_eff > 0.0, xp * c / np.where(c_eff > 0.0, c_eff, 1.0), 0.0)
            x_lin_end = np.minimum(x_knee, x_max)
            x_lin = np.where(se_lin > 0.0, rho / np.where(se_lin > 0.0, se_lin, 1.0), np.inf)
        in_lin = x_lin <= x_lin_end * (1.0 + 1e-12)  # round-off at the end of the linear piece
        out = np.where(rho <= 0.0, 0.0, np.where(in_lin, np.minimum(x_lin, x_lin_end), np.inf))
        curved = (rho > 0.0) & ~in_lin & (x_knee < x_max)
        if np.any(curved):
            beta = c[curved] * xp[curved] / ab.gap_linear  # a/Γ, with a = c·x̂ the full-power SINR at x = 1
            q = rho[curved] * np.log(2.0) / beta
            x = np.full(q.shape, np.inf)
            ok = q < 1.0
            qo = q[ok]
            y = -1.0 - np.real(lambertw(-qo * np.exp(-qo), k=-1)) / qo
            # Near the branch point (q -> 1) W can land at the peak of f(y) = ln(1+y) - q y,
            # where f' = 0 and plain Newton jumps far off. f is concave, so Newton started
            # right of the root (f < 0) descends monotonically onto it: when W's estimate is
            # left of the root, start from y_b = 2(1-q)/(2q-1), where the bound
            # ln(1+y) <= y(2+y)/(2(1+y)) makes f <= 0 (q > 1/2, the only place W is that far off).
            with np.errstate(divide="ignore", invalid="ignore"):
                left = (np.log1p(y) - qo * y > 0.0) & (qo > 0.5)
                y = np.where(left, 2.0 * (1.0 - qo) / np.where(left, 2.0 * qo - 1.0, 1.0), y)
            for _ in range(6):  # polish: f(y) = ln(1+y) - q y
                slope = 1.0 / (1.0 + y) - qo
                y = y - np.where(slope < 0.0, (np.log1p(y) - qo * y) / np.where(slope < 0.0, slope, -1.0), 0.0)
            x[ok] = beta[ok] / y
            # ~sqrt(eps) accuracy of W near its branch point (weak links, q -> 1): tolerate 1e-8.
            x = np.where(x <= x_max[curved] * (1.0 + 1e-8), np.minimum(x, x_max[curved]), np.inf)
            out[curved] = x
        # A rate that r(x_max) itself meets is reachable: the closed form can miss it by the
        # round-off of log2(1 + SINR) in the rate (weak links, rate nearly flat in x).
        near = np.flatnonzero((out == np.inf) & (rho > 0.0) & (x_max > 0.0))
        if near.size:
            wanted = np.asarray(rate_bps, dtype=np.float64) * np.ones(self.n)
            reach = self.take(near).rate_bps(x_max[near]) >= wanted[near] * (1.0 - 1e-12)
            out[near[reach]] = x_max[near[reach]]
        return out

    def _share_for_rate_cqi(self, rho: FloatArray) -> FloatArray:
        from radio.link import CQI_EFFICIENCY_BPS_HZ

        ab = self.abstraction
        thr = np.maximum(ab.cqi_thresholds_linear(), ab.min_sinr_linear)[None, :]
        se = CQI_EFFICIENCY_BPS_HZ[None, :]
        c, xp = self.sinr_ceiling[:, None], self.full_power_share[:, None]
        cand = rho[:, None] / se
        with np.errstate(divide="ignore", invalid="ignore"):
            limit = np.where(c >= thr, np.minimum(1.0, xp * c / thr), -1.0)
        best = np.min(np.where(cand <= limit * (1.0 + 1e-12), np.minimum(cand, np.maximum(limit, 0.0)), np.inf), axis=1)
        return np.where(rho <= 0.0, 0.0, np.where(self.one_rb_carries, best, np.inf))
