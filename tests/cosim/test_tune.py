"""``cosim tune``: selection on validation only, tuned.yaml, resume, ``--params`` in run and compare."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

import cosim
from cosim import cli
from cosim.params import check_params, load_params, params_overrides
from cosim.scenario import ScenarioError
from cosim.tuning import Tuning, check_metric, select

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "scenarios" / "smoke.yaml")
LR = "learning.algorithm.params.lr"


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Tuning:
    """fedavg on the smoke scenario, 3 rounds: lr 1e-7 (learns nothing) against 5e-3 (learns)."""
    out = tmp_path_factory.mktemp("tune")
    return cosim.tune(SMOKE, "fedavg", grid={"lr": ["1e-7", "5e-3"]}, out=out, overrides=["fl.rounds=3"],
                      progress=False)


def test_tune_chooses_the_good_lr_on_validation(tuned) -> None:
    table = tuned.table
    assert list(table[LR]) == ["1e-7", "5e-3"]
    assert list(table["chosen"]) == [False, True] and list(table["rank"]) == [2, 1]
    assert table["val_accuracy_mean"][1] > table["val_accuracy_mean"][0] + 0.1
    assert tuned.chosen == {LR: 0.005}
    assert yaml.safe_load(tuned.file.read_text(encoding="utf-8")) == {"fedavg": {LR: 0.005}}
    # the table holds the validation metric read from each run's summary, and no test metric
    assert "final_accuracy" not in tuned.runs.columns
    out = tuned.file.parent
    for _, row in tuned.runs.iterrows():
        summary = cosim.open_run(out / row["run_dir"]).summary
        assert row["val_accuracy"] == summary["final_val_accuracy"]
        assert cosim.open_run(out / row["run_dir"]).scenario.learning.algorithm.name == "fedavg"
    assert (out / "comparison.parquet").is_file() and (out / "tuning.csv").is_file()


def test_tune_rerun_skips_finished_runs(tuned, capsys: pytest.CaptureFixture[str]) -> None:
    out = tuned.file.parent
    status = cli.main(["tune", SMOKE, "--algorithm", "fedavg", "--grid", "lr=1e-7,5e-3", "--set", "fl.rounds=3",
                       "--out", str(out)])
    printed = capsys.readouterr().out
    assert status == 0
    assert "2 of 2 runs already done, 0 to run" in printed
    assert f"chosen for fedavg: {LR}=0.005" in printed


def test_select_ties_go_to_the_first_setting_in_grid_order() -> None:
    assert select([0.5, 0.7, 0.7]) == 1
    assert select([0.7, 0.7 + 1e-13, 0.2]) == 0  # within the tie tolerance
    assert select([math.nan, 0.1, 0.3]) == 2  # a setting without a finite value is never chosen
    assert select([math.nan, math.nan]) is None


def test_test_metrics_are_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert check_metric("val_accuracy") == "final_val_accuracy"
    for metric in ("final_accuracy", "final_mean_device_accuracy", "final_global_accuracy", "test_accuracy"):
        with pytest.raises(ScenarioError, match=f"--metric {metric}: a test metric"):
            check_metric(metric)
    status = cli.main(["tune", SMOKE, "--algorithm", "fedavg", "--grid", "lr=1e-3", "--metric", "final_accuracy",
                       "--out", str(tmp_path / "t")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and err == ["cosim: error: --metric final_accuracy: a test metric; tuning selects on "
                                   "validation metrics only (allowed: val_accuracy, final_val_accuracy)"]
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize(("args", "expected"), [
    (["--algorithm", "fedvag", "--grid", "lr=1e-3"], "--algorithm fedvag: 'fedvag' is not one of fedavg, "),
    (["--algorithm", "fedavg", "--grid", "bogus=1,2"],
     "--grid learning.algorithm.params.bogus: learning.algorithm.params: unknown fedavg parameter 'bogus'"),
    (["--algorithm", "fedavg", "--grid", "fl.bogus=1,2"], "fl.bogus: unknown key (allowed: rounds, "),
    (["--algorithm", "fedavg"], "--grid: empty; give at least one --grid KEY=V1,V2,..."),
    (["--algorithm", "fedavg", "--grid", "lr="], "--grid lr=: empty value"),
    (["--algorithm", "fedavg", "--grid", "seed=1,2"], "--grid seed: cannot be tuned"),
    (["--algorithm", "fedavg", "--grid", "lr=1e-3", "--metric", "energy_j"],
     "--metric energy_j: not a validation metric of the run summary (allowed: val_accuracy"),
    (["--algorithm", "fedavg", "--grid", "lr=1e-3", "--set", "learning.mode=surrogate"],
     "learning.mode: 'surrogate' computes no accuracy; tune needs 'train'"),
    (["--algorithm", "fedavg", "--grid", "lr=1e-3", "--set", "learning.validation_fraction=0"],
     "learning.validation_fraction: 0 leaves no validation split"),
])
def test_bad_tune_input_is_one_line(args: list[str], expected: str, capsys: pytest.CaptureFixture[str],
                                    tmp_path: Path) -> None:
    status = cli.main(["tune", SMOKE, *args, "--out", str(tmp_path / "t")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and err[0].startswith(f"cosim: error: {expected}"), err
    assert not (tmp_path / "t").exists()


def test_compare_params_applies_tuned_values_to_its_algorithm_only(tuned, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cmp"
    status = cli.main(["compare", SMOKE, "--vary", "learning.algorithm=fedavg,local", "--set", "learning.mode=surrogate",
                       "--set", "fl.rounds=1", "--set", f"{LR}=1e-3", "--params", str(tuned.file), "--quiet",
                       "--out", str(out)])
    capsys.readouterr()
    assert status == 0
    fedavg = yaml.safe_load((out / "cells/fedavg/rep0/scenario.yaml").read_text(encoding="utf-8"))
    local = yaml.safe_load((out / "cells/local/rep0/scenario.yaml").read_text(encoding="utf-8"))
    assert fedavg["learning"]["algorithm"]["params"]["lr"] == 0.005  # the tuned value beats --set
    assert local["learning"]["algorithm"]["params"]["lr"] == 0.001  # another algorithm keeps its own
    # a key swept with --vary is swept, tuned or not
    swept = cosim.compare(SMOKE, vary={LR: [0.02]}, out=tmp_path / "swept", params=tuned.file, progress=False,
                          overrides={"learning.mode": "surrogate", "fl.rounds": 1})
    assert cosim.open_run(tmp_path / "swept" / swept["run_dir"][0]).scenario.learning.algorithm.params["lr"] == 0.02


def test_run_params_applies_tuned_values(tuned, tmp_path: Path) -> None:
    run = cosim.run(SMOKE, out=tmp_path / "run", overrides=["learning.mode=surrogate", "fl.rounds=1"],
                    params=tuned.file, progress=False)
    assert run.scenario.learning.algorithm.params["lr"] == 0.005
    other = cosim.run(SMOKE, out=tmp_path / "local", params=tuned.file, progress=False,
                      overrides=["learning.mode=surrogate", "fl.rounds=1", "learning.algorithm.name=local", f"{LR}=1e-3"])
    assert other.scenario.learning.algorithm.params["lr"] == 0.001  # not fedavg: untouched
    assert "--set" in run.command and f"{LR}=0.005" in run.command


def test_params_files_are_checked(tmp_path: Path) -> None:
    assert check_params({"fedavg": {"lr": 0.1}}, "f") == {"fedavg": {LR: 0.1}}
    assert params_overrides({"fedavg": {LR: 0.1, "fl.rounds": 2}}, "fedavg") == [f"{LR}=0.1", "fl.rounds=2"]
    assert params_overrides({"fedavg": {LR: 0.1}}, "local") == []
    with pytest.raises(ScenarioError) as info:
        check_params({"fedvag": {"lr": 0.1}, "fedavg": {"seed": 3, "lr": 1}, "local": 5}, "f.yaml")
    assert [p.split(" (")[0].split(" is not")[0] for p in info.value.problems] == [
        "f.yaml: algorithm 'fedvag'",
        "f.yaml: fedavg.seed: cannot be set by a tuned-parameter file",
        "f.yaml: local: expected a mapping of scenario keys to values, got 5",
    ]
    one, two = tmp_path / "a.yaml", tmp_path / "b.yaml"
    one.write_text("fedavg: {lr: 0.1}\n", encoding="utf-8")
    two.write_text("fedavg: {lr: 0.2}\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"algorithm fedavg is also tuned in .*a\.yaml"):
        load_params([one, two])
