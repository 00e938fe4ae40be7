"""Reading scenario YAML, applying ``--set key.path=value`` overrides, validating.

Files are read and YAML parsed within bounds (size cap, no device files, a value
budget that stops alias bombs, a nesting limit, no duplicate keys; see
:mod:`cosim.scenario.yaml_safe`). The loader also resolves YAML 1.2 floats without a
dot or exponent sign (``3.5e9``, ``20e6``), which plain PyYAML leaves as strings.
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
from cosim.scenario.schema_base import fmt_value
from cosim.scenario.text import clip
from cosim.scenario.yaml_safe import YAMLLimitError, parse_yaml, read_scenario_text


#: Most segments in a ``--set`` key path (scenario keys nest about 5 deep).
MAX_KEY_SEGMENTS = 32


def _yaml_reason(exc: yaml.YAMLError) -> str:
    """One line saying what is wrong with a YAML text (with its line and column when known)."""
    if isinstance(exc, YAMLLimitError):
        return exc.detail
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    reason = getattr(exc, "problem", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
    return f"invalid YAML{where}: {reason}"


def _parse_override(item: str | tuple[str, Any]) -> tuple[list[str], Any]:
    if not isinstance(item, str):  # (key, value) from the Python API: the value is already parsed
        key, value = item
        parts = str(key).split(".")
        if not key or any(not part for part in parts):
            raise ScenarioError(f"overrides {clip(repr(key))}: expected a dotted key path like fl.rounds")
        if len(parts) > MAX_KEY_SEGMENTS:
            raise ScenarioError(f"overrides {clip(str(key))}: {len(parts)} key segments, at most {MAX_KEY_SEGMENTS}")
        return parts, value
    shown = clip(item, 120)
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep:
        raise ScenarioError(f"--set {shown}: expected KEY.PATH=VALUE")
    if not key:
        raise ScenarioError(f"--set {shown}: empty key before '='")
    parts = key.split(".")
    if any(not part for part in parts):
        raise ScenarioError(f"--set {shown}: empty segment in key {clip(repr(key))}")
    if len(parts) > MAX_KEY_SEGMENTS:
        raise ScenarioError(f"--set {shown}: {len(parts)} key segments, at most {MAX_KEY_SEGMENTS}")
    try:
        value = parse_yaml(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"--set {shown}: value is not valid YAML ({_yaml_reason(exc)})") from None
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
    for override in overrides:
        parts, value = _parse_override(override)
        item = clip(override if isinstance(override, str) else f"{override[0]}=...", 120)
        node: Any = data
        for depth, part in enumerate(parts):
            here = clip(".".join(parts[:depth]), 120) or "<scenario>"
            last = depth == len(parts) - 1
            if isinstance(node, list):
                if not re.fullmatch(r"-?[0-9]{1,18}", part):
                    raise ScenarioError(f"--set {item}: {here} is a list, {clip(repr(part))} is not an index")
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
                raise ScenarioError(f"--set {item}: {here} is {fmt_value(node)}, not a mapping or list")
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
        raise ScenarioError(f"{source}: {_yaml_reason(exc)}") from None
    if raw is None:
        raise ScenarioError(f"{source}: empty scenario, expected a mapping of keys")
    if not isinstance(raw, dict):
        raise ScenarioError(f"{source}: top level must be a mapping of keys, got {type(raw).__name__}")
    data = apply_overrides(raw, overrides)
    data.setdefault("name", default_name)
    return validate_scenario(data)


def same_resolved_scenario(found_text: str, expected_text: str) -> bool:
    """Whether two ``scenario.yaml`` texts resolve to the same scenario under today's schema.

    A run written before a key was added lacks that key; loaded now it takes the key's
    default, which by convention keeps the earlier behaviour, so the run is still the one a
    grid asks for. Text that no longer validates is not the same scenario.
    """
    if found_text == expected_text:
        return True
    try:
        found = loads_scenario(found_text, source="existing scenario.yaml")
        return found.to_yaml() == loads_scenario(expected_text, source="expected scenario").to_yaml()
    except ScenarioError:
        return False


def load_scenario(path: str | Path, overrides: Sequence[str | tuple[str, Any]] = ()) -> Scenario:
    """Load, override and validate the scenario file at ``path``.

    The scenario ``name`` defaults to the file stem. Raises ``ScenarioError`` (one line
    per problem) for a missing/unreadable/oversized file or a device, invalid YAML, a
    non-mapping top level, a malformed override or any schema violation.
    """
    file = Path(path)
    text = read_scenario_text(file)
    return loads_scenario(text, overrides, source=str(file), default_name=file.stem)
