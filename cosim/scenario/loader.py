"""Reading scenario YAML, applying ``--set key.path=value`` overrides, validating.

YAML is read with a SafeLoader that also resolves YAML 1.2 floats without a dot or
exponent sign (``3.5e9``, ``20e6``), which plain PyYAML leaves as strings.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from cosim.scenario.errors import ScenarioError, translate
from cosim.scenario.schema import Scenario


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e9`` / ``3.5e9`` as floats."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def parse_yaml(text: str) -> Any:
    """Parse YAML text the way scenario files and override values are parsed."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader derives from SafeLoader


def _parse_override(item: str | tuple[str, Any]) -> tuple[list[str], Any]:
    if not isinstance(item, str):  # (key, value) from the Python API: the value is already parsed
        key, value = item
        parts = str(key).split(".")
        if not key or any(not part for part in parts):
            raise ScenarioError(f"overrides {key!r}: expected a dotted key path like fl.rounds")
        return parts, value
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep:
        raise ScenarioError(f"--set {item}: expected KEY.PATH=VALUE")
    if not key:
        raise ScenarioError(f"--set {item}: empty key before '='")
    parts = key.split(".")
    if any(not part for part in parts):
        raise ScenarioError(f"--set {item}: empty segment in key {key!r}")
    try:
        value = parse_yaml(text) if text.strip() else None
    except yaml.YAMLError as exc:
        reason = str(getattr(exc, "problem", None) or exc).splitlines()[0]
        raise ScenarioError(f"--set {item}: value is not valid YAML ({reason})") from None
    return parts, value


def apply_overrides(raw: Mapping[str, Any], overrides: Sequence[str | tuple[str, Any]]) -> dict[str, Any]:
    """A deep copy of ``raw`` with each ``key.path=value`` override applied in order.

    Values are YAML (``fl.rounds=5`` sets the int 5, ``fl.deadline_s=null`` sets None);
    an override may also be a ``(key.path, value)`` pair whose value is used as is.
    Integer segments index lists (``cells.0.tx_power_dbm=40``); missing mapping keys
    are created (validation then rejects unknown ones by name). A string set on a key
    holding a mapping with a ``name`` sets that name, as ``compare --vary`` does
    (``learning.algorithm=fedavg`` means ``learning.algorithm.name=fedavg``).
    """
    data: dict[str, Any] = copy.deepcopy(dict(raw))
    for item in overrides:
        parts, value = _parse_override(item)
        node: Any = data
        for depth, part in enumerate(parts):
            here = ".".join(parts[:depth]) or "<scenario>"
            last = depth == len(parts) - 1
            if isinstance(node, list):
                if not re.fullmatch(r"-?[0-9]+", part):
                    raise ScenarioError(f"--set {item}: {here} is a list, {part!r} is not an index")
                index = int(part)
                if not -len(node) <= index < len(node):
                    raise ScenarioError(f"--set {item}: index {index} out of range ({here} has {len(node)} items)")
                if last:
                    node[index] = value
                else:
                    node = node[index]
            elif isinstance(node, dict):
                if last and isinstance(value, str) and isinstance(node.get(part), dict) and "name" in node[part]:
                    node[part]["name"] = value
                elif last:
                    node[part] = value
                else:
                    node = node.setdefault(part, {})
            else:
                raise ScenarioError(f"--set {item}: {here} is {node!r}, not a mapping or list")
    return data


def validate_scenario(raw: Mapping[str, Any]) -> Scenario:
    """Validate an already-parsed mapping; raise ``ScenarioError`` listing every problem."""
    try:
        return Scenario.model_validate(dict(raw))
    except ValidationError as exc:
        raise translate(exc, Scenario) from None


def loads_scenario(
    text: str,
    overrides: Sequence[str | tuple[str, Any]] = (),
    source: str = "<string>",
    default_name: str = "scenario",
) -> Scenario:
    """Parse scenario YAML ``text``, apply ``overrides`` and validate it.

    ``source`` names the text in error messages; ``default_name`` is used when the
    YAML has no ``name`` key.
    """
    try:
        raw = parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ScenarioError(f"{source}: invalid YAML{where}: {reason}") from None
    if raw is None:
        raise ScenarioError(f"{source}: empty scenario, expected a mapping of keys")
    if not isinstance(raw, dict):
        raise ScenarioError(f"{source}: top level must be a mapping of keys, got {type(raw).__name__}")
    data = apply_overrides(raw, overrides)
    data.setdefault("name", default_name)
    return validate_scenario(data)


def load_scenario(path: str | Path, overrides: Sequence[str | tuple[str, Any]] = ()) -> Scenario:
    """Load, override and validate the scenario file at ``path``.

    The scenario ``name`` defaults to the file stem. Raises ``ScenarioError`` (one line
    per problem) for a missing/unreadable file, invalid YAML, a non-mapping top level,
    a malformed override or any schema violation.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(f"{file}: no such file") from None
    except IsADirectoryError:
        raise ScenarioError(f"{file}: is a directory, expected a YAML file") from None
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ScenarioError(f"{file}: cannot read ({exc.strerror or exc})") from None
    return loads_scenario(text, overrides, source=str(file), default_name=file.stem)
