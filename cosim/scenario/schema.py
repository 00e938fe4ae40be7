"""Pydantic v2 schema of a cosim scenario (see ``scenarios/*.yaml``).

Every model forbids unknown keys, validates strictly (YAML already types values, so
``"5"`` is not an int and ``true`` is not a number) and rejects NaN/inf. Units are in
key names (``_m``, ``_hz``, ``_db``, ``_dbm``, ``_s``). Names of pluggable parts are
checked against the owning layer's registry (see :mod:`cosim.scenario.registries`).
Cross-field rules live in model validators and report *every* broken rule at once as
a ``cosim_cross`` error that :mod:`cosim.scenario.errors` expands to one line each.

This module holds the learning, FL, execution and output sections and the whole
:class:`Scenario` with its cross-section rules; the world sections (area, cells, devices,
radio) are in :mod:`cosim.scenario.schema_world`, the shared value types, limits and
error helpers in :mod:`cosim.scenario.schema_base`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, Field, field_validator, model_serializer, model_validator
from pydantic_core import PydanticCustomError

from cosim.scenario import registries
from cosim.scenario.paths import directory_problems
from cosim.scenario.schema_base import (
    FRACTION_SUM_TOL,
    MAX_ROUNDS,
    MAX_WORKERS,
    FiniteParams,
    NonNegativeFloat,
    NonNegativeInt,
    Params,
    PositiveFloat,
    PositiveInt,
    StrictModel,
    _choice,
    _cross,
    _finite_tree,
    _registry_validator,
    fmt_value,
)
from cosim.scenario.schema_world import Area, Cell, Devices, Radio


class Dataset(StrictModel):
    """Dataset name, optional local path and loader parameters."""

    name: str
    path: str | None = None
    params: FiniteParams = Field(default_factory=dict)

    check_name = _registry_validator("name", "datasets")


class Partition(StrictModel):
    """How the training set is split across devices."""

    name: str = "iid"
    params: FiniteParams = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _choice(value, registries.PARTITIONS)


class Algorithm(StrictModel):
    """FL algorithm name (``learning.algorithms.ALGORITHMS``) and hyper-parameters."""

    name: str = "fedavg"
    params: FiniteParams = Field(default_factory=dict)

    check_name = _registry_validator("name", "algorithms")


class Learning(StrictModel):
    """What is learned and how: data, partition, model, algorithm."""

    mode: Literal["train", "surrogate"] = "train"
    dataset: Dataset
    partition: Partition = Field(default_factory=Partition)
    max_train_per_device: PositiveInt | None = None
    #: fraction of each device's partition held out as its validation split (tuning only).
    validation_fraction: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.1
    model: Params
    algorithm: Algorithm = Field(default_factory=Algorithm)
    eval_every: PositiveInt = 1
    #: devices kept out of training that join after the last round (new-device generalization).
    holdout_devices: NonNegativeInt = 0

    @model_serializer(mode="wrap")
    def _omit_default_holdout(self, handler: Any) -> dict[str, Any]:
        """Leave ``holdout_devices`` out of the dump while it is 0, so that the resolved YAML
        of a scenario without held-out devices (``scenario.yaml`` of existing runs, which
        ``cosim compare`` resumes against) is what it was before the key existed."""
        data = handler(self)
        if not self.holdout_devices:
            data.pop("holdout_devices", None)
        return data

    @field_validator("model")
    @classmethod
    def _model_has_name(cls, value: Params) -> Params:
        name = value.get("name")
        if not isinstance(name, str) or not name:
            raise PydanticCustomError("cosim", "needs a 'name' key naming the model (got {name})",
                                      {"name": fmt_value(name)})
        try:
            registries.check_name("models", name)
        except registries.PluginError as exc:
            raise PydanticCustomError("cosim", "name {message}", {"message": str(exc)}) from None
        return _finite_tree(value)


class Staleness(StrictModel):
    """Staleness weight s(τ) of FedAsync (Xie et al. 2019, eq. in section 5.2).

    ``constant``: s = 1; ``polynomial``: s = (τ + 1)^(−a); ``hinge``: s = 1 for τ <= b,
    else 1 / (a (τ − b) + 1). FedBuff's 1/sqrt(1 + τ) is ``polynomial`` with a = 0.5.
    """

    function: Literal["constant", "polynomial", "hinge"] = "polynomial"
    a: NonNegativeFloat = 0.5
    b: NonNegativeFloat = 4.0


class FL(StrictModel):
    """The federated process: rounds, selection, allocation, deadline, DVFS, server mode.

    ``mode``: ``sync`` rounds; ``async`` (FedAsync: every arrival is mixed in with weight
    ``mixing``·s(τ)); ``buffered`` (FedBuff: every ``buffer_size`` arrivals, staleness-
    weighted, server learning rate ``server_lr``); ``semi_sync`` (rounds with a deadline,
    late updates applied in a later round with weight s(τ)). ``concurrency``: how many
    devices train at once in the non-sync modes (default ``devices_per_round``).
    """

    rounds: Annotated[int, Field(ge=1, le=MAX_ROUNDS)]
    devices_per_round: PositiveInt
    selection: str = "random"
    allocator: str = "equal"
    deadline_s: PositiveFloat | None = None
    min_updates: NonNegativeInt = 1
    dvfs: Literal["max", "min_energy_within_deadline"] = "max"
    mode: Literal["sync", "async", "buffered", "semi_sync"] = "sync"
    concurrency: PositiveInt | None = None
    buffer_size: PositiveInt | None = None
    server_lr: PositiveFloat = 1.0
    mixing: Annotated[float, Field(gt=0, le=1), AfterValidator(float)] = 0.6
    staleness: Staleness = Field(default_factory=lambda: Staleness())
    pf_time_constant_s: Annotated[float, Field(gt=0.0, le=1e6), AfterValidator(float)] = 1.0

    check_allocator = _registry_validator("allocator", "allocators")
    check_selection = _registry_validator("selection", "policies")


class Execution(StrictModel):
    """How local updates are executed (not what they compute).

    ``executor``: ``sequential`` | ``process`` (``workers`` processes) | ``batched`` (many
    devices at once with ``torch.func``; ``workers`` > 1: a round's devices in ``workers``
    shares balanced by training samples, one process each) | ``ray`` (``workers`` Ray
    actors). ``threads``: torch threads per process or actor. ``address``
    (ray only): ``auto`` | ``local`` | ``HOST:PORT`` of an existing Ray cluster's head.
    ``device`` (batched only): ``cpu`` | ``cuda`` | ``cuda:N``, where the stacks train
    (whether that GPU exists is checked with the components, not here). ``max_devices``
    (batched only): the largest stack; null: 32 on the CPU, 256 on a GPU.
    """

    executor: Literal["sequential", "process", "batched", "ray"] = "sequential"
    workers: Annotated[int, Field(ge=1, le=MAX_WORKERS)] = 1
    threads: Annotated[int, Field(ge=1, le=MAX_WORKERS)] = 1
    address: str = "local"
    device: str = "cpu"
    max_devices: PositiveInt | None = None

    @model_serializer(mode="wrap")
    def _omit_defaults(self, handler: Any) -> dict[str, Any]:
        """Leave ``device`` (``cpu``) and ``max_devices`` (null) out of the dump while they
        have their defaults, so that the resolved YAML of existing runs (which ``cosim
        compare`` and resumes check against) is unchanged."""
        data = handler(self)
        if self.device == "cpu":
            data.pop("device", None)
        if self.max_devices is None:
            data.pop("max_devices", None)
        return data

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        head, sep, index = value.partition(":")
        if value == "cpu" or (head == "cuda" and (not sep or (index.isdigit() and index.isascii()))):
            return value
        raise PydanticCustomError("cosim", "{value} is not cpu, cuda or cuda:N", {"value": fmt_value(value)})

    @field_validator("address")
    @classmethod
    def _check_address(cls, value: str) -> str:
        if value in ("auto", "local"):
            return value
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535 or any(c.isspace() for c in host):
            raise PydanticCustomError(
                "cosim", "{value} is not auto, local or HOST:PORT (port 1-65535)", {"value": fmt_value(value)}
            )
        return value


class Output(StrictModel):
    """Where and how traces are written. ``directory`` defaults to ``runs/<name>``; ``events``
    chooses how much of the event stream is kept (at scale, handovers dominate it)."""

    directory: str | None = None
    formats: Annotated[list[Literal["parquet", "csv"]], Field(min_length=1)] = Field(
        default_factory=lambda: ["parquet"]
    )
    checkpoint_every: NonNegativeInt = 0
    #: which events the trace keeps: all | transfers (no handover/availability events) | rounds
    #: (round-level events only); see ``cosim.trace``. Summary counters do not depend on it.
    events: Literal["all", "transfers", "rounds"] = "all"

    @field_validator("formats")
    @classmethod
    def _unique_formats(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise PydanticCustomError("cosim", "{value} lists a format twice", {"value": fmt_value(value)})
        return value


def _mode_problems(scenario: Scenario) -> list[tuple[str, str]]:
    """Cross-field rules of the FL server mode (see ``FL``)."""
    fl, problems = scenario.fl, []
    if fl.mode == "sync":
        return problems
    algorithm = scenario.learning.algorithm.name
    supported = registries.stale_update_algorithms()
    if algorithm not in supported:
        problems.append(("learning.algorithm.name", f"{algorithm!r} cannot run in fl.mode {fl.mode!r} "
                         f"(it has no stale-update rule; modes other than sync support: {', '.join(supported)})"))
    if fl.mode in ("async", "buffered") and fl.deadline_s is not None:
        problems.append(("fl.deadline_s", f"{fmt_value(fl.deadline_s)}: fl.mode {fl.mode!r} has no rounds to cut "
                         "(null, or fl.mode semi_sync for rounds with a deadline)"))
    if fl.mode == "semi_sync" and fl.deadline_s is None:
        problems.append(("fl.deadline_s", "None: fl.mode 'semi_sync' needs a round deadline"))
    if fl.concurrency is not None and fl.concurrency > scenario.devices.count:
        problems.append(("fl.concurrency", f"{fl.concurrency} > devices.count ({scenario.devices.count})"))
    if fl.buffer_size is not None and fl.buffer_size > scenario.devices.count:
        problems.append(("fl.buffer_size", f"{fl.buffer_size} > devices.count ({scenario.devices.count})"))
    return problems


def _availability_problems(devices: Devices) -> list[tuple[str, str]]:
    """Cross-field rules of ``devices.availability``."""
    av, problems = devices.availability, []
    if av.model == "markov":
        for key in ("mean_on_s", "mean_off_s"):
            if getattr(av, key) is None:
                problems.append((f"devices.availability.{key}", "None: the markov model needs it (seconds > 0)"))
        for name in av.profiles:
            if name not in devices.profiles:
                problems.append((f"devices.availability.profiles.{name}",
                                 f"not a profile of devices.profiles ({', '.join(devices.profiles)})"))
        for index, group in enumerate(av.groups):
            first, last = group.devices
            if not first <= last < devices.count:
                problems.append((f"devices.availability.groups.{index}.devices",
                                 f"[{first}, {last}] must satisfy 0 <= first <= last < devices.count ({devices.count})"))
    if av.model == "trace" and av.path is None:
        problems.append(("devices.availability.path", "None: the trace model needs a CSV or Parquet file"))
    return problems


class Scenario(StrictModel):
    """A complete, validated scenario. Build it with :func:`cosim.scenario.load_scenario`."""

    seed: NonNegativeInt
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]+$")] = "scenario"
    area: Area
    cells: Annotated[list[Cell], Field(min_length=1)]
    devices: Devices
    radio: Radio = Field(default_factory=Radio)
    learning: Learning
    fl: FL
    execution: Execution = Field(default_factory=Execution)
    output: Output = Field(default_factory=Output)

    @model_validator(mode="before")
    @classmethod
    def _default_output_directory(cls, data: Any) -> Any:
        if isinstance(data, dict):
            output = data.get("output", {})
            if isinstance(output, dict) and output.get("directory") is None:
                name = data.get("name", "scenario")
                data = {**data, "output": {**output, "directory": f"runs/{name}"}}
        return data

    @model_validator(mode="after")
    def _cross_checks(self) -> Scenario:
        problems: list[tuple[str, str]] = []
        if self.fl.devices_per_round > self.devices.count:
            problems.append(("fl.devices_per_round", f"{self.fl.devices_per_round} > devices.count ({self.devices.count})"))
        if self.fl.min_updates > self.fl.devices_per_round:
            problems.append(("fl.min_updates", f"{self.fl.min_updates} > fl.devices_per_round ({self.fl.devices_per_round})"))
        trainable = self.devices.count - self.learning.holdout_devices
        if self.learning.holdout_devices and trainable < self.fl.devices_per_round:
            problems.append(("learning.holdout_devices", f"{self.learning.holdout_devices} leaves {trainable} training "
                             f"device(s), fewer than fl.devices_per_round ({self.fl.devices_per_round})"))
        ex = self.execution
        if ex.device != "cpu" and ex.executor != "batched":
            problems.append(("execution.device", f"{fmt_value(ex.device)} needs executor batched "
                             f"(executor {fmt_value(ex.executor)} trains on cpu)"))
        if ex.max_devices is not None and ex.executor != "batched":
            problems.append(("execution.max_devices", f"{ex.max_devices} needs executor batched "
                             f"(executor {fmt_value(ex.executor)} trains one device at a time)"))
        problems += _mode_problems(self)
        problems += _availability_problems(self.devices)
        total = math.fsum(self.devices.profiles.values())
        if abs(total - 1.0) > FRACTION_SUM_TOL:
            problems.append(("devices.profiles", f"fractions sum to {total:.12g}, must sum to 1"))
        seen: dict[str, int] = {}
        for index, cell in enumerate(self.cells):
            if cell.name in seen:
                problems.append((f"cells.{index}.name", f"{cell.name!r} duplicates cells.{seen[cell.name]}.name"))
            seen.setdefault(cell.name, index)
            for axis, value, limit in (("x_m", cell.x_m, self.area.width_m), ("y_m", cell.y_m, self.area.height_m)):
                if not 0.0 <= value <= limit:
                    problems.append((f"cells.{index}.{axis}", f"{fmt_value(value)} outside the area [0, {fmt_value(limit)}]"))
        problems += directory_problems(self.output.directory, self.name)
        _cross(problems)
        return self

    @property
    def output_dir(self) -> Path:
        """The run directory named by ``output.directory``."""
        return Path(self.output.directory or f"runs/{self.name}")

    def to_yaml(self) -> str:
        """The resolved scenario (defaults filled in) as YAML; loads back to an equal Scenario."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
