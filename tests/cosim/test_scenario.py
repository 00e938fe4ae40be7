"""Scenario schema: shipped scenarios validate; every error class gives its one-line message."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cosim.scenario import Scenario, ScenarioError, apply_overrides, load_scenario, loads_scenario
from cosim.scenario.errors import model_at

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
URBAN = ROOT / "scenarios" / "urban_50dev.yaml"


def problems(overrides: list[str], path: Path = URBAN) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, overrides)
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


def test_shipped_scenarios_exist() -> None:
    names = {path.name for path in SCENARIOS}
    assert {"urban_50dev.yaml", "smoke.yaml"} <= names


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_shipped_scenario_validates_and_round_trips(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.name == yaml.safe_load(path.read_text()).get("name", path.stem)
    assert scenario.fl.devices_per_round <= scenario.devices.count
    again = loads_scenario(scenario.to_yaml())
    assert again == scenario
    assert again.to_yaml() == scenario.to_yaml()


def test_urban_values() -> None:
    s = load_scenario(URBAN)
    assert (s.devices.count, len(s.cells), s.fl.rounds, s.fl.devices_per_round) == (50, 3, 30, 10)
    assert s.cells[0].carrier_hz == 3.5e9 and isinstance(s.cells[0].carrier_hz, float)
    assert isinstance(s.cells[0].noise_figure_db, float)  # YAML int 5 becomes a float
    assert s.devices.mobility.params == {"block_m": 100, "speed_mps": [0.5, 1.5]}
    assert s.learning.model == {"name": "vit", "patch_size": 7, "dim": 64, "depth": 2, "heads": 4, "mlp_ratio": 2.0}
    assert s.output_dir == Path("runs/urban_50dev")


def test_name_defaults_to_file_stem_and_output_to_runs_name(tmp_path: Path) -> None:
    raw = yaml.safe_load(URBAN.read_text())
    del raw["name"]
    del raw["output"]
    path = tmp_path / "my_case.yaml"
    path.write_text(yaml.safe_dump(raw))
    scenario = load_scenario(path)
    assert scenario.name == "my_case"
    assert scenario.output.directory == "runs/my_case"
    assert scenario.output.formats == ["parquet"]


def test_overrides_nested_list_index_and_yaml_typing() -> None:
    s = load_scenario(URBAN, ["fl.rounds=5", "cells.0.tx_power_dbm=40", "fl.deadline_s=12.5",
                              "devices.mobility.params.speed_mps=[1, 2]", "radio.shadowing=false",
                              "name=other", "cells.-1.x_m=10"])
    assert s.fl.rounds == 5 and isinstance(s.fl.rounds, int)
    assert s.cells[0].tx_power_dbm == 40.0
    assert s.fl.deadline_s == 12.5
    assert s.devices.mobility.params["speed_mps"] == [1, 2]
    assert s.radio.shadowing is False
    assert s.name == "other"
    assert s.cells[2].x_m == 10.0
    assert load_scenario(URBAN, ["fl.deadline_s=30", "fl.deadline_s=null"]).fl.deadline_s is None


def test_overrides_do_not_mutate_input() -> None:
    raw = {"fl": {"rounds": 3}, "cells": [{"x_m": 1}]}
    out = apply_overrides(raw, ["fl.rounds=4", "cells.0.x_m=2", "new.key=1"])
    assert raw == {"fl": {"rounds": 3}, "cells": [{"x_m": 1}]}
    assert out == {"fl": {"rounds": 4}, "cells": [{"x_m": 2}], "new": {"key": 1}}


def test_exponent_floats_without_dot_are_numbers() -> None:
    s = load_scenario(URBAN, ["cells.0.carrier_hz=28e9", "cells.1.uplink_bandwidth_hz=1E8"])
    assert s.cells[0].carrier_hz == 28e9 and s.cells[1].uplink_bandwidth_hz == 1e8


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["fl.devices_per_round=80"], "fl.devices_per_round: 80 > devices.count (50)"),
        (["fl.min_updates=11"], "fl.min_updates: 11 > fl.devices_per_round (10)"),
        (["fl.selection=bogus"],
         "fl.selection: 'bogus' is not one of random, round_robin, channel_aware, energy_aware, deadline_aware, "
         "or an import path 'package.module:Name'"),
        (["radio.coherence_s=-1"], "radio.coherence_s: -1 must be > 0"),
        (["radio.snr_gap_db=-0.5"], "radio.snr_gap_db: -0.5 must be >= 0"),
        (["devices.colour=red"],
         "devices.colour: unknown key (allowed: count, profiles, height_m, mobility, noise_figure_db, availability, antenna_gain_dbi)"),
        (["colour=red"], "colour: unknown key (allowed: seed, name, area, cells, devices, radio,"),
        (["cells.1.bogus=1"], "cells.1.bogus: unknown key (allowed: name, x_m, y_m,"),
        (["radio.rician_k_db=.nan"], "radio.rician_k_db: nan must be a finite number"),
        (["cells.0.carrier_hz=.inf"], "cells.0.carrier_hz: inf must be a finite number"),
        (["devices.mobility.params.speed_mps=[1, .inf]"], "devices.mobility.params.speed_mps.1: inf must be a finite number"),
        (["fl.rounds=true"], "fl.rounds: True is not an integer"),
        (["fl.rounds=2.5"], "fl.rounds: 2.5 is not an integer"),
        (["seed='7'"], "seed: '7' is not an integer"),
        (["seed=-1"], "seed: -1 must be >= 0"),
        (["radio.fading=weird"], "radio.fading: 'weird' is not one of rayleigh, rician, none"),
        (["cells.0.pathloss=foo"], "cells.0.pathloss: 'foo' is not one of "),
        (["devices.mobility.model=teleport"], "devices.mobility.model: 'teleport' is not one of "),
        (["fl.allocator=greedy"], "fl.allocator: 'greedy' is not one of "),
        (["learning.algorithm.name=fedsgd"], "learning.algorithm.name: 'fedsgd' is not one of "),
        (["learning.dataset.name=cifar"], "learning.dataset.name: 'cifar' is not one of fashion_mnist, cifar10, synthetic"),
        (["learning.partition.name=x"], "learning.partition.name: 'x' is not one of iid, dirichlet, pathological"),
        (["devices.profiles.gpu=0.1"], "devices.profiles: unknown profile 'gpu' (allowed: "),
        (["devices.profiles.high=0.3"], "devices.profiles: fractions sum to 1.1, must sum to 1"),
        (["devices.profiles.high=0"], "devices.profiles.high: 0 must be > 0"),
        (["cells.0.x_m=1200"], "cells.0.x_m: 1200 outside the area [0, 1000]"),
        (["cells.2.y_m=-5"], "cells.2.y_m: -5 outside the area [0, 1000]"),
        (["cells.1.name=macro_center"], "cells.1.name: 'macro_center' duplicates cells.0.name"),
        (["cells=[]"], "cells: needs at least 1 item(s), got 0"),
        (["output.formats=[]"], "output.formats: needs at least 1 item(s), got 0"),
        (["output.formats=[xml]"], "output.formats.0: 'xml' is not one of parquet, csv"),
        (["fl=3"], "fl: 3 is not a mapping"),
        (["learning.model={dim: 3}"], "learning.model: needs a 'name' key"),
        (["name=a b"], "name: 'a b' must match"),
        (["fl.deadline_s=0"], "fl.deadline_s: 0 must be > 0"),
    ],
)
def test_error_messages(overrides: list[str], expected: str) -> None:
    lines = problems(overrides)
    assert any(expected in line for line in lines), lines
    assert all("\n" not in line for line in lines)


def test_missing_key_and_every_cross_problem_reported_at_once() -> None:
    raw = yaml.safe_load(URBAN.read_text())
    del raw["fl"]["rounds"]
    with pytest.raises(ScenarioError) as info:
        loads_scenario(yaml.safe_dump(raw))
    assert info.value.problems == ["fl.rounds: required key missing"]
    lines = problems(["fl.devices_per_round=80", "fl.min_updates=90", "cells.0.x_m=1200"])
    assert lines == [
        "fl.devices_per_round: 80 > devices.count (50)",
        "fl.min_updates: 90 > fl.devices_per_round (80)",
        "cells.0.x_m: 1200 outside the area [0, 1000]",
    ]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("foo", "--set foo: expected KEY.PATH=VALUE"),
        ("=3", "--set =3: empty key before '='"),
        ("a..b=1", "--set a..b=1: empty segment in key 'a..b'"),
        ("cells.7.x_m=1", "--set cells.7.x_m=1: index 7 out of range (cells has 3 items)"),
        ("cells.first.x_m=1", "--set cells.first.x_m=1: cells is a list, 'first' is not an index"),
        ("fl.rounds.x=1", "--set fl.rounds.x=1: fl.rounds is 30, not a mapping or list"),
        ("fl.rounds=[1", "--set fl.rounds=[1: value is not valid YAML"),
    ],
)
def test_bad_override_syntax(override: str, expected: str) -> None:
    assert problems([override])[0].startswith(expected)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"nope\.yaml: no such file"):
        load_scenario(tmp_path / "nope.yaml")
    with pytest.raises(ScenarioError, match="is a directory"):
        load_scenario(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 1\nfl: {rounds: [\n")
    with pytest.raises(ScenarioError, match=r"bad\.yaml: invalid YAML at line \d+, column \d+"):
        load_scenario(bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ScenarioError, match=r"bad\.yaml: top level must be a mapping of keys, got list"):
        load_scenario(bad)
    bad.write_text("")
    with pytest.raises(ScenarioError, match=r"bad\.yaml: empty scenario"):
        load_scenario(bad)
    bad.write_bytes(b"seed: \xff\xfe\n")
    with pytest.raises(ScenarioError, match=r"bad\.yaml: not UTF-8"):
        load_scenario(bad)


def test_model_at_walks_lists_and_optionals() -> None:
    assert model_at(Scenario, ("cells", 0)).__name__ == "Cell"
    assert model_at(Scenario, ("devices", "mobility")).__name__ == "Mobility"
    assert model_at(Scenario, ("devices", "profiles")) is None
    assert model_at(Scenario, ()) is Scenario


def test_scenario_is_frozen() -> None:
    s = load_scenario(URBAN)
    with pytest.raises(Exception):
        s.seed = 3  # type: ignore[misc]
