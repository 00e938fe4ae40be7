"""Names the scenario may use for pluggable parts, looked up lazily; plugins.

The radio and learning layers own their registries (dicts of name -> class). The
scenario schema only needs their *names*, and must work while a layer is still
missing (e.g. ``python -m cosim validate`` on a partial checkout), so each lookup
imports the owning module on demand and falls back to a fixed tuple when that module
(or its registry attribute) does not exist. An import error raised *inside* an
existing module is not swallowed: that is a bug to see, not a reason to guess.

Plugins (see :data:`KINDS`): wherever a scenario names a pluggable part it may also
give

- an import path ``"package.module:Name"`` (any importable module), or
- the name of an installed entry point in the kind's group (``cosim.algorithms``,
  ``cosim.policies``, ``cosim.allocators``, ``cosim.mobility``, ``cosim.pathloss``,
  ``cosim.datasets``, ``cosim.models``), declared by the plugin's package::

      [project.entry-points."cosim.policies"]
      greedy_battery = "mypkg.policies:GreedyBattery"

:func:`resolve` loads the object and adds it to the owning layer's registry under the
name the scenario used, so every later lookup by that name (in the engine, or inside
the learning layer for models and datasets) finds it. Built-in names win over entry
points of the same name. A name that cannot be resolved is one line naming what is
allowed. :mod:`cosim.checks` tests a plugin against the contract built-ins follow.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
from dataclasses import dataclass
from typing import Any, Final

PATHLOSS_FALLBACK: Final = ("free_space", "log_distance", "uma", "umi", "rma")
PROFILES_FALLBACK: Final = ("high", "mid", "low", "iot")
MOBILITY_FALLBACK: Final = ("static", "random_waypoint", "gauss_markov", "street_grid")
ALLOCATORS_FALLBACK: Final = ("equal", "proportional_fair", "max_rate", "min_time")
ALGORITHMS_FALLBACK: Final = ("fedavg", "local", "pfl_tps")

#: Fixed vocabularies (no registry module owns them yet).
DATASETS: Final = ("fashion_mnist", "cifar10", "synthetic")
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


# ----------------------------------------------------------------------------- plugins
@dataclass(frozen=True)
class Kind:
    """One pluggable part: where its registry lives and the entry-point group of its plugins."""

    module: str
    attribute: str
    group: str
    fallback: tuple[str, ...]


#: Pluggable parts by kind. ``fallback``: the built-in names when the owning module cannot be imported.
KINDS: Final[dict[str, Kind]] = {
    "algorithms": Kind("learning.algorithms", "ALGORITHMS", "cosim.algorithms", ALGORITHMS_FALLBACK),
    "policies": Kind("cosim.engine.policies", "SELECTION_POLICIES", "cosim.policies", SELECTIONS),
    "allocators": Kind("radio.ofdma", "ALLOCATORS", "cosim.allocators", ALLOCATORS_FALLBACK),
    "mobility": Kind("radio.mobility", "MOBILITY", "cosim.mobility", MOBILITY_FALLBACK),
    "pathloss": Kind("radio.pathloss", "MODELS", "cosim.pathloss", PATHLOSS_FALLBACK),
    "datasets": Kind("learning.data.federated", "DATASETS", "cosim.datasets", DATASETS),
    "models": Kind("learning.models", "MODELS", "cosim.models", ("vit",)),
}
#: ``package.module:Name`` (dotted attribute paths allowed after the colon).
IMPORT_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class PluginError(ValueError):
    """A pluggable part's name could not be resolved (one line: the name and what is allowed)."""


def _kind(kind: str) -> Kind:
    try:
        return KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown plugin kind {kind!r} (expected one of {', '.join(KINDS)})") from None


def _registry(kind: str) -> dict[str, Any]:
    spec = _kind(kind)
    registry = getattr(importlib.import_module(spec.module), spec.attribute)
    if not isinstance(registry, dict):
        raise TypeError(f"{spec.module}.{spec.attribute} is not a dict")
    return registry


def entry_points(kind: str) -> dict[str, importlib.metadata.EntryPoint]:
    """Installed entry points of ``kind``'s group, by name (first one wins on duplicates)."""
    found: dict[str, importlib.metadata.EntryPoint] = {}
    for entry in importlib.metadata.entry_points(group=_kind(kind).group):
        found.setdefault(entry.name, entry)
    return found


def builtin_names(kind: str) -> tuple[str, ...]:
    """The names ``kind``'s own registry holds (without plugins resolved so far)."""
    spec = _kind(kind)
    return tuple(n for n in registry_names(spec.module, spec.attribute, spec.fallback) if not IMPORT_PATH.match(n))


def names(kind: str) -> tuple[str, ...]:
    """Every name a scenario may use for ``kind`` without an import path: built-ins, then entry points."""
    own = builtin_names(kind)
    return own + tuple(sorted(n for n in entry_points(kind) if n not in own))


def allowed_text(kind: str) -> str:
    """What a scenario may name for ``kind``, for error messages."""
    return f"{', '.join(names(kind))}, or an import path 'package.module:Name'"


def load_import_path(path: str) -> Any:
    """The object ``package.module:Name`` names; ``PluginError`` (one line) if it cannot be loaded."""
    if not IMPORT_PATH.match(path):
        raise PluginError(f"{path!r} is not an import path 'package.module:Name'")
    module_name, _, attributes = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise PluginError(f"{path!r}: cannot import {module_name!r} ({exc})") from None
    for attribute in attributes.split("."):
        if not hasattr(obj, attribute):
            raise PluginError(f"{path!r}: module {module_name!r} has no attribute {attributes!r}")
        obj = getattr(obj, attribute)
    return obj


def resolve(kind: str, name: str) -> Any:
    """The class or function ``name`` stands for in ``kind``: a built-in, an entry point or an import path.

    A plugin is added to the owning layer's registry under ``name`` (so lookups by
    that name elsewhere find it). Raises :class:`PluginError` with one line naming
    the allowed names when ``name`` is none of these.
    """
    registry = _registry(kind)
    if name in registry:
        return registry[name]
    if ":" in name:
        obj = load_import_path(name)
    else:
        found = entry_points(kind).get(name)
        if found is None:
            raise PluginError(f"{name!r} is not one of {allowed_text(kind)}")
        try:
            obj = found.load()
        except Exception as exc:  # noqa: BLE001 - any failure of a plugin's import is reported in one line
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise PluginError(f"{name!r}: entry point {found.value!r} of {found.group!r} failed to load "
                              f"({type(exc).__name__}: {first})") from None
    registry[name] = obj
    return obj


def check_name(kind: str, name: str) -> str:
    """``name`` if it is a valid name for ``kind`` (resolving plugins), else ``PluginError``.

    Built-in names are accepted without importing the owning layer when it cannot be
    imported (partial checkout); plugins need it.
    """
    spec = _kind(kind)
    if ":" not in name and (name in spec.fallback or name in registry_names(spec.module, spec.attribute, spec.fallback)):
        return name
    resolve(kind, name)
    return name
