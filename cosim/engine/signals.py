"""Stop signals: Ctrl-C (SIGINT), SIGTERM and SIGHUP end a run cleanly.

While a run is set up (data, models, the population) a first signal aborts the set-up
at once (:class:`Interrupted`; nothing of the run is written). Once the simulation runs,
a first signal asks it to stop at the next round boundary (the next safe point in the
non-sync modes); the engine then flushes the traces and writes a checkpoint, even with
``output.checkpoint_every: 0``, and raises ``RunInterrupted``. A second signal aborts at
once (:class:`Interrupted`). The exit status is 128 + the signal number: 130 (INT),
143 (TERM), 129 (HUP).

Handlers are installed only in the main thread (a grid worker thread keeps the
process's handlers) and the previous ones are restored afterwards.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

#: What ``cosim run`` / ``cosim.run`` handle; ``run_simulation`` on its own handles SIGINT only.
ALL_STOP_SIGNALS: tuple[int, ...] = tuple(
    s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None)


def signal_name(signum: int) -> str:
    """``"SIGTERM"`` for 15, and so on."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class Interrupted(KeyboardInterrupt):
    """A run aborted by a signal before it could stop cleanly (set-up, or a second signal)."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_status = 128 + signum


class StopSignals:
    """Context manager: route `signals` to the simulation attached with `attach`."""

    def __init__(self, signals: tuple[int, ...] = (signal.SIGINT,)) -> None:
        self.signals = tuple(signals)
        self.sim: Any = None
        self.received: int | None = None  # the first signal
        self._previous: dict[int, Any] = {}

    def attach(self, sim: Any) -> None:
        """From now on a first signal stops `sim` at its next round boundary."""
        self.sim = sim
        if self.received is not None:  # arrived between set-up and now
            sim.stop_requested = True

    def _handle(self, signum: int, frame) -> None:
        name = signal_name(signum)
        if self.received is not None:
            raise Interrupted(signum, f"aborted by a second stop signal ({name})")
        self.received = signum
        if self.sim is None:
            raise Interrupted(signum, f"interrupted by {name} during set-up; nothing was run")
        self.sim.stop_requested = True
        again = "Ctrl-C" if signum == signal.SIGINT else name
        print(f"\nstopping after this round ({again} again to abort now)", flush=True)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in self.signals:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
