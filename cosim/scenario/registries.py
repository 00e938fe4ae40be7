"""Names the scenario may use for pluggable parts, looked up lazily.

The radio and learning layers own their registries (dicts of name -> class). The
scenario schema only needs their *names*, and must work while a layer is still
missing (e.g. ``python -m cosim validate`` on a partial checkout), so each lookup
imports the owning module on demand and falls back to a fixed tuple when that module
(or its registry attribute) does not exist. An import error raised *inside* an
existing module is not swallowed: that is a bug to see, not a reason to guess.
"""

from __future__ import annotations

import importlib
from typing import Final

PATHLOSS_FALLBACK: Final = ("free_space", "log_distance", "uma", "umi", "rma")
PROFILES_FALLBACK: Final = ("high", "mid", "low", "iot")
MOBILITY_FALLBACK: Final = ("static", "random_waypoint", "gauss_markov", "street_grid")
ALLOCATORS_FALLBACK: Final = ("equal", "proportional_fair", "max_rate", "min_time")
ALGORITHMS_FALLBACK: Final = ("fedavg", "local", "pfl_tps")

#: Fixed vocabularies (no registry module owns them yet).
DATASETS: Final = ("fashion_mnist", "synthetic")
PARTITIONS: Final = ("iid", "dirichlet", "pathological", "quantity_skew")
SELECTIONS: Final = ("random", "round_robin", "channel_aware", "energy_aware", "deadline_aware")


def registry_names(module: str, attribute: str, fallback: tuple[str, ...]) -> tuple[str, ...]:
    """Names registered in ``module.attribute``, or ``fallback`` if it does not exist yet.

    ``module`` is a dotted module path (``"radio.pathloss"``), ``attribute`` the name of
    a mapping inside it whose keys are the registered names (kept in their order).
    """
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        # Only "this module (or a parent package) does not exist" means "not written yet".
        missing = exc.name or ""
        if module == missing or module.startswith(missing + "."):
            return fallback
        raise
    registry = getattr(mod, attribute, None)
    if registry is None:
        return fallback
    return tuple(str(name) for name in registry)


def pathloss_models() -> tuple[str, ...]:
    """Path-loss model names (``radio.pathloss.MODELS``)."""
    return registry_names("radio.pathloss", "MODELS", PATHLOSS_FALLBACK)


def compute_profiles() -> tuple[str, ...]:
    """Device hardware profile names (``radio.compute.PROFILES``)."""
    return registry_names("radio.compute", "PROFILES", PROFILES_FALLBACK)


def mobility_models() -> tuple[str, ...]:
    """Mobility model names (``radio.mobility.MOBILITY``)."""
    return registry_names("radio.mobility", "MOBILITY", MOBILITY_FALLBACK)


def allocators() -> tuple[str, ...]:
    """Bandwidth allocator names (``radio.ofdma.ALLOCATORS``)."""
    return registry_names("radio.ofdma", "ALLOCATORS", ALLOCATORS_FALLBACK)


def algorithms() -> tuple[str, ...]:
    """FL algorithm names (``learning.algorithms.ALGORITHMS``)."""
    return registry_names("learning.algorithms", "ALGORITHMS", ALGORITHMS_FALLBACK)


STALE_UPDATE_FALLBACK: Final = ("fedavg", "fedprox", "pfl_tps")


def stale_update_algorithms() -> tuple[str, ...]:
    """Algorithms that can apply stale updates (``Algorithm.stale_updates``): the ones that
    run in the asynchronous server modes."""
    try:
        from learning.algorithms import ALGORITHMS
    except ModuleNotFoundError:
        return STALE_UPDATE_FALLBACK
    return tuple(name for name, cls in ALGORITHMS.items() if getattr(cls, "stale_updates", False))
