"""Scenario sections describing the simulated world: ``area``, ``cells``, ``devices``, ``radio``.

The area, the base stations (``Cell``), the device population (``Devices`` with its
``Mobility`` and ``DeviceAvailability``) and the channel settings shared by every cell
(``Radio`` with its ``Handover``). :class:`cosim.scenario.schema.Scenario` joins them with
the learning and FL sections and checks the rules that span sections.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator
from pydantic_core import PydanticCustomError

from cosim.scenario import registries
from cosim.scenario.schema_base import (
    MAX_DEVICES,
    MIN_COHERENCE_S,
    TX_POWER_RANGE_DBM,
    FiniteParams,
    Float,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    StrictModel,
    _registry_validator,
    fmt_value,
)


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
    pathloss_params: FiniteParams = Field(default_factory=dict)
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


class Mobility(StrictModel):
    """Device mobility model name (``radio.mobility.MOBILITY``) and its parameters."""

    model: str = "static"
    params: FiniteParams = Field(default_factory=dict)

    check_model = _registry_validator("model", "mobility")


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
