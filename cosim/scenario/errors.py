"""``ScenarioError`` and the translation of pydantic errors into one line per problem.

Every line starts with the dotted key path (list indices included: ``cells.0.x_m``),
then the offending value and what is allowed, e.g.::

    fl.devices_per_round: 80 > devices.count (50)
    fl.selection: 'bogus' is not one of random, round_robin, ...
    radio.coherence_s: -1 must be > 0
    devices.colour: unknown key (allowed: count, profiles, ...)
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from cosim.scenario.schema_base import fmt_value
from cosim.scenario.text import MAX_KEY_CHARS, clip, escape_controls


class ScenarioError(Exception):
    """A scenario could not be read or is invalid; ``problems`` holds one line each.

    Control characters in a problem (a key or value the user wrote holding a newline or
    a terminal escape) are escaped, so each problem stays one printable line.
    """

    def __init__(self, problems: str | Sequence[str]) -> None:
        raw = [problems] if isinstance(problems, str) else list(problems)
        self.problems: list[str] = [escape_controls(str(problem)) for problem in raw]
        super().__init__("\n".join(self.problems))


def dotted(loc: Sequence[int | str]) -> str:
    """``("cells", 0, "x_m")`` -> ``"cells.0.x_m"``; the root is ``"<scenario>"``.

    A very long key segment is cut (``...``), so a 1 MB key cannot make a 1 MB error line.
    """
    return ".".join(clip(str(part), MAX_KEY_CHARS) for part in loc) or "<scenario>"


def _unwrap(annotation: Any) -> Any:
    """Strip ``Annotated`` and ``X | None`` down to the type that holds sub-keys."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def model_at(root: type[BaseModel], loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model class found by walking ``loc`` from ``root``, or None if it leaves the models."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        if isinstance(part, int):
            if typing.get_origin(current) is not list:
                return None
            current = typing.get_args(current)[0]
        elif isinstance(current, type) and issubclass(current, BaseModel) and part in current.model_fields:
            current = current.model_fields[part].annotation
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


_TYPE_NAMES = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "a boolean (true/false)",
    "bool_parsing": "a boolean (true/false)",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}
_COMPARISONS = {
    "greater_than": (">", "gt"),
    "greater_than_equal": (">=", "ge"),
    "less_than": ("<", "lt"),
    "less_than_equal": ("<=", "le"),
}


def _line(error: Any, root: type[BaseModel]) -> list[str]:
    kind: str = error["type"]
    loc = tuple(part for part in error["loc"] if part != "[key]")
    path = dotted(loc)
    ctx: dict[str, Any] = error.get("ctx") or {}
    value = error.get("input")
    shown = fmt_value(value)
    if kind == "cosim_cross":
        return [f"{dotted(loc + (sub,))}: {detail}" for sub, detail in ctx["problems"]]
    if kind == "cosim":
        return [f"{path}: {error['msg']}"]
    if kind == "extra_forbidden":
        parent = model_at(root, loc[:-1])
        allowed = ", ".join(parent.model_fields) if parent is not None else "?"
        return [f"{path}: unknown key (allowed: {allowed})"]
    if kind == "missing":
        return [f"{path}: required key missing"]
    if kind in _COMPARISONS:
        symbol, key = _COMPARISONS[kind]
        return [f"{path}: {shown} must be {symbol} {fmt_value(ctx.get(key))}"]
    if kind == "finite_number":
        return [f"{path}: {shown} must be a finite number"]
    if kind == "literal_error":
        allowed = ", ".join(re.findall(r"'([^']*)'", str(ctx.get("expected", ""))))
        return [f"{path}: {shown} is not one of {allowed}"]
    if kind in _TYPE_NAMES:
        return [f"{path}: {shown} is not {_TYPE_NAMES[kind]} (got {type(value).__name__})"]
    if kind == "too_short":
        return [f"{path}: needs at least {ctx.get('min_length')} item(s), got {ctx.get('actual_length')}"]
    if kind == "too_long":
        return [f"{path}: allows at most {ctx.get('max_length')} item(s), got {ctx.get('actual_length')}"]
    if kind == "string_pattern_mismatch":
        return [f"{path}: {shown} must match {ctx.get('pattern')}"]
    if kind == "string_too_short":
        return [f"{path}: {shown} must not be empty"]
    message = str(error.get("msg", kind)).removeprefix("Value error, ")
    return [f"{path}: {shown}: {message}"]


def translate(exc: ValidationError, root: type[BaseModel]) -> ScenarioError:
    """Turn pydantic's ``ValidationError`` on ``root`` into a ``ScenarioError``, one line per problem."""
    lines: list[str] = []
    for error in exc.errors():
        for line in _line(error, root):
            if line not in lines:
                lines.append(line)
    return ScenarioError(lines)
