"""OFDMA band sharing: fluid-flow bandwidth allocators and the NR resource grid.

Fluid model used by the engine: while the set of active flows and the channel are
unchanged, flow ``i`` gets a fraction ``x_i`` of the band ``B`` and transmits at
``rate_i = x_i · B · SE_i`` [bit/s], where ``SE_i`` is its spectral efficiency
[bit/s/Hz]. An allocator maps the active flows' state to fractions ``x`` with
``x_i >= 0`` and ``Σ x_i = 1``.

Every allocator has the signature::

    allocate(spectral_efficiency_bps_hz, remaining_bytes, average_rate_bps) -> x

with all arrays of shape (n_flows,), and is registered by name in
:data:`ALLOCATORS`. Shared rules: ``n == 0`` gives an empty array; flows with
``SE == 0`` (no coverage) get no share when at least one flow has ``SE > 0``
(except under ``equal``, which is blind to the channel); when no flow has
``SE > 0`` every allocator returns equal shares (nobody can progress, and shares
stay well defined). No NaN or inf is ever produced, even for subnormal inputs.

:class:`ResourceGrid` quantises fractions to whole NR resource blocks
(12 subcarriers each, 3GPP TS 38.211 §4.4.4.1) with largest-remainder rounding.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray

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

Allocator = Callable[[ArrayLike, ArrayLike, ArrayLike], NDArray[np.float64]]


def _validate(
    se: ArrayLike, remaining: ArrayLike, avg: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Convert to float arrays of one common 1-D shape; reject negatives / NaN."""
    arrays = []
    for name, value in (
        ("spectral_efficiency_bps_hz", se),
        ("remaining_bytes", remaining),
        ("average_rate_bps", avg),
    ):
        a = np.asarray(value, dtype=np.float64)
        if a.ndim != 1:
            raise ValueError(f"{name} must be 1-D (n_flows,), got shape {a.shape}")
        if a.size and not (np.all(a >= 0.0)):  # also rejects NaN
            raise ValueError(f"{name}={a.tolist()} out of range; allowed: >= 0, not NaN")
        arrays.append(a)
    if not (arrays[0].shape == arrays[1].shape == arrays[2].shape):
        raise ValueError(
            "shape mismatch: spectral_efficiency_bps_hz "
            f"{arrays[0].shape}, remaining_bytes {arrays[1].shape}, "
            f"average_rate_bps {arrays[2].shape}"
        )
    return arrays[0], arrays[1], arrays[2]


def _normalise_log(log_w: NDArray[np.float64], fallback: NDArray[np.bool_]) -> NDArray[np.float64]:
    """Shares ``w / Σ w`` from log-weights ``log w`` (``-inf`` = weight 0).

    Working in the log domain keeps ratios such as ``rem / SE`` exact even when
    SE is subnormal (no overflow to inf, no NaN). If every weight is 0, equal
    shares over the ``fallback`` flows (or over all flows if none is flagged).
    """
    top = np.max(log_w)
    if np.isfinite(top):
        w = np.exp(log_w - top)  # in (0, 1], the maximum is exactly 1
        return w / w.sum()
    mask = fallback if np.any(fallback) else np.ones_like(fallback)
    return mask / mask.sum()


def _log(a: NDArray[np.float64]) -> NDArray[np.float64]:
    """Natural log with log(0) = -inf and no warning."""
    with np.errstate(divide="ignore"):
        return np.log(a)


def equal(
    spectral_efficiency_bps_hz: ArrayLike,
    remaining_bytes: ArrayLike,
    average_rate_bps: ArrayLike,
) -> NDArray[np.float64]:
    """Equal shares ``x_i = 1/n``, whatever the channel (round-robin fluid limit).

    Args:
        spectral_efficiency_bps_hz: SE of each active flow [bit/s/Hz], shape (n,).
        remaining_bytes: bytes left per flow [bytes], shape (n,) (unused).
        average_rate_bps: EWMA throughput per flow [bit/s], shape (n,) (unused).

    Returns:
        bandwidth fractions, shape (n,), summing to 1.
    """
    se, _, _ = _validate(spectral_efficiency_bps_hz, remaining_bytes, average_rate_bps)
    n = se.size
    return np.full(n, 1.0 / n) if n else np.zeros(0)


def proportional_fair(
    spectral_efficiency_bps_hz: ArrayLike,
    remaining_bytes: ArrayLike,
    average_rate_bps: ArrayLike,
) -> NDArray[np.float64]:
    """Fluid limit of the proportional-fair (PF) scheduler metric.

    A slot-level PF scheduler serves the flow maximising ``m_i = r_i / R̄_i``,
    where ``r_i = B · SE_i`` is its instantaneous achievable rate and ``R̄_i`` its
    EWMA throughput (Kelly 1997; Jalali et al. VTC 2000). A fluid model has no
    slots, so here the band is shared *in proportion to the metric*:

        x_i = m_i / Σ_j m_j,    m_i = SE_i / R̄_i.

    Why this is the right fluid analogue: if ``R̄`` tracks the served rate
    (``R̄_i → x_i B SE_i``), the fixed point satisfies ``x_i ∝ 1/x_i``, i.e. equal
    shares, which is exactly the maximiser of ``Σ log(x_i B SE_i)`` (the PF
    objective) for a static channel; under fading a flow above its own average
    gets more than its fair share, as with the slotted scheduler. With no history
    (equal ``R̄``) shares are proportional to SE.

    Flows with ``R̄_i = 0`` (just started) are prioritised: as ``R̄_i → 0`` they
    take the whole band, shared among them in proportion to SE. Flows with
    ``SE_i = 0`` get 0 unless all do (then equal shares).

    Args:
        spectral_efficiency_bps_hz: SE of each active flow [bit/s/Hz], shape (n,).
        remaining_bytes: bytes left per flow [bytes], shape (n,) (unused).
        average_rate_bps: EWMA throughput R̄ per flow [bit/s], shape (n,).

    Returns:
        bandwidth fractions, shape (n,), summing to 1.
    """
    se, _, avg = _validate(spectral_efficiency_bps_hz, remaining_bytes, average_rate_bps)
    if se.size == 0:
        return np.zeros(0)
    covered = se > 0.0
    fresh = covered & (avg <= 0.0)
    if np.any(fresh):
        log_w = np.where(fresh, _log(se), -np.inf)
    else:
        log_w = np.where(covered, _log(se) - _log(np.where(covered, avg, 1.0)), -np.inf)
    return _normalise_log(log_w, covered)


def max_rate(
    spectral_efficiency_bps_hz: ArrayLike,
    remaining_bytes: ArrayLike,
    average_rate_bps: ArrayLike,
) -> NDArray[np.float64]:
    """Max-rate (opportunistic) scheduling: the whole band to the best link.

    The flow with the highest SE gets ``x = 1`` (ties: lowest index), all others 0.
    If no flow has SE > 0, equal shares.

    Args:
        spectral_efficiency_bps_hz: SE of each active flow [bit/s/Hz], shape (n,).
        remaining_bytes: bytes left per flow [bytes], shape (n,) (unused).
        average_rate_bps: EWMA throughput per flow [bit/s], shape (n,) (unused).

    Returns:
        bandwidth fractions, shape (n,), one entry 1 and the rest 0.
    """
    se, _, _ = _validate(spectral_efficiency_bps_hz, remaining_bytes, average_rate_bps)
    if se.size == 0:
        return np.zeros(0)
    if not np.any(se > 0.0):
        return np.full(se.size, 1.0 / se.size)
    x = np.zeros(se.size)
    x[int(np.argmax(se))] = 1.0
    return x


def min_time(
    spectral_efficiency_bps_hz: ArrayLike,
    remaining_bytes: ArrayLike,
    average_rate_bps: ArrayLike,
) -> NDArray[np.float64]:
    """Shares that make every covered flow finish at the same instant.

    Flow ``i`` finishes after ``T_i = 8·rem_i / (x_i B SE_i)``; equal ``T_i`` with
    ``Σ x = 1`` gives ``x_i ∝ rem_i / SE_i`` and the common time
    ``T = 8 Σ_j (rem_j / SE_j) / B``, which also minimises the time until the last
    flow ends (the makespan, i.e. the synchronous-FL upload phase). Flows with
    ``SE_i = 0`` get 0 unless all do (then equal shares); if every covered flow has
    ``rem = 0``, covered flows share equally.

    Args:
        spectral_efficiency_bps_hz: SE of each active flow [bit/s/Hz], shape (n,).
        remaining_bytes: bytes left per flow [bytes], shape (n,).
        average_rate_bps: EWMA throughput per flow [bit/s], shape (n,) (unused).

    Returns:
        bandwidth fractions, shape (n,), summing to 1.
    """
    se, rem, _ = _validate(spectral_efficiency_bps_hz, remaining_bytes, average_rate_bps)
    if se.size == 0:
        return np.zeros(0)
    covered = se > 0.0
    log_w = np.where(covered, _log(rem) - _log(np.where(covered, se, 1.0)), -np.inf)
    return _normalise_log(log_w, covered)


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
