"""Duplexing: the share of time each direction gets on a cell.

FDD cells have a band per direction, each used all the time: (1, 1). A TDD cell's
band is shared in time by a slot pattern such as ``DDDSU`` (D: downlink slot, U:
uplink slot, S: special slot). Convention for S (documented, not standardised): it
counts as 10 downlink, 2 guard and 2 uplink symbols of 14, the "10:2:2" special slot
of the DDDSU frame used in the IMT-2020 self-evaluation of 3GPP TR 37.910. So
``DDDSU`` gives downlink (3 + 10/14)/5 = 0.743 and uplink (1 + 2/14)/5 = 0.229 of the
time. In the fluid model a direction's rate is scaled by its time share, and so is the
transmitter's airtime (it radiates only in its own slots).
"""

from __future__ import annotations

__all__ = ["DUPLEX_MODES", "SPECIAL_SLOT_SYMBOLS", "tdd_time_fractions", "time_fractions"]

DUPLEX_MODES: tuple[str, ...] = ("fdd", "tdd")
SYMBOLS_PER_SLOT: int = 14
SPECIAL_SLOT_SYMBOLS: tuple[int, int, int] = (10, 2, 2)
"""(downlink, guard, uplink) symbols of an S slot."""


def tdd_time_fractions(pattern: str) -> tuple[float, float]:
    """(uplink, downlink) shares of time of a TDD slot pattern such as ``DDDSU``.

    Args:
        pattern: non-empty string of ``D``, ``U`` and ``S`` with at least one slot that
            carries each direction (an S slot carries both).

    Returns:
        (uplink fraction, downlink fraction), each in (0, 1], sum < 1 when S is present.
    """
    if not pattern or set(pattern) - set("DUS"):
        raise ValueError(f"tdd_pattern={pattern!r} out of range; allowed: a non-empty string of D, U, S")
    dl_sym, _, ul_sym = SPECIAL_SLOT_SYMBOLS
    n = len(pattern)
    special = pattern.count("S")
    ul = (pattern.count("U") + special * ul_sym / SYMBOLS_PER_SLOT) / n
    dl = (pattern.count("D") + special * dl_sym / SYMBOLS_PER_SLOT) / n
    if ul <= 0 or dl <= 0:
        raise ValueError(f"tdd_pattern={pattern!r} out of range; allowed: slots for both directions (U or S, and D or S)")
    return ul, dl


def time_fractions(duplex: str, pattern: str = "DDDSU") -> tuple[float, float]:
    """(uplink, downlink) shares of time for ``fdd`` (1, 1) or ``tdd`` with ``pattern``."""
    if duplex == "fdd":
        return 1.0, 1.0
    if duplex == "tdd":
        return tdd_time_fractions(pattern)
    raise ValueError(f"duplex={duplex!r} out of range; allowed: {', '.join(DUPLEX_MODES)}")
