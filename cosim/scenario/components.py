"""Checks that need the radio and learning layers: build each pluggable part once.

The schema (:mod:`cosim.scenario.schema`) checks names and ranges it knows itself;
the free-form parameter mappings (``cells[].pathloss_params``, ``devices.mobility.params``,
``learning.model``, ``learning.algorithm.params``, ``learning.dataset.params``,
``learning.partition.params``) are only understood by the layer that owns them. This
module builds each such part in isolation, cheaply, and turns whatever it raises into
a :class:`ScenarioError` line naming the scenario key, so that ``cosim validate``
catches what ``cosim run`` would otherwise fail on after setup (or, in surrogate mode,
never notice).

Everything is imported lazily: the scenario package must keep working on a partial
checkout (see :mod:`cosim.scenario.registries`).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from cosim.scenario.errors import ScenarioError

#: Errors a layer raises for a bad parameter (TypeError: unknown/missing keyword).
_PARAM_ERRORS = (ValueError, TypeError, KeyError, OverflowError)
#: Largest training set whose partition is tried out here (partitioning is O(N)).
PARTITION_TRIAL_MAX_SAMPLES = 200_000
#: Training-set size, image shape (C, H, W) and classes of datasets known without loading them.
_KNOWN_SIZES = {"fashion_mnist": (60000, (1, 28, 28), 10), "cifar10": (50000, (3, 32, 32), 10)}
_SYNTHETIC_DEFAULTS = {"num_train": 6000, "num_test": 1000, "num_classes": 10, "image_size": 28}


def _message(exc: BaseException) -> str:
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return " ".join(text.split()) or type(exc).__name__


def _key_path(prefix: str, message: str, keys: Iterable[str], renames: dict[str, str] | None = None) -> str:
    """``prefix.<key>`` when ``message`` starts with ``<key>=`` or ``<key> `` for a known key."""
    match = re.match(r"\s*(?:model config )?'?([A-Za-z_][A-Za-z0-9_]*)'?\s*[= ]", message)
    if match:
        name = match.group(1)
        if renames and name in renames:
            return renames[name]
        if name in set(keys):
            return f"{prefix}.{name}"
    return prefix


def _attempt(problems: list[str], build: Callable[[], Any], locate: Callable[[str], str]) -> Any:
    try:
        return build()
    except _PARAM_ERRORS as exc:
        message = _message(exc)
        problems.append(f"{locate(message)}: {message}")
        return None


def _cells(scenario: Any, problems: list[str]) -> None:
    from radio.pathloss import MODELS, nominal_bs_height_m

    for index, cell in enumerate(scenario.cells):
        params = dict(cell.pathloss_params)
        prefix = f"cells.{index}"
        renames = {"h_bs_m": f"{prefix}.height_m"} | {k: f"{prefix}.pathloss_params.{k}" for k in params}

        def build(cell: Any = cell, params: dict[str, Any] = params) -> Any:
            h_bs_m = nominal_bs_height_m(cell.pathloss) if cell.height_m is None else cell.height_m
            return MODELS[cell.pathloss](carrier_hz=cell.carrier_hz, h_bs_m=h_bs_m, **params)

        def locate(message: str, prefix: str = prefix, renames: dict[str, str] = renames) -> str:
            if "keyword argument" in message:
                return f"{prefix}.pathloss_params"
            return _key_path(prefix, message, type(cell).model_fields, renames)

        model = _attempt(problems, build, locate)
        if model is not None:
            _distance_range(scenario, index, model, problems)


def _distance_range(scenario: Any, index: int, model: Any, problems: list[str]) -> None:
    """A device can be as far from a cell as the area's farthest corner: beyond the path-loss model's
    2-D distance range (UMa/UMi 5 km, RMa 10 km, TR 38.901 Table 7.4.1-1) its loss would be clamped."""
    cell, area = scenario.cells[index], scenario.area
    far_m = max(float(np.hypot(x - cell.x_m, y - cell.y_m)) for x in (0.0, area.width_m) for y in (0.0, area.height_m))
    limit_m = float(getattr(model, "D2D_RANGE_M", (0.0, np.inf))[1])
    if far_m > limit_m:
        problems.append(f"cells.{index}.pathloss: {cell.pathloss} is defined up to {limit_m:g} m (2-D), but the "
                        f"area's farthest corner is {far_m:.0f} m from this cell; use a smaller area or a model "
                        "without that limit (log_distance, free_space; rma: 10 km)")


def _mobility(scenario: Any, problems: list[str]) -> None:
    from radio.mobility import MOBILITY

    mob = scenario.devices.mobility
    params = dict(mob.params)
    area = (float(scenario.area.width_m), float(scenario.area.height_m))
    prefix = "devices.mobility.params"
    _attempt(problems, lambda: MOBILITY[mob.model](scenario.devices.count, area, np.random.default_rng(0), **params),
             lambda m: _key_path(prefix, m, params))


def _fading(scenario: Any, problems: list[str]) -> None:
    from radio.channel import BlockFading

    radio = scenario.radio
    k_db = 9.0 if radio.rician_k_db is None else radio.rician_k_db
    _attempt(problems, lambda: BlockFading(radio.fading, k_db, (1, 1), np.random.default_rng(0)),
             lambda m: _key_path("radio", m, (), {"k_factor_db": "radio.rician_k_db", "fading": "radio.fading"}))


def _dataset_shape(scenario: Any, problems: list[str]) -> tuple[int, tuple[int, int, int], int] | None:
    """(training samples, input shape, classes) of the scenario's dataset, checking its params."""
    dataset = scenario.learning.dataset
    params = dict(dataset.params)
    prefix = "learning.dataset.params"
    if dataset.name in _KNOWN_SIZES:
        from learning.data import load_cifar10, load_fashion_mnist

        loader = {"fashion_mnist": load_fashion_mnist, "cifar10": load_cifar10}[dataset.name]
        allowed = [name for name in inspect.signature(loader).parameters if name != "path"]
        for key in params:
            if key not in allowed:
                problems.append(f"{prefix}.{key}: unknown parameter of {dataset.name} (allowed: {', '.join(allowed)})")
        return _KNOWN_SIZES[dataset.name]
    if dataset.name != "synthetic":  # a plugin: only loading it tells its size
        from learning.data.federated import load_dataset

        loaded = _attempt(problems, lambda: load_dataset(dataset.name, path=dataset.path, **params), lambda m: prefix)
        if loaded is None:
            return None
        return len(loaded.train_y), loaded.image_shape, int(loaded.num_classes)
    from learning.data.synthetic import make_synthetic

    before = len(problems)
    _attempt(problems, lambda: inspect.signature(make_synthetic).bind(**{**_SYNTHETIC_DEFAULTS, **params}),
             lambda m: prefix)
    resolved = {**_SYNTHETIC_DEFAULTS, **params}
    minimum = {"num_train": 1, "num_test": 1, "num_classes": 2, "image_size": 4}
    for key, low in minimum.items():
        value = resolved.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{prefix}.{key}: {value!r} is not an integer")
        elif value < low:
            problems.append(f"{prefix}.{key}: {value} must be >= {low}")
    noise = resolved.get("noise", 0.0)
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or noise < 0:
        problems.append(f"{prefix}.noise: {noise!r} must be a number >= 0")
    if len(problems) > before:
        return None
    size = resolved["image_size"]
    return resolved["num_train"], (1, size, size), resolved["num_classes"]


def _partition(scenario: Any, n_train: int, num_classes: int, problems: list[str]) -> None:
    from learning.data.partition import PARTITIONS

    part = scenario.learning.partition
    params = dict(part.params)
    prefix = "learning.partition"
    devices = scenario.devices.count
    function = PARTITIONS[part.name]
    signature = inspect.signature(function)
    try:
        signature.bind(np.zeros(0), devices, rng=None, **params)
    except TypeError as exc:
        problems.append(f"{prefix}.params: {part.name}: {_message(exc)}")
        return
    # YAML reads `alpha: nan` as a string: named here, not a TypeError from a comparison
    numeric = {k for k, p in signature.parameters.items() if p.annotation in (int, float, "int", "float")}
    wrong = [k for k, v in params.items() if k in numeric and (isinstance(v, bool) or not isinstance(v, (int, float)))]
    for key in wrong:
        problems.append(f"{prefix}.params.{key}: {params[key]!r} is not a number")
    if wrong:
        return
    if n_train < devices:
        problems.append(f"{prefix}: {n_train} training samples cannot give devices.count ({devices}) "
                        f"devices >= 1 sample each")
        return
    if n_train > PARTITION_TRIAL_MAX_SAMPLES:
        return
    # Both known datasets are class-balanced: try the split on balanced labels.
    labels = np.arange(n_train, dtype=np.int64) % num_classes
    rng = np.random.default_rng(int(scenario.seed))
    def locate(message: str) -> str:
        key = _key_path(f"{prefix}.params", message, params)
        return prefix if key == f"{prefix}.params" else key

    _attempt(problems, lambda: function(labels, devices, rng=rng, **params), locate)


def algorithm_param_problems(scenario: Any) -> list[str]:
    """The problems of ``learning.algorithm.params`` alone, each naming its key (cheap: no
    data, model or network is built; ``cosim compare`` checks every cell with it up front)."""
    from learning.algorithms import ALGORITHMS

    params = dict(scenario.learning.algorithm.params)
    problems: list[str] = []
    _attempt(problems, lambda: ALGORITHMS[scenario.learning.algorithm.name].resolve_params(params),
             lambda m: _key_path("learning.algorithm.params", m, params))
    return problems


def _learning(scenario: Any, problems: list[str]) -> None:
    from learning.algorithms import ALGORITHMS
    from learning.models import resolve_model_config

    lr = scenario.learning
    model = dict(lr.model)
    algorithm = ALGORITHMS[lr.algorithm.name]
    params = dict(lr.algorithm.params)
    bad = len(problems)
    _attempt(problems, lambda: resolve_model_config(model), lambda m: _key_path("learning.model", m, model))
    problems.extend(algorithm_param_problems(scenario))
    if lr.holdout_devices and not getattr(algorithm, "holdout_supported", True):
        problems.append(f"learning.holdout_devices: {lr.holdout_devices} held-out devices need a way to fit a new "
                        f"device, which {lr.algorithm.name} does not have ({algorithm.holdout_unsupported})")
    shape = _dataset_shape(scenario, problems)
    if shape is None:
        return
    n_train, input_shape, num_classes = shape
    _partition(scenario, n_train, num_classes, problems)
    if len(problems) == bad:
        _attempt(problems, lambda: algorithm.cost_model(model, params, input_shape, num_classes),
                 lambda m: _key_path("learning.model", m, model))
    if len(problems) == bad and lr.mode == "train":
        from cosim.scenario.capacity import estimate, memory_problem

        found = estimate(scenario, n_train, input_shape, num_classes, bool(getattr(algorithm, "personalized", True)))
        problem = memory_problem(found, int(scenario.devices.count))
        if problem is not None:
            problems.append(problem)


def train_memory(scenario: Any) -> Any:
    """The ``cosim.scenario.capacity.MemoryEstimate`` of a train-mode scenario (None in surrogate mode)."""
    from learning.algorithms import ALGORITHMS

    from cosim.scenario.capacity import estimate

    if scenario.learning.mode != "train":
        return None
    shape = _dataset_shape(scenario, [])
    if shape is None:
        return None
    personalized = bool(getattr(ALGORITHMS[scenario.learning.algorithm.name], "personalized", True))
    return estimate(scenario, *shape, personalized)


def ray_available() -> bool:
    """Whether ``import ray`` can succeed here (found without importing it: importing Ray is slow)."""
    import importlib.util

    try:
        return importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):  # a broken install, or ``sys.modules["ray"] = None``
        return False


def _execution(scenario: Any, problems: list[str]) -> None:
    """A train-mode run builds its executor: the Ray one needs Ray installed, a GPU device
    a CUDA build of torch that sees that GPU."""
    if scenario.learning.mode != "train":
        return
    if scenario.execution.executor == "ray" and not ray_available():
        problems.append("execution.executor: 'ray' needs Ray, which is not installed "
                        "(pip install 'cosim[ray]'; or executor sequential, process or batched)")
    if scenario.execution.device != "cpu":
        from learning.execution.batched import check_device  # lazy: only a GPU run needs it

        try:
            check_device(scenario.execution.device)
        except ValueError as err:
            problems.append(f"execution.device: {err}")


#: resolved YAML of the scenarios that passed ``check_components`` in this process (newest last).
_PASSED: dict[str, None] = {}
_PASSED_MAX = 64


def _availability(scenario: Any, problems: list[str]) -> None:
    """An availability trace must be readable now (``run`` reads it first thing): a missing
    file, a device file, missing columns or a bad row is named at validation."""
    av = scenario.devices.availability
    if av.model != "trace" or av.path is None:
        return
    from cosim.engine.availability import read_trace

    try:
        read_trace(av.path)
    except (ValueError, OSError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        key = "devices.availability.path"
        problems.append(first if first.startswith(key) else f"{key}: {av.path}: {first}")


def check_components(scenario: Any) -> None:
    """Build every pluggable part of ``scenario`` once; raise ``ScenarioError`` naming each bad key.

    A scenario whose resolved YAML already passed in this process is not built again
    (``cosim run`` validates the file, then the run validates the scenario object it got:
    building a street grid's routing table or a model twice is start-up time for nothing).
    """
    key = scenario.to_yaml() if hasattr(scenario, "to_yaml") else None
    if key is not None and key in _PASSED:
        return
    problems: list[str] = []
    for check in (_cells, _mobility, _fading, _availability, _learning, _execution):
        check(scenario, problems)
    if problems:
        raise ScenarioError(problems)
    if key is not None:
        _PASSED[key] = None
        while len(_PASSED) > _PASSED_MAX:
            del _PASSED[next(iter(_PASSED))]
