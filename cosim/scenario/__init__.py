"""Scenario schema, loading, ``--set`` overrides and one-line-per-problem errors.

Public API::

    load_scenario(path, overrides=()) -> Scenario
    loads_scenario(text, overrides=(), source="<string>", default_name="scenario") -> Scenario
    Scenario.to_yaml() -> str
    ScenarioError (``.problems``: list of one-line messages)
"""

from cosim.scenario.errors import ScenarioError
from cosim.scenario.loader import apply_overrides, load_scenario, loads_scenario, parse_yaml, validate_scenario
from cosim.scenario.schema import (
    FL,
    Algorithm,
    Dataset,
    Execution,
    Learning,
    Output,
    Partition,
    Scenario,
)
from cosim.scenario.schema_world import Area, Cell, Devices, Mobility, Radio

__all__ = [
    "FL",
    "Algorithm",
    "Area",
    "Cell",
    "Dataset",
    "Devices",
    "Execution",
    "Learning",
    "Mobility",
    "Output",
    "Partition",
    "Radio",
    "Scenario",
    "ScenarioError",
    "apply_overrides",
    "load_scenario",
    "loads_scenario",
    "parse_yaml",
    "validate_scenario",
]
