"""Building blocks of the scenario schema: value types, size limits, error helpers, the base model.

Every section model (:mod:`cosim.scenario.schema`, :mod:`cosim.scenario.schema_world`) is a
:class:`StrictModel` and takes its field types (``Float``, ``PositiveFloat``, ...) and limits
from here. The helpers raise the ``cosim`` and ``cosim_cross`` errors that
:mod:`cosim.scenario.errors` turns into one line per problem; :func:`fmt_value` renders a
user-supplied value for those lines.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from cosim.scenario import registries
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


#: A free-form parameter dict (a component's ``params``) with no NaN/inf anywhere inside.
FiniteParams = Annotated[Params, AfterValidator(_finite_tree)]


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
