"""``python -m analysis paper``: spec checks, the commands it runs, the tables, and a tiny end-to-end run."""

from __future__ import annotations

import json
import math
import os
import subprocess
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

import cosim

from analysis.__main__ import main as analysis_main
import analysis.paper as paper_module
from analysis.paper import DEFAULT_SPEC, collect, compare_commands, late_gain_pts, load_spec, reuse_runs, run_paper
from analysis.paper_tables import method_table, paired_table, results_markdown, verdict
from learning.algorithms import ALGORITHMS

ROOT = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    return path


SHIPPED_SPECS = sorted(path.name for path in DEFAULT_SPEC.parent.glob("*.yaml"))


def test_every_shipped_spec_is_checked():
    assert {"paper.yaml", "paper_quick.yaml", "long.yaml", "paper_d05.yaml"} <= set(SHIPPED_SPECS)


@pytest.mark.parametrize("name", SHIPPED_SPECS)
def test_shipped_specs_name_real_algorithms_and_parameters(name):
    spec = load_spec(DEFAULT_SPEC.with_name(name))
    assert spec.repeats >= 3
    assert (ROOT / spec.scenario).is_file()
    for label, algorithm in spec.methods.items():
        name = algorithm if isinstance(algorithm, str) else algorithm["name"]
        assert name in ALGORITHMS, label
    # every (setting, method) is a valid scenario, overrides applied as `cosim compare` applies them
    # (unknown or out-of-range algorithm parameters, e.g. an encoding a method rejects, are errors)
    for setting, label, argv in compare_commands(spec, "unused"):
        sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
        scenario = cosim.load_scenario(ROOT / spec.scenario, overrides=sets)
        assert scenario.learning.algorithm.name in ALGORITHMS, (setting, label)
    if name == "paper.yaml":
        assert spec.method == "pfl_tps"
        assert {"fedavg_ft", "local_pruned", "no_hypernetwork", "no_pruning", "no_residual"} <= set(spec.methods)
        assert any("dirichlet" in str(v) for v in spec.settings.values())


@pytest.mark.parametrize("text, message", [
    ("scenario: s.yaml\nmethod: a\nmethods: {a: fedavg}\nrounds: 3\n", "unknown key 'rounds'"),
    ("scenario: s.yaml\nmethod: b\nmethods: {a: fedavg}\n", "method 'b' is not among the methods (a)"),
    ("scenario: s.yaml\nmethod: a\nmethods: {a: fedavg}\nrepeats: 0\n", "repeats=0: need an integer in [1, 1000]"),
    ("scenario: s.yaml\nmethod: a\nmethods: {a: fedavg, ../x: local}\n", "methods label '../x'"),
    ("scenario: s.yaml\nmethod: a\nmethods: {a: {params: {}}}\n", "methods.a: an algorithm name or a mapping"),
    ("method: a\nmethods: {a: fedavg}\n", "missing key 'scenario'"),
    ("- 1\n", "a paper spec is a mapping"),
    ("scenario: s.yaml\nmethod: a\nmethods: {a: fedavg}\nconvergence_rounds: 0\n",
     "convergence_rounds=0: need an integer >= 1"),
    ("scenario: s.yaml\nmethod: a\nmethods: {a: fedavg}\nconvergence_rounds: true\n",
     "convergence_rounds=True: need an integer >= 1"),
])
def test_bad_specs_are_named_one_line_each(tmp_path, text, message):
    with pytest.raises(ValueError) as info:
        load_spec(_write(tmp_path, text))
    assert message in str(info.value)


def test_commands_set_the_method_then_the_overrides(tmp_path):
    spec = load_spec(_write(tmp_path, (
        "scenario: scenarios/smoke.yaml\nrepeats: 3\nmethod: a\nset: {fl.rounds: 2}\n"
        "settings: {d: {learning.partition: {name: dirichlet, params: {alpha: 0.1}}}}\n"
        "methods: {a: fedavg, b: {name: pfl_tps, params: {pruning_enabled: false}}}\n")))
    commands = compare_commands(spec, tmp_path / "out", workers=2)
    assert [(s, m) for s, m, _ in commands] == [("d", "a"), ("d", "b")]
    argv = commands[1][2]
    assert argv[1:5] == ["-m", "cosim", "compare", "scenarios/smoke.yaml"]
    sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    assert sets == ["learning.algorithm={name: pfl_tps, params: {pruning_enabled: false}}", "fl.rounds=2",
                    "learning.partition={name: dirichlet, params: {alpha: 0.1}}"]
    # two comparisons on two workers: side by side, one run each
    assert argv[argv.index("--repeats") + 1] == "3" and argv[argv.index("--workers") + 1] == "1"
    assert argv[argv.index("--out") + 1] == str(tmp_path / "out" / "d" / "b")


def test_a_lone_comparison_gets_every_worker(tmp_path):
    spec = load_spec(_write(tmp_path, "scenario: scenarios/smoke.yaml\nmethod: a\nmethods: {a: fedavg}\n"))
    (argv,) = [a for _, _, a in compare_commands(spec, tmp_path / "out", workers=2)]
    assert argv[argv.index("--workers") + 1] == "2"


def _four_methods(tmp_path: Path) -> Path:
    return _write(tmp_path, "scenario: scenarios/smoke.yaml\nmethod: a\n"
                            "methods: {a: fedavg, b: local, c: fedprox, d: fedper}\n")


def test_run_paper_runs_comparisons_side_by_side_and_records_wall_not_the_sum(tmp_path, monkeypatch):
    both = threading.Barrier(2, timeout=10)  # broken (an exception) unless two comparisons run at once
    started: list[str] = []

    def fake_run(argv, **_):
        started.append(Path(argv[argv.index("--out") + 1]).name)
        both.wait()
        time.sleep(0.2)
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(paper_module.subprocess, "run", fake_run)
    out = tmp_path / "out"
    t0 = time.perf_counter()
    total = run_paper(load_spec(_four_methods(tmp_path)), out, workers=2, log=lambda _: None)
    elapsed = time.perf_counter() - t0
    assert sorted(started) == ["a", "b", "c", "d"]
    # four 0.2 s comparisons overlapping two by two: their sum (>= 0.8 s) is not the wall time
    assert total == json.loads((out / "paper.json").read_text())["run_wall_s"]
    assert 0.4 <= total <= elapsed


def test_side_by_side_comparisons_log_whole_lines(tmp_path, monkeypatch):
    inside: list[int] = []
    overlapped: list[str] = []

    def slow_log(line: str) -> None:  # a writer that splits its line, as print() does
        inside.append(1)
        if len(inside) > 1:
            overlapped.append(line)
        time.sleep(0.05)
        inside.pop()

    monkeypatch.setattr(paper_module.subprocess, "run", lambda argv, **_: subprocess.CompletedProcess(argv, 0))
    run_paper(load_spec(_four_methods(tmp_path)), tmp_path / "out", workers=2, log=slow_log)
    assert overlapped == []


def test_run_paper_starts_nothing_after_a_failure_and_names_it(tmp_path, monkeypatch):
    started: list[str] = []

    def fake_run(argv, **_):
        label = Path(argv[argv.index("--out") + 1]).name
        started.append(label)
        if label == "b":
            time.sleep(1.0)  # still running when a fails
        return subprocess.CompletedProcess(argv, 3 if label == "a" else 0)

    monkeypatch.setattr(paper_module.subprocess, "run", fake_run)
    with pytest.raises(RuntimeError, match=r"default/a: cosim compare exited with status 3"):
        run_paper(load_spec(_four_methods(tmp_path)), tmp_path / "out", workers=2, log=lambda _: None)
    assert sorted(started) == ["a", "b"]  # b was already running beside a; c and d never start


def _frame(rows):
    return pd.DataFrame(rows, columns=["setting", "method", "seed", "final_accuracy", "energy_j", "sim_time_s",
                                       "time_to_target_s", "uplink_bytes"])


def test_paired_table_hand_values():
    rows = []
    for seed, (acc_m, acc_b) in enumerate([(0.90, 0.80), (0.92, 0.81), (0.91, 0.79), (0.93, 0.83), (0.90, 0.80)]):
        rows.append(["s", "m", seed, acc_m, 50.0, 10.0, 5.0, 1.0])
        rows.append(["s", "b", seed, acc_b, 100.0, 10.0, math.nan if seed < 2 else 8.0, 1.0])
    frame = _frame(rows)
    text = paired_table(frame, "m")
    row = [c.strip() for c in text.splitlines()[2].strip("|").split("|")]
    assert row[0] == "b" and row[1] == "5/5"
    assert row[2].startswith("+10.60 ± ")  # mean of 10, 11, 12, 10, 10 points
    assert row[5] == "better"
    assert row[6] == "+50.0 ± 0.0"  # every seed halves the energy: no spread
    assert row[8] == "better"  # identical non-zero differences: the sign is certain
    assert row[9] == "+0.0 ± 0.0" and row[11] == "no significant difference"
    table = method_table(frame)
    assert "n/a [0/5]" not in table and "[3/5]" in table  # b reached the target in 3 of 5 seeds
    assert "held-out accuracy" not in table  # no run held devices out


def test_held_out_accuracy_column_when_runs_hold_devices_out():
    rows = [["s", m, seed, 0.9, 50.0, 10.0, 5.0, 1.0] for m in ("m", "b") for seed in range(3)]
    frame = _frame(rows)
    frame["holdout_accuracy"] = [0.30, 0.32, 0.34, math.nan, math.nan, math.nan]  # b: no way to join
    header, _, row_m, row_b = method_table(frame).splitlines()
    heading = [c.strip() for c in header.strip("|").split("|")]
    column = heading.index("held-out accuracy")
    assert [c.strip() for c in row_m.strip("|").split("|")][column].startswith("0.3200 ± ")
    assert [c.strip() for c in row_b.strip("|").split("|")][column] == "n/a [0/3]"


def test_paired_held_out_accuracy_when_runs_hold_devices_out():
    rows = [["s", m, seed, 0.9, 50.0, 10.0, 5.0, 1.0] for m in ("m", "b", "c") for seed in range(3)]
    frame = _frame(rows)
    frame["holdout_accuracy"] = [0.70, 0.72, 0.74, 0.60, 0.61, 0.65, math.nan, math.nan, math.nan]
    header, _, row_b, row_c = paired_table(frame, "m").splitlines()
    heading = [c.strip() for c in header.strip("|").split("|")]
    cells_b = [c.strip() for c in row_b.strip("|").split("|")]
    cells_c = [c.strip() for c in row_c.strip("|").split("|")]
    at = heading.index("held-out accuracy gain [pts]")
    assert cells_b[heading.index("held-out pairs")] == "3/3"
    assert cells_b[at].startswith("+10.00 ± ")  # 10, 11, 9 points
    assert cells_b[heading.index("held-out accuracy")] == "better"
    assert cells_c[heading.index("held-out pairs")] == "0/3" and cells_c[at] == "n/a [0/3]"
    plain = _frame(rows)  # no run held devices out: the table keeps its columns
    assert "held-out" not in paired_table(plain, "m")


@pytest.mark.parametrize("rounds, gain", [(5, 2.0), (10, 12.0), (15, 22.0), (16, math.nan)])
def test_late_gain_hand_values(tmp_path, rounds, gain):
    # evaluated every 5 rounds (rounds 4, 9, 14, 19); the others are NaN in the trace
    accuracy = [0.50 if r == 4 else 0.60 if r == 9 else 0.70 if r == 14 else 0.72 if r == 19 else math.nan
                for r in range(20)]
    pd.DataFrame({"round": range(20), "accuracy": accuracy}).to_parquet(tmp_path / "rounds.parquet")
    value = late_gain_pts(tmp_path, rounds)
    assert (math.isnan(value) and math.isnan(gain)) or value == pytest.approx(gain)


def test_late_gain_column_and_its_window_in_the_text():
    rows = [["s", m, seed, 0.9, 50.0, 10.0, 5.0, 1.0] for m in ("m", "b") for seed in range(3)]
    frame = _frame(rows)
    assert "late gain" not in method_table(frame)  # specs without convergence_rounds
    frame["late_gain_pts"] = [0.1, 0.2, 0.3, 3.0, 4.0, math.nan]
    header, _, row_m, row_b = method_table(frame).splitlines()
    column = [c.strip() for c in header.strip("|").split("|")].index("late gain [pts]")
    assert [c.strip() for c in row_m.strip("|").split("|")][column].startswith("+0.20 ± ")
    assert [c.strip() for c in row_b.strip("|").split("|")][column].startswith("+3.50 ± ")
    assert [c.strip() for c in row_b.strip("|").split("|")][column].endswith("[2/3]")
    text = results_markdown(frame, "m", 0.85, convergence_rounds=20)
    assert "at least 20 rounds earlier" in text
    assert "earlier" not in results_markdown(frame, "m", 0.85)


def test_verdict_needs_significance():
    assert verdict(0.2, 5.0, higher_is_better=True) == "no significant difference"
    assert verdict(0.01, -5.0, higher_is_better=True) == "worse"
    assert verdict(0.01, -5.0, higher_is_better=False) == "better"
    assert verdict(float("nan"), 1.0, higher_is_better=True) == "no significant difference"


def test_tiny_paper_end_to_end_and_resume(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    spec = _write(tmp_path, (
        "scenario: scenarios/smoke.yaml\nrepeats: 2\ntarget_accuracy: 0.3\nmethod: fedavg\nconvergence_rounds: 1\n"
        "set: {fl.rounds: 2, devices.count: 4, fl.devices_per_round: 2}\n"
        "settings: {iid: {}}\nmethods: {fedavg: fedavg, local: {name: local, params: {lr: 0.005}}}\n"))
    out = tmp_path / "paper"
    assert analysis_main(["paper", "--spec", str(spec), "--out", str(out)]) == 0
    text = (out / "results.md").read_text(encoding="utf-8")
    assert "### iid (2 seeds)" in text and "| local | 2/2 |" in text
    assert "late gain [pts]" in text and "at least 1 round earlier" in text
    for stem in ("accuracy_vs_time", "energy_vs_accuracy", "timeline"):  # linked, relative to results.md
        assert f"](figures/iid/{stem}.png)" in text
        assert (out / "figures" / "iid" / f"{stem}.png").stat().st_size > 5000
    frame = collect(load_spec(spec), out)
    assert sorted(frame["seed"].unique()) == [1, 2]  # both methods on the same seeds
    assert (frame.groupby("method")["seed"].apply(sorted).tolist() == [[1, 2], [1, 2]])
    assert frame["late_gain_pts"].notna().all()  # round 1's accuracy minus round 0's
    summaries = sorted(out.glob("*/*/cells/*/rep*/summary.json"))
    assert len(summaries) == 4
    stamps = [p.stat().st_mtime_ns for p in summaries]
    capsys.readouterr()
    assert analysis_main(["paper", "--spec", str(spec), "--out", str(out)]) == 0  # resumes: nothing re-run
    assert [p.stat().st_mtime_ns for p in summaries] == stamps


def test_tables_only_without_runs_names_the_directory(tmp_path, capsys):
    spec = _write(tmp_path, "scenario: scenarios/smoke.yaml\nmethod: a\nmethods: {a: fedavg}\n")
    assert analysis_main(["paper", "--spec", str(spec), "--out", str(tmp_path / "o"), "--tables-only"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("analysis: error: ") and "default/a: no comparison here" in err


def _resolved(spec_name: str, setting: str, label: str) -> str:
    spec = load_spec(DEFAULT_SPEC.with_name(spec_name))
    (argv,) = [a for s, m, a in compare_commands(spec, "unused") if (s, m) == (setting, label)]
    sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    return cosim.load_scenario(ROOT / spec.scenario, overrides=sets).to_yaml()


SHIPPED_REUSE = [(name, key, source) for name in SHIPPED_SPECS
                 for key, source in load_spec(DEFAULT_SPEC.with_name(name)).reuse.items()]


@pytest.mark.parametrize("name, key, source", SHIPPED_REUSE)
def test_shipped_reuse_names_the_same_scenario(name, key, source):
    # `../<spec>/<setting>/<method>`: the runs reused are that spec's, and they must resolve to
    # the scenario this spec asks for, or `cosim compare` refuses them
    other, setting, label = Path(source).parts[1:]
    assert _resolved(name, *key.split("/")) == _resolved(f"{other}.yaml", setting, label)


def _run_dir(root: Path, rep: str, finished: bool, text: str = "x") -> Path:
    run = root / "cells" / "base" / rep
    run.mkdir(parents=True)
    (run / "scenario.yaml").write_text(text)
    if finished:
        (run / "summary.json").write_text("{}")
    return run


def test_reuse_copies_finished_runs_only_where_this_spec_has_none(tmp_path):
    spec = load_spec(_write(tmp_path, "scenario: scenarios/smoke.yaml\nmethod: a\nmethods: {a: fedavg, b: local}\n"
                                      "reuse: {default/a: ../other/default/a, default/b: ../missing/b}\n"))
    out, source = tmp_path / "out", tmp_path / "other" / "default" / "a"
    _run_dir(source, "rep0", True, "source 0")
    _run_dir(source, "rep1", False, "source 1 (unfinished)")
    _run_dir(source, "rep2", True, "source 2")
    target = out / "default" / "a"
    _run_dir(target, "rep0", True, "own 0")   # finished here: kept
    _run_dir(target, "rep2", False, "own 2")  # unfinished here: replaced
    lines: list[str] = []
    assert reuse_runs(spec, out, lines.append) == 1
    read = lambda rep: (target / "cells" / "base" / rep / "scenario.yaml").read_text()  # noqa: E731
    assert read("rep0") == "own 0" and read("rep2") == "source 2"
    assert not (target / "cells" / "base" / "rep1").exists()
    assert any("default/b" in line and "will be computed" in line for line in lines)


@pytest.mark.parametrize("reuse, message", [
    ("[a]", "reuse must map SETTING/METHOD"),
    ("{default/c: ../x}", "reuse 'default/c': not a SETTING/METHOD of this spec"),
    ("{a: ../x}", "reuse 'a': not a SETTING/METHOD of this spec"),
])
def test_bad_reuse_is_named(tmp_path, reuse, message):
    with pytest.raises(ValueError, match=message):
        load_spec(_write(tmp_path, f"scenario: s.yaml\nmethod: a\nmethods: {{a: fedavg}}\nreuse: {reuse}\n"))
