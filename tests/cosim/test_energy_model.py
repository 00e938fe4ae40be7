"""The engine charges the UE power model: drawn transmit power and the CPU's static floor."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cosim.engine import run_simulation
from cosim.scenario import load_scenario
from radio.compute import PROFILES

SMOKE = Path(__file__).resolve().parents[2] / "scenarios" / "smoke.yaml"
ONE_STATIC = ["learning.mode=surrogate", "devices.count=1", "devices.profiles={mid: 1.0}", "fl.devices_per_round=1",
              "fl.rounds=1", "fl.min_updates=1", "radio.fading=none", "radio.shadowing=false",
              "devices.mobility={model: static, params: {}}"]


def events(tmp_path: Path, overrides: list[str]) -> dict:
    summary = run_simulation(load_scenario(SMOKE, overrides), tmp_path / "run")
    return summary, pq.read_table(tmp_path / "run" / "events.parquet").to_pydict()


def test_compute_energy_includes_the_static_floor(tmp_path):
    summary, ev = events(tmp_path, ONE_STATIC + ["fl.dvfs=max"])
    i = ev["kind"].index("compute_end")
    flops = int(ev["detail"][i].split()[0].removeprefix("flops="))
    mid = PROFILES["mid"]
    cycles = flops * mid.cycles_per_flop
    f = mid.f_max_hz
    # E = P_static * C / f + κ C f²  (the old model charged only κ C f²).
    expected = mid.cpu_static_power_w * cycles / f + mid.kappa * cycles * f * f
    assert ev["duration_s"][i] == pytest.approx(cycles / f, rel=1e-12)
    assert ev["energy_j"][i] == pytest.approx(expected, rel=1e-12)
    assert summary["compute_energy_j"] == pytest.approx(expected, rel=1e-12)


def test_min_energy_dvfs_without_deadline_runs_at_the_static_optimum(tmp_path):
    _, ev = events(tmp_path, ONE_STATIC + ["fl.dvfs=min_energy_within_deadline"])
    i = ev["kind"].index("compute_end")
    f_hz = float(ev["detail"][i].split("f_hz=")[1])
    mid = PROFILES["mid"]
    # f* = (0.2 W / (2 * 1e-28))^(1/3) = 1 GHz, not f_min = 0.3 GHz.
    assert f_hz == pytest.approx((mid.cpu_static_power_w / (2 * mid.kappa)) ** (1 / 3), rel=1e-3)
