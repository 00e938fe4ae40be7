"""Random channel components: correlated log-normal shadowing and block fading.

Both keep one state value per link, shape (n_cells, n_devices) by convention (any
shape works), and draw only from the ``numpy.random.Generator`` they are given.

* :class:`GudmundsonShadowing` — shadow fading [dB] that evolves with device
  displacement as a first-order autoregressive process (Gudmundson, "Correlation
  model for shadow fading in mobile radio systems", Electron. Lett. 27(23), 1991):
  ρ = exp(−Δd / d_corr). Sign convention: the shadow value is a *loss* added to the
  path loss (positive = weaker signal); being zero-mean Gaussian, the sign is a
  convention only, but :mod:`radio.link` relies on it.
* :class:`BlockFading` — small-scale power gain |h|² with unit mean, constant within
  a coherence interval and redrawn independently by :meth:`BlockFading.redraw`.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from radio.constants import db_to_linear

__all__ = ["GudmundsonShadowing", "BlockFading", "FADING_MODELS", "effective_subband_gain"]

FloatArray = NDArray[np.float64]

FADING_MODELS: tuple[str, ...] = ("rayleigh", "rician", "none")
"""Names accepted by :class:`BlockFading`."""


def _check_rng(rng: object) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return rng


def _check_shape(shape: object) -> tuple[int, ...]:
    if shape is None:
        raise ValueError("shape is required, e.g. (n_cells, n_devices)")
    shp = tuple(int(s) for s in np.atleast_1d(np.asarray(shape, dtype=np.int64)))
    if any(s < 0 for s in shp):
        raise ValueError(f"shape={shape!r} has a negative dimension")
    return shp


class GudmundsonShadowing:
    """Spatially correlated log-normal shadowing per link.

    The state is kept normalised, u ~ N(0, 1) per link, and the shadow is
    s = σ·u [dB]. On a move of Δd metres u follows the AR(1) recursion
    u' = ρ·u + sqrt(1 − ρ²)·z with ρ = exp(−Δd / d_corr) and z ~ N(0, 1), which keeps
    the marginal s ~ N(0, σ²) exactly stationary and gives
    corr(s(x), s(x + Δd)) = exp(−Δd / d_corr).

    Args:
        std_db: shadow-fading standard deviation σ_SF [dB], >= 0, broadcastable to
            ``shape`` (e.g. (n_cells, n_devices) from ``model.shadow_std_db(los)``).
        decorrelation_m: decorrelation distance d_corr [m], > 0, broadcastable to
            ``shape``.
        shape: link-array shape, conventionally (n_cells, n_devices).
        rng: generator for every draw of this process.
    """

    def __init__(
        self,
        std_db: ArrayLike,
        decorrelation_m: ArrayLike,
        shape: tuple[int, ...],
        rng: np.random.Generator,
    ) -> None:
        self.shape = _check_shape(shape)
        self._rng = _check_rng(rng)
        self.set_params(std_db, decorrelation_m)
        self._u = self._rng.standard_normal(self.shape)

    def set_params(self, std_db: ArrayLike, decorrelation_m: ArrayLike) -> None:
        """Replace σ_SF and d_corr (e.g. after a LOS/NLOS change of some links).

        The normalised state u is kept, so a link's shadow is rescaled to the new σ
        immediately (s = σ_new·u) and stays N(0, σ_new²) distributed.

        Args:
            std_db: σ_SF [dB], >= 0, broadcastable to ``shape``.
            decorrelation_m: d_corr [m], > 0, broadcastable to ``shape``.

        Raises:
            ValueError: negative/non-finite σ, non-positive d_corr, or a shape that
                does not broadcast to ``shape``.
        """
        std = np.asarray(std_db, dtype=np.float64)
        dcorr = np.asarray(decorrelation_m, dtype=np.float64)
        if not np.all(np.isfinite(std)) or np.any(std < 0.0):
            raise ValueError(f"std_db must be finite and >= 0 dB, got min {np.min(std)!r}")
        if not np.all(np.isfinite(dcorr)) or np.any(dcorr <= 0.0):
            raise ValueError(f"decorrelation_m must be finite and > 0 m, got min {np.min(dcorr)!r}")
        try:
            self._std_db = np.broadcast_to(std, self.shape)
            self._dcorr_m = np.broadcast_to(dcorr, self.shape)
        except ValueError:
            raise ValueError(
                f"std_db shape {std.shape} / decorrelation_m shape {dcorr.shape} "
                f"do not broadcast to {self.shape}"
            ) from None

    @property
    def std_db(self) -> FloatArray:
        """Current σ_SF [dB], shape ``shape`` (read-only view)."""
        return self._std_db

    @property
    def value_db(self) -> FloatArray:
        """Current shadow loss s [dB] (positive = more loss), shape ``shape``."""
        return self._std_db * self._u

    def step(self, displacement_m: ArrayLike) -> FloatArray:
        """Advance the process after the devices moved.

        Args:
            displacement_m: distance each device moved since the last step [m],
                >= 0, shape (n_devices,) (broadcast over cells) or any shape
                broadcastable to ``shape``.

        Returns:
            the new shadow loss [dB], shape ``shape``.
        """
        dd = np.asarray(displacement_m, dtype=np.float64)
        if np.any(dd < 0.0):
            raise ValueError(f"displacement_m must be >= 0 m, got min {np.min(dd)!r}")
        rho = np.exp(-dd / self._dcorr_m)
        z = self._rng.standard_normal(self.shape)
        self._u = rho * self._u + np.sqrt(1.0 - rho * rho) * z
        return self.value_db

    def step_columns(self, columns: NDArray[np.int64], displacement_m: ArrayLike, std_db: ArrayLike,
                     decorrelation_m: ArrayLike) -> FloatArray:
        """Set σ_SF and d_corr of the links in ``columns`` (last axis) and advance only them.

        For lazily updated devices: ``displacement_m`` is the path length since their last
        step [m], shape (len(columns),); ``std_db``/``decorrelation_m`` have shape
        (shape[0], len(columns)). Over one displacement Δd the AR(1) step is the same
        distribution as several steps adding up to Δd while d_corr is unchanged.

        Returns:
            the new shadow loss [dB] of those links, shape (shape[0], len(columns)).
        """
        if not self._std_db.flags.writeable:  # broadcast views: own full copies from now on
            self._std_db = np.array(self._std_db)
            self._dcorr_m = np.array(self._dcorr_m)
        self._std_db[:, columns] = std_db
        self._dcorr_m[:, columns] = decorrelation_m
        rho = np.exp(-np.asarray(displacement_m, dtype=np.float64) / np.asarray(decorrelation_m, dtype=np.float64))
        z = self._rng.standard_normal((self.shape[0], len(columns)))
        u = rho * self._u[:, columns] + np.sqrt(1.0 - rho * rho) * z
        self._u[:, columns] = u
        return self._std_db[:, columns] * u


class BlockFading:
    """Block fading power gain |h|² with E[|h|²] = 1, one value per link.

    * ``"rayleigh"``: h ~ CN(0, 1), so |h|² ~ Exponential(1).
    * ``"rician"``: h = sqrt(K/(K+1)) + sqrt(1/(K+1))·CN(0, 1), K = 10^(k_factor_db/10);
      2(K+1)·|h|² is noncentral χ² with 2 degrees of freedom and noncentrality 2K.
      Only line-of-sight links have a specular component: when ``los`` is given
      (construction or :meth:`redraw`), NLOS links get K = 0, i.e. Rayleigh (TR 38.901
      Table 7.5-6 gives K for LOS only). K may differ per link (``k_factor_los_db``).
    * ``"none"``: |h|² = 1.

    Frequency-selective block fading: with ``subbands`` = N > 1 every link draws N
    independent subband gains g_k per block (the band split into N coherence
    bandwidths) and :attr:`gain_linear` is their *capacity-equivalent* effective gain

        g_eff = ((Π_k (1 + γ·g_k))^(1/N) − 1) / γ,

    so that log2(1 + γ·g_eff) = (1/N)·Σ_k log2(1 + γ·g_k): the link's spectral
    efficiency is the mean of the per-subband SEs at the reference SNR γ given to
    :meth:`redraw` (the link's noise-limited full-band SNR; exact for Shannon without
    gap or cap at that SNR, an approximation under interference, gap or cap). Without
    a reference SNR g_eff is the mean subband gain, the γ → 0 limit. E[g_eff] <= 1 and
    its spread shrinks with N: a 20–40 MHz band no longer fades as one.

    Args:
        model: one of ``FADING_MODELS``.
        k_factor_db: Rician K-factor [dB] of every link (used only by ``"rician"``
            when ``k_factor_los_db`` is None), in [-50, 50].
        shape: link-array shape, conventionally (n_cells, n_devices); required.
        rng: generator for every draw; required.
        los: LOS state per link (bool, broadcastable to ``shape``), or None (every
            link Rician).
        k_factor_los_db: per-link K [dB] of LOS links, broadcastable to ``shape``,
            each in [-50, 50]; overrides ``k_factor_db``.
        subbands: number of independently fading subbands N, in [1, 1024].
        reference_snr: reference SNR γ [linear] of the first block (see above).
    """

    def __init__(
        self,
        model: str = "rayleigh",
        k_factor_db: float = 9.0,
        shape: tuple[int, ...] | None = None,
        rng: np.random.Generator | None = None,
        *,
        los: ArrayLike | None = None,
        k_factor_los_db: ArrayLike | None = None,
        subbands: int = 1,
        reference_snr: ArrayLike | None = None,
    ) -> None:
        if model not in FADING_MODELS:
            raise ValueError(f"fading model {model!r} unknown; allowed: {', '.join(FADING_MODELS)}")
        k_db = np.asarray(k_factor_db if k_factor_los_db is None else k_factor_los_db, dtype=np.float64)
        name = "k_factor_db" if k_factor_los_db is None else "k_factor_los_db"
        if not np.all(np.isfinite(k_db)) or np.any(k_db < -50.0) or np.any(k_db > 50.0):
            shown = k_factor_db if k_factor_los_db is None else f"min {np.min(k_db)!r}, max {np.max(k_db)!r}"
            raise ValueError(f"{name}={shown!r} outside allowed range [-50, 50] dB")
        if isinstance(subbands, bool) or not isinstance(subbands, (int, np.integer)) or not 1 <= subbands <= 1024:
            raise ValueError(f"subbands={subbands!r} out of range; allowed: integer in [1, 1024]")
        self.model = model
        self.subbands = int(subbands)
        self.shape = _check_shape(shape)
        self._rng = _check_rng(rng)
        try:
            self.k_factor_db = np.broadcast_to(k_db, self.shape)
        except ValueError:
            raise ValueError(f"{name} shape {k_db.shape} does not broadcast to {self.shape}") from None
        self._k_linear = db_to_linear(self.k_factor_db)
        self._gain = self.redraw(los, reference_snr)

    @property
    def gain_linear(self) -> FloatArray:
        """Current power gain |h|² [linear, unit mean], shape ``shape``."""
        return self._gain

    def redraw(self, los: ArrayLike | None = None, reference_snr: ArrayLike | None = None) -> FloatArray:
        """Draw a new independent block (call once per coherence interval).

        Args:
            los: current LOS state per link (bool, broadcastable to ``shape``); NLOS
                links are drawn Rayleigh. None: every link uses its K.
            reference_snr: per-link reference SNR γ [linear, >= 0], broadcastable to
                ``shape``, for the subband abstraction (ignored when ``subbands`` = 1).

        Returns:
            the new (effective) power gain [linear], shape ``shape``.
        """
        draw_shape = self.shape if self.subbands == 1 else (self.subbands, *self.shape)
        if self.model == "none":
            gain = np.ones(draw_shape)
        elif self.model == "rayleigh":
            gain = self._rng.standard_exponential(draw_shape)
        else:
            k = self._k_linear if los is None else np.where(np.asarray(los, dtype=bool), self._k_linear, 0.0)
            los_amplitude = np.sqrt(k / (k + 1.0))
            scatter_std = np.sqrt(1.0 / (2.0 * (k + 1.0)))  # per real dimension
            re = los_amplitude + scatter_std * self._rng.standard_normal(draw_shape)
            im = scatter_std * self._rng.standard_normal(draw_shape)
            gain = re * re + im * im
        if self.subbands > 1:
            gain = effective_subband_gain(gain, reference_snr)
        self._gain = gain
        return gain

    def redraw_columns(self, columns: NDArray[np.int64], los: ArrayLike | None = None,
                       reference_snr: ArrayLike | None = None) -> FloatArray:
        """Draw a new block for the links in ``columns`` (last axis) only; ``los`` and
        ``reference_snr`` have shape (shape[0], len(columns)). Returns their new gains."""
        cols_shape = (self.shape[0], len(columns))
        draw_shape = cols_shape if self.subbands == 1 else (self.subbands, *cols_shape)
        if self.model == "none":
            gain = np.ones(draw_shape)
        elif self.model == "rayleigh":
            gain = self._rng.standard_exponential(draw_shape)
        else:
            k_all = self._k_linear[:, columns]
            k = k_all if los is None else np.where(np.asarray(los, dtype=bool), k_all, 0.0)
            los_amplitude = np.sqrt(k / (k + 1.0))
            scatter_std = np.sqrt(1.0 / (2.0 * (k + 1.0)))
            re = los_amplitude + scatter_std * self._rng.standard_normal(draw_shape)
            im = scatter_std * self._rng.standard_normal(draw_shape)
            gain = re * re + im * im
        if self.subbands > 1:
            gain = effective_subband_gain(gain, reference_snr)
        if not self._gain.flags.writeable:
            self._gain = np.array(self._gain)
        self._gain[:, columns] = gain
        return gain


def effective_subband_gain(subband_gain: ArrayLike, reference_snr: ArrayLike | None = None) -> FloatArray:
    """Capacity-equivalent gain of N subband gains: ((Π(1 + γ g_k))^(1/N) − 1)/γ.

    Args:
        subband_gain: per-subband power gains [linear, >= 0], shape (N, *link_shape).
        reference_snr: reference SNR γ [linear, >= 0], broadcastable to link_shape, or
            None for the γ → 0 limit, the mean gain.

    Returns:
        effective gain [linear], shape link_shape; log2(1 + γ·g_eff) equals the mean
        over subbands of log2(1 + γ·g_k).
    """
    g = np.asarray(subband_gain, dtype=np.float64)
    mean_gain = g.mean(axis=0)
    if reference_snr is None:
        return mean_gain
    snr = np.broadcast_to(np.asarray(reference_snr, dtype=np.float64), mean_gain.shape)
    if np.any(~(snr >= 0.0)):
        raise ValueError(f"reference_snr must be >= 0, got min {np.min(snr)!r}")
    mean_log = np.mean(np.log1p(snr * g), axis=0)
    # γ → 0 (or a link so weak that expm1 loses precision): the mean gain is the limit.
    tiny = snr * mean_gain < 1e-12
    with np.errstate(divide="ignore", invalid="ignore"):
        eff = np.where(tiny, mean_gain, np.expm1(mean_log) / np.where(tiny, 1.0, snr))
    return eff
