"""OFDMA band sharing: fluid-flow bandwidth allocators and the NR resource grid.

Fluid model used by the engine: while the set of active flows and the channel are
unchanged, flow ``i`` holds a fraction ``x_i`` of the band and transmits at ``r_i(x_i)``
[bit/s], a non-decreasing function of its share that is concave for the ``shannon``
link abstraction: with uplink power control a UE puts its power on its own resource
blocks, so its SINR depends on how many it holds (:class:`radio.share.ShareLinks`).
An allocator maps the active flows' state to fractions ``x`` with ``x_i >= 0`` and
``Σ x_i = 1``.

Every allocator has the signature::

    allocate(links: ShareLinks, remaining_bytes, average_rate_bps) -> x

``links`` describes the ``n`` flows' rate functions (``links.rate_bps(x)``, its inverse
``links.share_for_rate(r)``, ``links.covered``); ``remaining_bytes`` and
``average_rate_bps`` (the proportional-fair average kept by the caller) have shape
(n,). Allocators are registered by name in :data:`ALLOCATORS`. Shared rules: ``n == 0``
gives an empty array; flows that cannot carry anything on the whole band
(``r_i(1) = 0``: out of coverage) get no share when at least one flow can (except
under ``equal``, which is blind to the channel); when none can, every allocator
returns equal shares. No NaN or inf is ever produced.

:class:`ResourceGrid` quantises fractions to whole NR resource blocks
(12 subcarriers each, 3GPP TS 38.211 §4.4.4.1) with largest-remainder rounding.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from radio.share import ShareLinks

__all__ = [
    "ALLOCATORS",
    "Allocator",
    "equal",
    "proportional_fair",
    "max_rate",
    "min_time",
    "largest_remainder",
    "ResourceGrid",
    "SUBCARRIERS_PER_RB",
    "NR_MAX_RB",
]

Allocator = Callable[[ShareLinks, ArrayLike, ArrayLike], NDArray[np.float64]]

#: Bisection steps of `min_time` on the common finish time (log domain): the bracket
#: shrinks by 2**-60, far below float resolution for any realistic bracket.
MIN_TIME_STEPS = 60


def _validate(links: ShareLinks, remaining: ArrayLike, avg: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Float arrays of shape (links.n,); reject negatives / NaN with the argument's name."""
    if not isinstance(links, ShareLinks):
        raise TypeError(f"links must be a radio.share.ShareLinks, got {type(links).__name__}")
    arrays = []
    for name, value in (("remaining_bytes", remaining), ("average_rate_bps", avg)):
        a = np.asarray(value, dtype=np.float64)
        if a.ndim != 1:
            raise ValueError(f"{name} must be 1-D (n_flows,), got shape {a.shape}")
        if a.size and not np.all(a >= 0.0):  # also rejects NaN
            raise ValueError(f"{name}={a.tolist()} out of range; allowed: >= 0, not NaN")
        if a.shape != (links.n,):
            raise ValueError(f"shape mismatch: links has {links.n} flows, {name} {a.shape}")
        arrays.append(a)
    return arrays[0], arrays[1]


def _equal_over(mask: NDArray[np.bool_]) -> NDArray[np.float64]:
    mask = mask if np.any(mask) else np.ones_like(mask)
    return mask / mask.sum()


def _normalise_log(log_w: NDArray[np.float64], fallback: NDArray[np.bool_]) -> NDArray[np.float64]:
    """Shares ``w / Σ w`` from log-weights ``log w`` (``-inf`` = weight 0); equal over
    ``fallback`` (or all) if every weight is 0. Log domain: no overflow, no NaN."""
    top = np.max(log_w)
    if np.isfinite(top):
        w = np.exp(log_w - top)
        return w / w.sum()
    return _equal_over(fallback)


def _log(a: NDArray[np.float64]) -> NDArray[np.float64]:
    with np.errstate(divide="ignore"):
        return np.log(a)


def equal(links: ShareLinks, remaining_bytes: ArrayLike, average_rate_bps: ArrayLike) -> NDArray[np.float64]:
    """Equal shares ``x_i = 1/n``, whatever the channel (round-robin fluid limit).

    Args:
        links: the flows' rate functions (n flows).
        remaining_bytes: bytes left per flow, shape (n,) (unused).
        average_rate_bps: proportional-fair average per flow [bit/s], shape (n,) (unused).

    Returns:
        bandwidth fractions, shape (n,), summing to 1.
    """
    _validate(links, remaining_bytes, average_rate_bps)
    return np.full(links.n, 1.0 / links.n) if links.n else np.zeros(0)


def proportional_fair(links: ShareLinks, remaining_bytes: ArrayLike, average_rate_bps: ArrayLike) -> NDArray[np.float64]:
    """Fluid limit of the proportional-fair (PF) scheduler metric.

    A slot-level PF scheduler serves the flow maximising ``m_i = r_i / R̄_i``, its
    achievable rate over its time-averaged throughput (Kelly 1997; Jalali et al., VTC
    2000). The fluid analogue shares the band in proportion to the metric, with the
    achievable rate taken on the whole band:

        x_i = m_i / Σ_j m_j,    m_i = r_i(1) / R̄_i.

    When ``R̄`` tracks the served rate on a static channel the fixed point is
    ``x_i ∝ r_i(1) / r_i(x_i)``: equal shares for rate-linear flows (the maximiser of
    Σ log r_i), more for power-limited ones whose rate grows less than linearly with
    their share. The average ``R̄`` is kept by the caller as an EWMA in *time* with a
    time constant in seconds (:class:`cosim.engine.flows.FlowScheduler`), starting a new
    flow at its fair-share estimate r(1)/n. A flow with ``R̄_i = 0`` is treated as
    infinitely hungry: such flows share the band in proportion to r(1).

    Args:
        links: the flows' rate functions (n flows).
        remaining_bytes: bytes left per flow, shape (n,) (unused).
        average_rate_bps: average throughput R̄ per flow [bit/s], shape (n,).

    Returns:
        bandwidth fractions, shape (n,), summing to 1.
    """
    _, avg = _validate(links, remaining_bytes, average_rate_bps)
    if links.n == 0:
        return np.zeros(0)
    full = links.full_share_rate_bps
    covered = full > 0.0
    fresh = covered & (avg <= 0.0)
    if np.any(fresh):
        log_w = np.where(fresh, _log(full), -np.inf)
    else:
        log_w = np.where(covered, _log(full) - _log(np.where(covered, avg, 1.0)), -np.inf)
    return _normalise_log(log_w, covered)


def max_rate(links: ShareLinks, remaining_bytes: ArrayLike, average_rate_bps: ArrayLike) -> NDArray[np.float64]:
    """Maximum sum rate: ``max Σ r_i(x_i)`` subject to ``Σ x_i = 1``, on the RB grid.

    With concave rates the optimum is water-filling of marginal rates; on the grid of
    ``N_RB`` resource blocks it is found exactly by the greedy rule (each block to the
    flow whose rate it raises most): evaluate every flow's rate at ``k/N_RB``,
    ``k = 0..N_RB``, and keep the ``N_RB`` largest marginal gains (each flow's gains
    decrease, so the kept ones are a prefix per flow). Flows with a constant SINR
    (linear rates) reduce to the classic rule "everything to the best link"; power-limited
    flows share. Ties go to the lowest index; blocks nobody can use (zero gain) go to
    covered flows in index order (they carry nothing extra and cost no power).

    Args:
        links: the flows' rate functions (n flows).
        remaining_bytes: bytes left per flow, shape (n,) (unused).
        average_rate_bps: proportional-fair average per flow [bit/s], shape (n,) (unused).

    Returns:
        bandwidth fractions, multiples of 1/N_RB, shape (n,), summing to 1.
    """
    _validate(links, remaining_bytes, average_rate_bps)
    n, n_rb = links.n, int(links.n_rb)
    if n == 0:
        return np.zeros(0)
    covered = links.full_share_rate_bps > 0.0
    if not np.any(covered):
        return np.full(n, 1.0 / n)
    grid = np.broadcast_to(np.arange(n_rb + 1) / n_rb, (n, n_rb + 1))
    gains = np.diff(links.rate_bps(grid), axis=1)  # (n, N_RB), >= 0
    # Gains equal up to float round-off are ties (lowest index first): compare them on
    # 12 significant digits relative to the largest gain.
    scale = max(float(np.max(gains)), 1e-300)
    gains = np.where(covered[:, None], np.round(np.maximum(gains, 0.0) / scale, 12), -1.0)
    top = np.argsort(-gains.ravel(), kind="stable")[:n_rb]
    return np.bincount(top // n_rb, minlength=n) / n_rb


def min_time(links: ShareLinks, remaining_bytes: ArrayLike, average_rate_bps: ArrayLike) -> NDArray[np.float64]:
    """Shares that make every covered flow finish at the same instant T (minimal makespan).

    Flow ``i`` needs ``r_i(x_i) = 8·rem_i / T``; its smallest such share
    ``x_i(T) = r_i⁻¹(8·rem_i/T)`` decreases with ``T``, so the common finish time is the
    root of ``Σ x_i(T) = 1``, found by bisection on log T. The bracket: rates are at
    most linear in the share (concavity), so the linear extrapolation from the SINR
    ceiling gives the closed-form lower bound ``T_lin = 8 Σ rem_i / r_i'(0)`` (the exact
    answer when no flow is power limited, then no bisection runs); equal shares give the
    upper bound. The final shares ``x(T_hi)`` sum to at most 1; the band left over is filled
    by interpolating towards ``x(T_lo)`` (more share never lowers a rate). Flows with ``r_i(1) = 0`` get 0 unless all do (then
    equal shares); flows with ``rem = 0`` get 0 (covered flows share equally if all have 0).

    Args:
        links: the flows' rate functions (n flows).
        remaining_bytes: bytes left per flow, shape (n,).
        average_rate_bps: proportional-fair average per flow [bit/s], shape (n,) (unused).

    Returns:
        bandwidth fractions, shape (n,), summing to 1.
    """
    rem, _ = _validate(links, remaining_bytes, average_rate_bps)
    n = links.n
    if n == 0:
        return np.zeros(0)
    covered = links.full_share_rate_bps > 0.0
    live = covered & (rem > 0.0)
    if not np.any(live):
        return _equal_over(covered)
    bits = 8.0 * rem

    def shares(t_s: float) -> NDArray[np.float64]:
        return np.where(live, links.share_for_rate(np.where(live, bits / t_s, 0.0)), 0.0)

    # Slope at the origin (SINR at its ceiling): r_i(x) <= x * slope_i.
    slope = links.ceiling_rate_bps
    t_lo = float(np.sum(bits[live] / slope[live]))
    x = shares(t_lo)
    total = float(np.sum(x))
    if np.isfinite(total) and total <= 1.0 + 1e-12:
        return x / total
    equal_rate = links.rate_bps(np.full(n, 1.0 / np.count_nonzero(live)))
    t_hi = float(np.max(bits[live] / equal_rate[live]))
    lo, hi = math.log(t_lo), math.log(max(t_hi, t_lo))
    for _ in range(MIN_TIME_STEPS):
        mid = 0.5 * (lo + hi)
        if np.sum(shares(math.exp(mid))) > 1.0:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-13:
            break
    x = shares(math.exp(hi))
    total = float(np.sum(x))
    if not (np.isfinite(total) and total > 0.0):  # cannot happen for a valid bracket; stay well defined
        return _equal_over(live)
    # Fill the band between the two brackets: Σ x(T_lo) > 1 >= Σ x(T_hi), and T_lo, T_hi
    # agree to ~1e-13, so interpolating moves the flows whose share hardly depends on T by
    # ~1e-13 and gives the rest to a flow whose rate is nearly flat in its share (scaling
    # every share by 1/Σ instead shortens the others' times by the whole gap).
    x_lo = np.minimum(shares(math.exp(lo)), 1.0)
    total_lo = float(np.sum(x_lo))
    if np.isfinite(total_lo) and total_lo > 1.0 >= total:
        x = x + (1.0 - total) / (total_lo - total) * (x_lo - x)
        total = float(np.sum(x))
    return x / total


ALLOCATORS: dict[str, Allocator] = {
    "equal": equal,
    "proportional_fair": proportional_fair,
    "max_rate": max_rate,
    "min_time": min_time,
}
"""Bandwidth allocators by scenario name."""


# ---------------------------------------------------------------- resource grid
SUBCARRIERS_PER_RB: int = 12
"""N_sc^RB, subcarriers per resource block (3GPP TS 38.211 §4.4.4.1)."""

NR_MAX_RB: dict[tuple[int, int], int] = {
    # (channel bandwidth [Hz], SCS [Hz]) -> N_RB, 3GPP TS 38.101-1 Table 5.3.2-1 (FR1)
    **{(int(b * 1e6), 15_000): n for b, n in (
        (5, 25), (10, 52), (15, 79), (20, 106), (25, 133), (30, 160),
        (35, 188), (40, 216), (45, 242), (50, 270))},
    **{(int(b * 1e6), 30_000): n for b, n in (
        (5, 11), (10, 24), (15, 38), (20, 51), (25, 65), (30, 78), (35, 92),
        (40, 106), (45, 119), (50, 133), (60, 162), (70, 189), (80, 217),
        (90, 245), (100, 273))},
    **{(int(b * 1e6), 60_000): n for b, n in (
        (10, 11), (15, 18), (20, 24), (25, 31), (30, 38), (35, 44), (40, 51),
        (45, 58), (50, 65), (60, 79), (70, 93), (80, 107), (90, 121), (100, 135))},
}
"""Maximum transmission bandwidth configuration N_RB for FR1 channel bandwidths."""

GUARD_FACTOR: float = 0.9
"""Fallback occupancy for (bandwidth, SCS) pairs not in :data:`NR_MAX_RB`:
``N_RB = floor(0.9 · B / (12 · SCS))`` (≈ 90 % spectrum utilisation, below the
table's 92–98 %, i.e. conservative)."""


def largest_remainder(fractions: ArrayLike, n_units: int) -> NDArray[np.int64]:
    """Round ``fractions · n_units`` to integers summing exactly to ``n_units``.

    Hamilton's largest-remainder method: every flow gets ``floor(x_i n)``, and the
    units left over go one each to the largest remainders (ties: lowest index).
    Fractions are normalised by their sum first. A zero fraction gets 0 units, and
    ``|blocks_i − x_i n| < 1`` for every flow.

    Args:
        fractions: non-negative shares, shape (n,), sum > 0 (normally 1).
        n_units: number of units to distribute, >= 0.

    Returns:
        integer units per flow, shape (n,), summing to ``n_units``.
    """
    x = np.asarray(fractions, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"fractions must be 1-D (n_flows,), got shape {x.shape}")
    if x.size == 0:
        return np.zeros(0, dtype=np.int64)
    total = x.sum()
    if not (np.all(x >= 0.0) and math.isfinite(total) and total > 0.0):
        raise ValueError(f"fractions={x.tolist()} out of range; allowed: >= 0 with sum > 0")
    quota = x / total * n_units
    units = np.floor(quota).astype(np.int64)
    rem = quota - units
    rem[x == 0.0] = -1.0  # never receives a leftover unit
    left = n_units - int(units.sum())
    order = np.argsort(-rem, kind="stable")
    if left > 0:
        units[order[:left]] += 1
    elif left < 0:  # only from round-off in the normalisation
        rev = order[::-1]
        units[rev[units[rev] > 0][:-left]] -= 1
    return units


class ResourceGrid:
    """NR carrier divided into resource blocks of 12 subcarriers.

    Args:
        bandwidth_hz: channel bandwidth B [Hz], > 0.
        subcarrier_spacing_hz: SCS [Hz], > 0 (15e3, 30e3, 60e3 in FR1).

    Attributes:
        n_resource_blocks: N_RB from TS 38.101-1 Table 5.3.2-1 when the pair is
            listed there, else ``floor(0.9 · B / (12 · SCS))``.
        rb_bandwidth_hz: bandwidth of one RB, 12 · SCS [Hz].
    """

    def __init__(self, bandwidth_hz: float, subcarrier_spacing_hz: float = 30e3) -> None:
        b, scs = float(bandwidth_hz), float(subcarrier_spacing_hz)
        if not (math.isfinite(b) and b > 0.0):
            raise ValueError(f"bandwidth_hz={bandwidth_hz!r} out of range; allowed: > 0")
        if not (math.isfinite(scs) and scs > 0.0):
            raise ValueError(
                f"subcarrier_spacing_hz={subcarrier_spacing_hz!r} out of range; allowed: > 0"
            )
        self.bandwidth_hz = b
        self.subcarrier_spacing_hz = scs
        self.rb_bandwidth_hz = SUBCARRIERS_PER_RB * scs
        key = (int(round(b)), int(round(scs)))
        exact = abs(b - key[0]) < 1e-6 and abs(scs - key[1]) < 1e-6
        if exact and key in NR_MAX_RB:
            n_rb = NR_MAX_RB[key]
        else:
            n_rb = int(math.floor(GUARD_FACTOR * b / self.rb_bandwidth_hz))
        if n_rb < 1:
            raise ValueError(
                f"bandwidth_hz={b} with subcarrier_spacing_hz={scs} holds no resource "
                f"block; allowed: bandwidth_hz >= {self.rb_bandwidth_hz / GUARD_FACTOR:.0f}"
            )
        self.n_resource_blocks: int = n_rb

    def __repr__(self) -> str:
        return (f"ResourceGrid(bandwidth_hz={self.bandwidth_hz}, subcarrier_spacing_hz="
                f"{self.subcarrier_spacing_hz}, n_resource_blocks={self.n_resource_blocks})")

    def to_resource_blocks(self, fractions: ArrayLike) -> NDArray[np.int64]:
        """Quantise bandwidth fractions to whole RBs (largest remainder).

        Args:
            fractions: allocator output, shape (n,), non-negative, sum 1.

        Returns:
            RBs per flow, shape (n,), int, summing to ``n_resource_blocks``; a
            flow with fraction 0 gets 0 (with more flows than RBs, some flows
            with a positive fraction also get 0).
        """
        return largest_remainder(fractions, self.n_resource_blocks)

    def effective_fractions(self, fractions: ArrayLike) -> NDArray[np.float64]:
        """Fractions actually realisable on the grid, ``blocks / n_resource_blocks``.

        Args:
            fractions: allocator output, shape (n,), non-negative, sum 1.

        Returns:
            quantised fractions, shape (n,), summing to 1.
        """
        return self.to_resource_blocks(fractions) / self.n_resource_blocks
