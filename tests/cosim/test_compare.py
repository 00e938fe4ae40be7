"""``cosim compare``: grid expansion, slugs, seeds, up-front validation, parallel runs and resume."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from analysis.io import read_comparison, read_summary
from cosim import cli
from cosim.grid import (
    CompareError,
    build_plan,
    compare,
    expand_grid,
    parse_vary,
    split_values,
    unique_slugs,
)
from cosim.scenario import ScenarioError

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "scenarios" / "smoke.yaml")
SURROGATE = ("learning.mode=surrogate",)


def test_split_values_respects_brackets_and_quotes() -> None:
    assert split_values("random, channel_aware") == ["random", "channel_aware"]
    assert split_values("[1, 2],{high: 0.5, low: 0.5},'a,b'") == ["[1, 2]", "{high: 0.5, low: 0.5}", "'a,b'"]


def test_parse_vary_errors_are_one_line_each() -> None:
    assert parse_vary(["fl.selection=random,round_robin"]) == [("fl.selection", ["random", "round_robin"])]
    with pytest.raises(ScenarioError) as info:
        parse_vary(["fl.selection", "fl.rounds=1,,2", "fl.allocator=equal,equal"])
    assert info.value.problems == [
        "--vary fl.selection: expected KEY.PATH=VALUE[,VALUE...]",
        "--vary fl.rounds=1,,2: empty value",
        "--vary fl.allocator=equal,equal: repeated value",
    ]


def test_expand_grid_is_cartesian_first_key_slowest() -> None:
    assert expand_grid([["a", "b"], ["1", "2", "3"]]) == [
        ("a", "1"), ("a", "2"), ("a", "3"), ("b", "1"), ("b", "2"), ("b", "3"),
    ]
    assert expand_grid([]) == [()]


def test_unique_slugs_are_filesystem_safe_and_distinct() -> None:
    slugs = unique_slugs([("a/b", "x"), ("a b", "x"), ("{high: 1.0}", ".."), ()])
    assert slugs == ["a-b__x", "a-b__x-2", "high-1.0__x", "base"]
    assert all("/" not in s and " " not in s for s in slugs)


def test_build_plan_grid_seeds_and_shorthand() -> None:
    plan = build_plan(SMOKE, ["learning.algorithm=fedavg,local", "fl.selection=random,channel_aware,round_robin"],
                      sets=[*SURROGATE, "seed=10"], repeats=3)
    assert plan.keys == ("learning.algorithm.name", "fl.selection")
    assert plan.cells == expand_grid([["fedavg", "local"], ["random", "channel_aware", "round_robin"]])
    assert len(set(plan.slugs)) == 6
    assert len(plan.runs) == 18 and len({r.run_dir for r in plan.runs}) == 18
    first = plan.runs[:3]
    assert [r.seed for r in first] == [10, 11, 12]
    assert [r.run_dir for r in first] == [f"cells/fedavg__random/rep{k}" for k in range(3)]
    assert first[1].overrides == (*SURROGATE, "seed=10", "learning.algorithm.name=fedavg", "fl.selection=random",
                                  "seed=11")
    plain = build_plan(SMOKE, ["learning.algorithm.name=local"], sets=SURROGATE, repeats=2)
    assert plain.keys == ("learning.algorithm.name",) and [r.seed for r in plain.runs] == [1, 2]


def test_invalid_cells_fail_before_anything_runs(tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    with pytest.raises(ScenarioError) as info:
        compare(SMOKE, ["fl.bogus=1,2", "fl.selection=random,bad"], out, sets=SURROGATE)
    assert info.value.problems == [
        "fl.bogus: unknown key (allowed: rounds, devices_per_round, selection, allocator, deadline_s, "
        "min_updates, dvfs, mode, concurrency, buffer_size, server_lr, mixing, staleness, pf_time_constant_s)",
        "fl.selection: 'bad' is not one of random, round_robin, channel_aware, energy_aware, deadline_aware, "
        "or an import path 'package.module:Name'",
    ]
    assert not out.exists()
    with pytest.raises(ScenarioError, match="--baseline fl.selection=x: not a varied value"):
        build_plan(SMOKE, ["fl.selection=random"], SURROGATE, baseline="fl.selection=x")


def test_bad_algorithm_params_in_a_cell_fail_before_anything_runs(tmp_path: Path) -> None:
    # a value the schema accepts but the cell's algorithm rejects: found by planning, not by a
    # worker after the data is loaded (the runs used to start, then fail one by one)
    out = tmp_path / "cmp"
    with pytest.raises(ScenarioError) as info:
        compare(SMOKE, ["learning.algorithm=fedavg,local", "learning.algorithm.params.lr=-1,0.01"], out,
                sets=SURROGATE)
    assert info.value.problems == [
        "cell learning.algorithm.name=fedavg, learning.algorithm.params.lr=-1: "
        "learning.algorithm.params.lr: lr must be > 0, got -1",
        "cell learning.algorithm.name=local, learning.algorithm.params.lr=-1: "
        "learning.algorithm.params.lr: lr must be > 0, got -1",
    ]
    assert not out.exists()
    with pytest.raises(ScenarioError, match="learning.algorithm.params: unknown fedavg parameter 'lrr'"):
        build_plan(SMOKE, ["learning.algorithm.params.lrr=0.1"], SURROGATE)


def test_cli_compare_error_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["compare", SMOKE, "--vary", "fl.rounds=1,0", "--out", str(tmp_path / "c")]) == 2
    assert capsys.readouterr().err == "cosim: error: fl.rounds: 0 must be >= 1\n"


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    out = tmp_path_factory.mktemp("compare") / "cmp"
    lines: list[str] = []
    _, report = compare(SMOKE, ["learning.algorithm=fedavg,local"], out, sets=SURROGATE, repeats=2, workers=1,
                        target_accuracy=0.5, log=lines.append)
    assert sorted(report.executed) == sorted(f"cells/{a}/rep{k}" for a in ("fedavg", "local") for k in (0, 1))
    assert report.skipped == []
    return out, lines


def test_compare_writes_runs_and_comparison(finished: tuple[Path, list[str]]) -> None:
    out, lines = finished
    assert lines[0] == "0 of 4 runs already done, 4 to run with 1 worker(s)"
    table = pq.read_table(out / "comparison.parquet")
    assert table.column_names == ["learning.algorithm.name", "repeat", "seed", "run_dir", "final_accuracy",
                                  "sim_time_s", "time_to_target_s", "energy_j", "uplink_bytes", "downlink_bytes",
                                  "rounds"]
    rows = table.to_pylist()
    assert [(r["learning.algorithm.name"], r["repeat"], r["seed"]) for r in rows] == [
        ("fedavg", 0, 1), ("fedavg", 1, 2), ("local", 0, 1), ("local", 1, 2),
    ]
    for row in rows:
        summary = read_summary(out / row["run_dir"])
        assert summary["seed"] == row["seed"] and summary["algorithm"] == row["learning.algorithm.name"]
        assert summary["mode"] == "surrogate"
        assert row["energy_j"] == summary["energy_j"] and row["uplink_bytes"] == summary["uplink_bytes"]
        assert row["time_to_target_s"] != row["time_to_target_s"]  # surrogate: no accuracy, never reached
    assert rows[0]["uplink_bytes"] > 0 and rows[2]["uplink_bytes"] == 0  # local training sends nothing
    assert read_comparison(out).varied == ["learning.algorithm.name"]  # the CSV twin exists too
    assert (out / "comparison.csv").is_file() and (out / "comparison.json").is_file()


def test_compare_resumes_and_reruns_only_missing(finished: tuple[Path, list[str]], tmp_path: Path) -> None:
    source, _ = finished
    out = tmp_path / "cmp"
    shutil.copytree(source, out)
    summaries = sorted(out.glob("cells/*/rep*/summary.json"))
    mtimes = {p: os.stat(p).st_mtime_ns for p in summaries}
    _, report = compare(SMOKE, ["learning.algorithm=fedavg,local"], out, sets=SURROGATE, repeats=2, workers=1)
    assert report.executed == [] and len(report.skipped) == 4
    assert {p: os.stat(p).st_mtime_ns for p in summaries} == mtimes
    with pytest.raises(CompareError, match="existing run has a different scenario.yaml"):
        compare(SMOKE, ["learning.algorithm=fedavg,local"], out, sets=[*SURROGATE, "fl.rounds=3"], repeats=2)
    # A run written before a key existed (its default keeps the old behaviour) is the same run.
    old = out / "cells/fedavg/rep0/scenario.yaml"
    text = old.read_text(encoding="utf-8")
    assert "  idle_update_s: null\n" in text
    old.write_text(text.replace("  idle_update_s: null\n", ""), encoding="utf-8")
    _, report = compare(SMOKE, ["learning.algorithm=fedavg,local"], out, sets=SURROGATE, repeats=2, workers=1)
    assert report.executed == [] and len(report.skipped) == 4
    old.write_text(text.replace("seed: 1\n", "seed: 5\n", 1), encoding="utf-8")  # but not another run
    with pytest.raises(CompareError, match="existing run has a different scenario.yaml"):
        compare(SMOKE, ["learning.algorithm=fedavg,local"], out, sets=SURROGATE, repeats=2)
    old.write_text(text, encoding="utf-8")
    (out / "cells/local/rep1/summary.json").unlink()
    _, report = compare(SMOKE, ["learning.algorithm=fedavg,local"], out, sets=SURROGATE, repeats=3, workers=1)
    assert sorted(report.executed) == ["cells/fedavg/rep2", "cells/local/rep1", "cells/local/rep2"]
    assert len(report.skipped) == 3
    assert len(read_comparison(out)) == 6


def test_cli_compare_prints_table_on_finished_grid(finished: tuple[Path, list[str]],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = finished
    argv = ["compare", SMOKE, "--set", SURROGATE[0], "--vary", "learning.algorithm=fedavg,local", "--repeats", "2",
            "--baseline", "learning.algorithm=local", "--out", str(out)]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert "4 of 4 runs already done, 0 to run" in text
    ratio_rows = [line.split() for line in text.split("ratio of cell means")[1].splitlines() if line.startswith("local")]
    assert ratio_rows == [["local", "local", "n/a", "1", "n/a", "1", "n/a", "n/a", "1"]]
