"""Plugins: import paths and entry points in every registry, one-line errors, reusable conformance checks."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cosim
from cosim.checks import ConformanceError, check_algorithm, check_allocator, check_mobility, check_pathloss, check_policy
from cosim.engine.policies import SELECTION_POLICIES
from cosim.scenario import ScenarioError, registries

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "scenarios" / "smoke.yaml"
SURROGATE = {"learning.mode": "surrogate"}
ENTRY_POINTS = """[cosim.policies]
battery_first = examples.custom_policy:BatteryFirst

[cosim.algorithms]
fedavgm = examples.custom_algorithm:FedAvgM

[cosim.allocators]
broken = examples.no_such_module:nothing
"""


@pytest.fixture(autouse=True)
def clean_registries(monkeypatch: pytest.MonkeyPatch):
    """Resolving a plugin adds it to its layer's registry: undo that after each test; make examples importable."""
    monkeypatch.syspath_prepend(str(ROOT))
    saved = {kind: dict(registries._registry(kind)) for kind in registries.KINDS}
    yield
    for kind, content in saved.items():
        registry = registries._registry(kind)
        registry.clear()
        registry.update(content)


@pytest.fixture()
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A distribution declaring the examples as entry points, found on sys.path (no pip install)."""
    dist = tmp_path / "site" / "cosim_examples-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: cosim-examples\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    return tmp_path / "site"


@pytest.mark.parametrize("name", sorted(SELECTION_POLICIES))
def test_builtin_policies_pass_the_check(name: str) -> None:
    check_policy(SELECTION_POLICIES[name])


@pytest.mark.parametrize("kind", sorted(registries.KINDS))
def test_every_kind_resolves_its_builtins(kind: str) -> None:
    registry = registries._registry(kind)
    assert registries.builtin_names(kind) == tuple(registry)
    for name, obj in registry.items():
        assert registries.resolve(kind, name) is obj


def test_examples_pass_the_conformance_checks() -> None:
    from examples.custom_algorithm import FedAvgM
    from examples.custom_policy import BatteryFirst

    check_policy(BatteryFirst)
    check_algorithm(FedAvgM)


def test_import_paths_of_builtins_give_byte_identical_traces(tmp_path: Path) -> None:
    """Every registry accepts ``package.module:Name``: naming the built-ins by import path changes nothing."""
    by_path = {
        "cells.0.pathloss": "radio.pathloss:UMi",
        "devices.mobility.model": "radio.mobility:Static",
        "fl.allocator": "radio.ofdma:min_time",
        "fl.selection": "cosim.engine.policies:RoundRobinSelection",
        "learning.algorithm.name": "learning.algorithms:FedAvg",
        "learning.dataset.name": "learning.data.federated:_load_synthetic",
        "learning.model.name": "learning.models:ViT",
    }
    by_name = {"fl.allocator": "min_time", "fl.selection": "round_robin", **SURROGATE, "fl.rounds": 2}
    plain = cosim.run(SMOKE, out=tmp_path / "names", overrides=by_name, progress=False)
    plugged = cosim.run(SMOKE, out=tmp_path / "paths", overrides={**by_name, **by_path}, progress=False)
    for name in ("events.parquet", "rounds.parquet", "devices.parquet"):
        assert (plain.path / name).read_bytes() == (plugged.path / name).read_bytes(), name
    assert plugged.scenario.fl.selection == "cosim.engine.policies:RoundRobinSelection"
    assert plugged.summary["algorithm"] == "learning.algorithms:FedAvg"


def test_custom_algorithm_by_import_path_trains(tmp_path: Path) -> None:
    """FedAvgM with momentum 0 and server lr 1 is FedAvg; by import path it runs in the engine."""
    base = {"fl.rounds": 2, "learning.algorithm.params": {"lr": 3e-3}}
    fedavg = cosim.run(SMOKE, out=tmp_path / "fedavg", overrides={**base, "learning.algorithm": "fedavg"},
                       progress=False)
    plain = cosim.run(SMOKE, out=tmp_path / "m0", progress=False, overrides={
        **base, "learning.algorithm.name": "examples.custom_algorithm:FedAvgM",
        "learning.algorithm.params": {"lr": 3e-3, "server_momentum": 0.0, "server_lr": 1.0}})
    np.testing.assert_allclose(plain.rounds["train_loss"], fedavg.rounds["train_loss"], rtol=1e-5)
    assert plain.summary["uplink_bytes"] == fedavg.summary["uplink_bytes"]
    with pytest.raises(ScenarioError) as info:
        cosim.load_scenario(SMOKE, overrides={"learning.algorithm.name": "examples.custom_algorithm:FedAvgM",
                                              "learning.algorithm.params": {"server_momentum": 1.5}})
    assert info.value.problems == ["learning.algorithm.params.server_momentum: server_momentum=1.5 must be in [0, 1)"]


def test_custom_policy_by_import_path_selects_by_battery(tmp_path: Path) -> None:
    run = cosim.run(SMOKE, out=tmp_path / "r", progress=False, overrides={
        **SURROGATE, "fl.rounds": 1, "fl.selection": "examples.custom_policy:BatteryFirst",
        "devices.profiles": {"high": 0.5, "iot": 0.5}})
    chosen = sorted(run.events.loc[run.events.kind == "selected", "device"])
    battery = run.devices.set_index("device")["battery_j"] + run.devices.set_index("device")["energy_j"]
    assert chosen == sorted(battery.sort_values(ascending=False, kind="stable").index[:3])


def test_entry_points_by_name(installed: Path, tmp_path: Path) -> None:
    assert "battery_first" in registries.names("policies") and "fedavgm" in registries.names("algorithms")
    scenario = cosim.load_scenario(SMOKE, overrides={"fl.selection": "battery_first", "learning.algorithm": "fedavgm"})
    from examples.custom_algorithm import FedAvgM
    from examples.custom_policy import BatteryFirst

    assert registries.resolve("policies", "battery_first") is BatteryFirst
    assert registries.resolve("algorithms", "fedavgm") is FedAvgM
    run = cosim.run(scenario, out=tmp_path / "ep", overrides={"fl.rounds": 1}, progress=False)
    assert run.summary["algorithm"] == "fedavgm" and run.summary["rounds"] == 1
    # a fresh interpreter finds them too (what `cosim run` does for a pip-installed plugin)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(installed), str(ROOT)])}
    proc = subprocess.run([sys.executable, "-m", "cosim", "validate", str(SMOKE), "--set", "fl.selection=battery_first"],
                          capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "selection battery_first" in proc.stdout


def test_resolution_errors_are_one_line(installed: Path) -> None:
    cases = {
        "fl.selection": ("bogus", "fl.selection: 'bogus' is not one of random, round_robin, channel_aware, energy_aware, "
                                  "deadline_aware, battery_first, or an import path 'package.module:Name'"),
        "fl.allocator": ("broken", "fl.allocator: 'broken': entry point 'examples.no_such_module:nothing' of "
                                   "'cosim.allocators' failed to load (ModuleNotFoundError: No module named "
                                   "'examples.no_such_module')"),
        "devices.mobility.model": ("nope.nope:Walk", "devices.mobility.model: 'nope.nope:Walk': cannot import "
                                                     "'nope.nope' (No module named 'nope')"),
        "learning.algorithm.name": ("examples.custom_algorithm:Missing", "learning.algorithm.name: "
                                    "'examples.custom_algorithm:Missing': module 'examples.custom_algorithm' has "
                                    "no attribute 'Missing'"),
        "cells.0.pathloss": ("radio.pathloss:", "cells.0.pathloss: 'radio.pathloss:' is not an import path "
                                                "'package.module:Name'"),
    }
    for key, (value, message) in cases.items():
        with pytest.raises(ScenarioError) as info:
            cosim.load_scenario(SMOKE, overrides={key: value})
        assert info.value.problems == [message]


def test_checks_reject_broken_plugins() -> None:
    class PicksDead:
        def __init__(self, n_devices: int) -> None:
            self.n = n_devices

        def select(self, ctx, k):
            return np.flatnonzero(~ctx.alive)[:k]

    with pytest.raises(ConformanceError, match="select returned dead devices"):
        check_policy(PicksDead)

    def half_band(links, remaining, average):
        return np.full(links.n, 0.5 if links.n > 1 else 1.0)

    with pytest.raises(ConformanceError, match="sum to 1"):
        check_allocator(half_band)

    from learning.algorithms import FedAvg

    class Forgetful(FedAvg):
        def downlink(self, device, round_idx):
            payload = super().downlink(device, round_idx)
            payload.config.pop("round")
            return payload

    with pytest.raises(ConformanceError, match="downlink config must carry the round number"):
        check_algorithm(Forgetful)


def test_radio_checks_reject_broken_models() -> None:
    from radio.mobility import RandomWaypoint
    from radio.pathloss import FreeSpace

    class Escapes(RandomWaypoint):
        @property
        def positions_m(self):
            return super().positions_m + 1e4  # reports devices outside the area

    with pytest.raises(ConformanceError, match="inside the area"):
        check_mobility(Escapes)

    class Negative(FreeSpace):
        def loss_db(self, d2d_m, h_ut_m, los):
            return -super().loss_db(d2d_m, h_ut_m, los)

    with pytest.raises(ConformanceError, match="finite and > 0 dB"):
        check_pathloss(Negative)
