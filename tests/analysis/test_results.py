"""`python -m analysis results`: the PFL-TPS table from real tiny runs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from analysis.results import results_table, run_figures
from cosim.engine import run_simulation
from cosim.scenario import load_scenario

SMOKE = Path(__file__).resolve().parents[2] / "scenarios" / "smoke.yaml"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("results")
    out = {}
    for label, sets in {"pfl_tps": ["learning.algorithm.name=pfl_tps"],
                        "fedavg": ["learning.algorithm.name=fedavg"],
                        "no_pruning": ["learning.algorithm.name=pfl_tps",
                                       "learning.algorithm.params={pruning_enabled: false}"]}.items():
        out[label] = base / label
        run_simulation(load_scenario(SMOKE, ["fl.rounds=2", *sets]), out[label])
    return out


def test_figures_come_from_the_traces(runs):
    pfl = run_figures("pfl_tps", runs["pfl_tps"])
    summary = json.loads((runs["pfl_tps"] / "summary.json").read_text())
    assert pfl.accuracy == pytest.approx(summary["final_accuracy"])
    assert pfl.uplink_per_update_bytes == pytest.approx(summary["uplink_bytes"] / 6)  # 3 devices x 2 rounds
    assert 0.0 <= pfl.ffl_sparsity < 1.0
    # time-averaged density: the mean over rounds of the per-step means the devices report
    rounds = pd.read_parquet(runs["pfl_tps"] / "rounds.parquet")
    assert pfl.mean_ffl_sparsity == pytest.approx(1.0 - rounds["ffl_density_mean"].mean())
    assert summary["mean_ffl_density"] == pytest.approx(rounds["ffl_density_mean"].mean())
    assert pfl.threshold_resets == summary["threshold_resets"] == rounds["threshold_resets"].sum() >= 0
    dense = run_figures("no_pruning", runs["no_pruning"])
    assert dense.ffl_sparsity != dense.ffl_sparsity  # NaN: nothing is pruned, nothing reported


def test_table_has_ratios_against_fedavg(runs):
    text = results_table({k: str(v) for k, v in runs.items()}, "markdown")
    lines = text.splitlines()
    assert lines[0].startswith("| run") and len([l for l in lines if l.startswith("| ")]) == 4
    fedavg_row = next(l for l in lines if l.startswith("| fedavg"))
    assert "100.00%" in fedavg_row and "1.000" in fedavg_row
    pfl, dense = run_figures("pfl_tps", runs["pfl_tps"]), run_figures("no_pruning", runs["no_pruning"])
    points = 100 * (dense.accuracy - pfl.accuracy)
    verb = "costs" if points >= 0 else "gains"
    assert f"Pruning {verb} {abs(points):.2f} accuracy points" in text


def test_requires_pfl_tps_and_fedavg(runs):
    with pytest.raises(ValueError, match="pfl_tps"):
        results_table({"fedavg": str(runs["fedavg"])})
