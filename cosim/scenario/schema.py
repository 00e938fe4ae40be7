"""Pydantic v2 schema of a cosim scenario (see ``scenarios/*.yaml``).

Every model forbids unknown keys, validates strictly (YAML already types values, so
``"5"`` is not an int and ``true`` is not a number) and rejects NaN/inf. Units are in
key names (``_m``, ``_hz``, ``_db``, ``_dbm``, ``_s``). Names of pluggable parts are
checked against the owning layer's registry (see :mod:`cosim.scenario.registries`).
Cross-field rules live in model validators and report *every* broken rule at once as
a ``cosim_cross`` error that :mod:`cosim.scenario.errors` expands to one line each.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_serializer, model_validator
from pydantic_core import PydanticCustomError

from cosim.scenario import registries
from cosim.scenario.paths import directory_problems
from cosim.scenario.text import short_repr

#: ``float`` fields also accept YAML ints; the validator makes them real floats.
Float = Annotated[float, AfterValidator(float)]
PositiveFloat = Annotated[float, Field(gt=0), AfterValidator(float)]
NonNegativeFloat = Annotated[float, Field(ge=0), AfterValidator(float)]
PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
Params = dict[str, Any]

#: Tolerance on "profile fractions sum to 1".
FRACTION_SUM_TOL = 1e-6
#: Sizes beyond these would exhaust memory or run for ever; they are typos, not scenarios.
MAX_DEVICES = 1_000_000
MAX_ROUNDS = 1_000_000
MAX_WORKERS = 1024
#: Shortest world tick [s]: the world process wakes every coherence interval, so a
#: vanishing one would never let simulated time advance.
MIN_COHERENCE_S = 1e-3
#: Transmit powers outside this range [dBm] overflow the dB -> W conversion or are typos.
TX_POWER_RANGE_DBM = (-100.0, 100.0)


def fmt_value(value: Any) -> str:
    """Short, readable rendering of a user-supplied value for error messages."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, float):
        return f"{value:.12g}"
    return short_repr(value)  # bounded: never the full repr of a huge (alias-expanded) value


def _choice(value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise PydanticCustomError(
            "cosim",
            "{value} is not one of {allowed}",
            {"value": fmt_value(value), "allowed": ", ".join(allowed)},
        )
    return value


def _cross(problems: list[tuple[str, str]]) -> None:
    """Raise one ``cosim_cross`` error carrying every ``(relative path, detail)`` problem."""
    if problems:
        summary = "; ".join(f"{path}: {detail}" for path, detail in problems)
        raise PydanticCustomError("cosim_cross", "{summary}", {"summary": summary, "problems": problems})


def _non_finite(value: Any, path: str, problems: list[tuple[str, str]]) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        problems.append((path, f"{fmt_value(value)} must be a finite number"))
    elif isinstance(value, dict):
        for key, item in value.items():
            _non_finite(item, f"{path}.{key}" if path else str(key), problems)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _non_finite(item, f"{path}.{index}" if path else str(index), problems)


def _finite_tree(value: Any) -> Any:
    """Reject NaN/inf anywhere inside free-form parameter dicts and lists."""
    problems: list[tuple[str, str]] = []
    _non_finite(value, "", problems)
    _cross(problems)
    return value


class StrictModel(BaseModel):
    """Base of every scenario model: unknown keys, coercion, NaN/inf are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


def _registry_validator(field: str, kind: str) -> Any:
    """A validator accepting a built-in name, an installed plugin's name or ``package.module:Name`` of ``kind``."""

    def check(cls: type, value: str) -> str:
        try:
            return registries.check_name(kind, value)
        except registries.PluginError as exc:
            raise PydanticCustomError("cosim", "{message}", {"message": str(exc)}) from None

    return field_validator(field)(classmethod(check))


class Area(StrictModel):
    """Rectangular simulation area with its origin at (0, 0)."""

    width_m: PositiveFloat
    height_m: PositiveFloat


class Cell(StrictModel):
    """One base station (cell site) and its radio parameters."""

    name: Annotated[str, Field(min_length=1)]
    x_m: Float
    y_m: Float
    #: None: the path-loss model's nominal height (UMa 25 m, UMi 10 m, RMa 35 m, else 25 m).
    height_m: PositiveFloat | None = None
    pathloss: str = "uma"
    pathloss_params: Params = Field(default_factory=dict)
    carrier_hz: PositiveFloat = 3.5e9
    uplink_bandwidth_hz: PositiveFloat = 20e6
    downlink_bandwidth_hz: PositiveFloat = 20e6
    tx_power_dbm: Annotated[float, Field(ge=TX_POWER_RANGE_DBM[0], le=TX_POWER_RANGE_DBM[1]), AfterValidator(float)] = 43.0
    noise_figure_db: NonNegativeFloat = 5.0
    antenna_gain_dbi: Annotated[float, Field(ge=-30.0, le=40.0), AfterValidator(float)] = 8.0
    subcarrier_spacing_hz: PositiveFloat = 30e3
    p0_dbm: Annotated[float, Field(ge=-202.0, le=24.0), AfterValidator(float)] = -85.0
    alpha: Annotated[float, Field(ge=0.0, le=1.0), AfterValidator(float)] = 0.8
    duplex: Literal["fdd", "tdd"] = "fdd"
    tdd_pattern: Annotated[str, Field(pattern=r"^[DUS]{1,80}$")] = "DDDSU"

    check_pathloss = _registry_validator("pathloss", "pathloss")

    @field_validator("subcarrier_spacing_hz")
    @classmethod
    def _scs(cls, value: float) -> float:
        if value not in (15e3, 30e3, 60e3):
            raise PydanticCustomError("cosim", "{value} is not one of 15e3, 30e3, 60e3 (FR1 numerologies)",
                                      {"value": fmt_value(value)})
        return value

    @field_validator("tdd_pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        if not (("U" in value or "S" in value) and ("D" in value or "S" in value)):
            raise PydanticCustomError("cosim", "{value} has no slot for one direction (needs U or S, and D or S)",
                                      {"value": fmt_value(value)})
        return value

    @field_validator("pathloss_params")
    @classmethod
    def _params_finite(cls, value: Params) -> Params:
        return _finite_tree(value)


class Mobility(StrictModel):
    """Device mobility model name (``radio.mobility.MOBILITY``) and its parameters."""

    model: str = "static"
    params: Params = Field(default_factory=dict)

    check_model = _registry_validator("model", "mobility")

    @field_validator("params")
    @classmethod
    def _params_finite(cls, value: Params) -> Params:
        return _finite_tree(value)


class OnOff(StrictModel):
    """Mean holding times of a two-state on/off availability chain [s]."""

    mean_on_s: PositiveFloat
    mean_off_s: PositiveFloat


class AvailabilityGroup(OnOff):
    """On/off means for the devices ``devices: [first, last]`` (ids, inclusive)."""

    devices: Annotated[list[NonNegativeInt], Field(min_length=2, max_length=2)]


class DeviceAvailability(StrictModel):
    """When devices can take part (see ``cosim.engine.availability``).

    ``always``; ``markov`` (exponential on/off holding times ``mean_on_s``/``mean_off_s``,
    overridden per hardware profile in ``profiles`` or per device-id range in ``groups``);
    ``trace`` (a CSV/Parquet file of ``device, start_s, end_s`` intervals at ``path``,
    replayed every ``repeat_s`` when set).
    """

    model: Literal["always", "markov", "trace"] = "always"
    mean_on_s: PositiveFloat | None = None
    mean_off_s: PositiveFloat | None = None
    profiles: dict[str, OnOff] = Field(default_factory=dict)
    groups: list[AvailabilityGroup] = Field(default_factory=list)
    initial: Literal["stationary", "on", "off"] = "stationary"
    path: str | None = None
    repeat_s: PositiveFloat | None = None


class Devices(StrictModel):
    """The device population: size, hardware mix, antenna height, mobility, availability."""

    count: Annotated[int, Field(ge=1, le=MAX_DEVICES)]
    profiles: dict[str, PositiveFloat] = Field(default_factory=lambda: {"mid": 1.0})
    height_m: PositiveFloat = 1.5
    mobility: Mobility = Field(default_factory=Mobility)
    noise_figure_db: NonNegativeFloat = 9.0
    availability: DeviceAvailability = Field(default_factory=DeviceAvailability)
    antenna_gain_dbi: Annotated[float, Field(ge=-30.0, le=30.0), AfterValidator(float)] = 0.0

    @field_validator("profiles")
    @classmethod
    def _profile_names(cls, value: dict[str, float]) -> dict[str, float]:
        allowed = registries.compute_profiles()
        if not value:
            raise PydanticCustomError("cosim", "at least one profile is required (allowed: {allowed})",
                                      {"allowed": ", ".join(allowed)})
        for name in value:
            if name not in allowed:
                raise PydanticCustomError(
                    "cosim", "unknown profile {name} (allowed: {allowed})",
                    {"name": fmt_value(name), "allowed": ", ".join(allowed)},
                )
        return value


class Handover(StrictModel):
    """A3-event handover: a neighbour stronger than the serving cell by ``a3_offset_db``
    for ``time_to_trigger_s`` takes the device; a return to the previous cell within
    ``ping_pong_window_s`` of leaving it is counted as a ping-pong."""

    a3_offset_db: Annotated[float, Field(ge=0.0, le=30.0), AfterValidator(float)] = 3.0
    time_to_trigger_s: Annotated[float, Field(ge=0.0, le=60.0), AfterValidator(float)] = 0.64
    ping_pong_window_s: Annotated[float, Field(ge=0.0, le=3600.0), AfterValidator(float)] = 5.0


class Radio(StrictModel):
    """Channel model settings shared by every cell."""

    fading: Literal["rayleigh", "rician", "none"] = "rayleigh"
    #: None: each LOS link's K drawn from its cell model's TR 38.901 Table 7.5-6 (μ_K, σ_K).
    rician_k_db: Annotated[float, Field(ge=-50.0, le=50.0), AfterValidator(float)] | None = None
    handover: Handover = Field(default_factory=Handover)
    #: Independently fading subbands per link (1: flat fading over the whole band).
    subbands: Annotated[int, Field(ge=1, le=1024)] = 1
    shadowing: bool = True
    coherence_s: PositiveFloat = 1.0
    #: None: every device is re-evaluated at every tick (exact); else devices with no update
    #: in flight are re-evaluated about this often [s] (see README, "Idle devices").
    idle_update_s: Annotated[float, Field(gt=0.0, le=3600.0), AfterValidator(float)] | None = None
    preset: Literal["nr", "lte"] = "nr"
    abstraction: Literal["shannon", "cqi"] = "shannon"
    # None: the preset's value (see radio.abstraction.PRESETS and the README table).
    snr_gap_db: Annotated[float, Field(ge=0.0, le=30.0), AfterValidator(float)] | None = None
    max_spectral_efficiency_bps_hz: Annotated[float, Field(gt=0.0, le=20.0), AfterValidator(float)] | None = None
    overhead_ul: Annotated[float, Field(ge=0.0, lt=1.0), AfterValidator(float)] | None = None
    overhead_dl: Annotated[float, Field(ge=0.0, lt=1.0), AfterValidator(float)] | None = None
    min_sinr_db: Annotated[float, Field(ge=-50.0, le=50.0), AfterValidator(float)] | None = None
    access_latency_s: Annotated[float, Field(ge=0.0, le=10.0), AfterValidator(float)] | None = None
    power_headroom_aware: bool | None = None
    outage_s: Annotated[float, Field(gt=0.0, le=1e6), AfterValidator(float)] = 1.0
    interference: bool = True

    @field_validator("coherence_s")
    @classmethod
    def _coherence_floor(cls, value: float) -> float:
        if value < MIN_COHERENCE_S:
            raise PydanticCustomError("cosim", "{value} must be >= {floor} (one world tick per coherence interval)",
                                      {"value": fmt_value(value), "floor": fmt_value(MIN_COHERENCE_S)})
        return value


class Dataset(StrictModel):
    """Dataset name, optional local path and loader parameters."""

    name: str
    path: str | None = None
    params: Params = Field(default_factory=dict)

    check_name = _registry_validator("name", "datasets")

    @field_validator("params")
    @classmethod
    def _params_finite(cls, value: Params) -> Params:
        return _finite_tree(value)


class Partition(StrictModel):
    """How the training set is split across devices."""

    name: str = "iid"
    params: Params = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _choice(value, registries.PARTITIONS)

    @field_validator("params")
    @classmethod
    def _params_finite(cls, value: Params) -> Params:
        return _finite_tree(value)


class Algorithm(StrictModel):
    """FL algorithm name (``learning.algorithms.ALGORITHMS``) and hyper-parameters."""

    name: str = "fedavg"
    params: Params = Field(default_factory=dict)

    check_name = _registry_validator("name", "algorithms")

    @field_validator("params")
    @classmethod
    def _params_finite(cls, value: Params) -> Params:
        return _finite_tree(value)


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
    devices at once with ``torch.func``) | ``ray`` (``workers`` Ray actors). ``address``
    (ray only): ``auto`` | ``local`` | ``HOST:PORT`` of an existing Ray cluster's head.
    """

    executor: Literal["sequential", "process", "batched", "ray"] = "sequential"
    workers: Annotated[int, Field(ge=1, le=MAX_WORKERS)] = 1
    threads: Annotated[int, Field(ge=1, le=MAX_WORKERS)] = 1
    address: str = "local"

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
