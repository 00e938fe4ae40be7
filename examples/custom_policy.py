"""A custom selection policy for cosim: the devices with the most battery left.

Use it without touching cosim, by import path (the module must be importable, e.g.
run from the repository root with ``python -m cosim`` or put it on ``PYTHONPATH``)::

    fl: {selection: "examples.custom_policy:BatteryFirst"}

or by name once a package declares it as an entry point::

    [project.entry-points."cosim.policies"]
    battery_first = "examples.custom_policy:BatteryFirst"

Check it like a built-in: ``cosim.checks.check_policy(BatteryFirst)``.
"""

from __future__ import annotations

import numpy as np


class BatteryFirst:
    """Each round, the ``k`` alive devices with the most battery left [J] (ties: lower id)."""

    def __init__(self, n_devices: int) -> None:
        self.n_devices = n_devices

    def select(self, ctx, k: int) -> np.ndarray:
        """``ctx`` is a ``cosim.engine.SelectionContext`` (arrays over all devices)."""
        alive = np.flatnonzero(ctx.alive)
        order = np.lexsort((alive, -ctx.battery_j[alive]))  # most battery first, then lower id
        return np.sort(alive[order[:k]])
