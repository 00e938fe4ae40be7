"""Safe echoing of user text in one-line error messages.

Anything a user wrote (a key, a value, a ``--set`` item, a file name) may hold line
breaks or terminal escapes (``\\n``, ``ESC[31m``, U+2028, bidi overrides) that would
split an error over several lines or recolour the terminal, and may be huge (a 1 MB
string, a list expanded from YAML aliases). :func:`escape_controls` makes a text safe
to print on one line; :func:`short_repr` renders a value in bounded time and space
(it never builds the full ``repr`` of a big container or string).
"""

from __future__ import annotations

import itertools
import re
import reprlib
from typing import Any

#: Characters escaped in echoed text: C0/C1 controls (newline, tab, ESC, ...), the
#: Unicode line/paragraph separators ``str.splitlines`` also splits on, and the
#: direction marks/overrides that can visually reorder a line.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
#: Longest echoed value and key segment [characters].
MAX_SHOWN_CHARS = 60
MAX_KEY_CHARS = 40


def escape_controls(text: str) -> str:
    """``text`` with every control/line-breaking character as a visible escape (``\\n``, ``\\x1b``)."""
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def clip(text: str, limit: int = MAX_SHOWN_CHARS) -> str:
    """``text`` cut to ``limit`` characters (``...`` marks the cut), control characters escaped."""
    text = text if len(text) <= limit else text[: max(limit - 3, 1)] + "..."
    return escape_controls(text)


class _BoundedRepr(reprlib.Repr):
    """``reprlib.Repr`` limits: a few items per container, three levels, short strings."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxlist = self.maxtuple = self.maxset = self.maxdict = 6
        self.maxstring = MAX_SHOWN_CHARS
        self.maxlong = 40
        self.maxother = MAX_SHOWN_CHARS

    def repr_int(self, x: int, level: int) -> str:  # noqa: ARG002 - reprlib's signature
        if x.bit_length() > 128:  # str() of a > 4300-digit int raises; long ones are unreadable anyway
            return f"<{x.bit_length()}-bit integer>"
        return str(x)

    def repr_dict(self, x: dict, level: int) -> str:
        # reprlib sorts every key first; take the first few in insertion order instead.
        if not x:
            return "{}"
        if level <= 0:
            return "{...}"
        parts = [f"{self.repr1(k, level - 1)}: {self.repr1(v, level - 1)}"
                 for k, v in itertools.islice(x.items(), self.maxdict)]
        return "{" + ", ".join(parts) + (", ...}" if len(x) > self.maxdict else "}")


_REPR = _BoundedRepr()


def short_repr(value: Any, limit: int = MAX_SHOWN_CHARS) -> str:
    """A one-line ``repr`` of ``value`` of at most about ``limit`` characters, built in bounded time."""
    try:
        text = _REPR.repr(value)
    except Exception:  # noqa: BLE001 - a user object whose __repr__ fails must not hide the real error
        text = f"<{type(value).__name__}>"
    return clip(text, limit)
