"""Per-round progress output shared by the Python API (:func:`cosim.run`) and the CLI.

A :class:`ProgressReporter` shows a tqdm bar on a usable terminal and one plain log
line per round everywhere else: when the stream is not a TTY (a pipe, a file, a CI
log), when the terminal reports 0 columns (some containers and serial consoles do,
and a bar of width 0 shows nothing until the run ends) or when ``TERM=dumb``.
"""

from __future__ import annotations

import io
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any, Protocol, TextIO


class Progress(Protocol):
    """What the engine reports after each round (``cosim.engine.RoundProgress``)."""

    round: int
    rounds: int
    sim_time_s: float
    accuracy: float | None
    energy_j: float


def format_progress(p: Progress) -> str:
    """One plain log line per round: ``round 3/30  sim 412.3 s  acc 0.712  energy 1234.5 J``."""
    acc = "-" if p.accuracy is None else f"{p.accuracy:.3f}"
    return f"round {p.round}/{p.rounds}  sim {p.sim_time_s:.1f} s  acc {acc}  energy {p.energy_j:.1f} J"


def terminal_columns(stream: TextIO) -> int | None:
    """Width of the terminal behind ``stream`` in columns; ``None`` when it cannot be asked."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


def usable_tty(stream: TextIO) -> bool:
    """Whether a redrawn progress bar will be visible on ``stream``.

    False for non-TTYs, for ``TERM=dumb`` and for a terminal that reports 0 columns.
    A TTY whose size cannot be asked (no file descriptor) counts as usable.
    """
    try:
        if not stream.isatty():
            return False
    except (AttributeError, ValueError):
        return False
    if os.environ.get("TERM") == "dumb":
        return False
    return terminal_columns(stream) != 0


def cosim_command(*args: str) -> str:
    """A shell line running ``cosim ARGS...`` that works as printed, for hints shown to the user.

    ``cosim ...`` when the ``cosim`` found on ``PATH`` belongs to this interpreter (an
    activated virtual environment), else ``<this python> -m cosim ...`` (e.g.
    ``.venv/bin/python -m cosim ...`` when the environment is not activated).
    """
    found = shutil.which("cosim")
    if found is not None and Path(found).parent == Path(sys.executable).parent:
        return shlex.join(["cosim", *args])
    return shlex.join([sys.executable, "-m", "cosim", *args])


class ProgressReporter:
    """Round progress as a tqdm bar (usable terminal) or one log line per round (otherwise).

    Call it with each round's :class:`Progress`; call :meth:`close` at the end.
    ``quiet=True`` prints nothing.
    """

    def __init__(self, rounds: int, stream: TextIO, quiet: bool = False) -> None:
        self.stream = stream
        self.quiet = quiet
        self._bar: Any = None
        if not quiet and usable_tty(stream):
            from tqdm import tqdm

            self._bar = tqdm(total=rounds, unit="round", file=stream, dynamic_ncols=True)

    def __call__(self, p: Progress) -> None:
        if self.quiet:
            return
        if self._bar is None:
            print(format_progress(p), file=self.stream, flush=True)
            return
        self._bar.total = p.rounds
        self._bar.set_postfix(
            sim=f"{p.sim_time_s:.1f}s",
            acc="-" if p.accuracy is None else f"{p.accuracy:.3f}",
            energy=f"{p.energy_j:.1f}J",
            refresh=False,
        )
        self._bar.update(max(0, p.round - self._bar.n))

    def close(self) -> None:
        """Finish the bar, if any."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
