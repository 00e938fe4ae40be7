"""``analysis``: reading traces (Parquet and CSV), comparison tables, claims, plots, CLI."""

from __future__ import annotations

import math
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from analysis.__main__ import main as analysis_main
from analysis.io import TRACE_TABLES, read_comparison, read_trace
from analysis.plots import DPI, FIGSIZE, PLOTS, collect_series, map_figure, mean_rounds, phase_intervals, plot_all
from analysis.table import aggregate, baseline_refs, claims, format_cells, format_claims, time_to_target_s

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "scenarios" / "smoke.yaml"
WIDTH_PX, HEIGHT_PX = 800, 500


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained smoke run (3 rounds, Parquet + CSV)."""
    from cosim.engine import run_simulation
    from cosim.scenario import load_scenario

    out = tmp_path_factory.mktemp("runs") / "smoke"
    scenario = load_scenario(SMOKE, ["fl.rounds=3", "output.formats=[parquet, csv]"])
    run_simulation(scenario, out)
    return out


@pytest.fixture()
def csv_only(run_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "csv_only"
    shutil.copytree(run_dir, copy)
    for parquet in copy.glob("*.parquet"):
        parquet.unlink()
    return copy


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_figure_constants_match_expected_pixels() -> None:
    assert (round(FIGSIZE[0] * DPI), round(FIGSIZE[1] * DPI)) == (WIDTH_PX, HEIGHT_PX)


def test_csv_traces_read_like_parquet(run_dir: Path, csv_only: Path) -> None:
    for name in TRACE_TABLES:
        parquet, csv = read_trace(run_dir, name), read_trace(csv_only, name)
        pd.testing.assert_frame_equal(parquet, csv, check_exact=True)  # same dtypes, same values
        assert not (parquet.dtypes == object).any(), name
    events = read_trace(run_dir, "events")
    assert isinstance(events["kind"].dtype, pd.CategoricalDtype)
    assert [str(t) for t in events.dtypes] == ["float64", "int64", "int64", "int64", "category", "int64", "float64",
                                               "float64", "float64", "str"]
    rounds = read_trace(csv_only, "rounds")
    assert np.isfinite(rounds["accuracy"]).all()  # trained run: every round evaluated


def test_time_to_target_first_round_reaching_target() -> None:
    rounds = {"round": np.array([2, 0, 1, 3]), "end_s": np.array([30.0, 10.0, 20.0, 40.0]),
              "accuracy": np.array([0.81, 0.5, np.nan, 0.9])}
    assert time_to_target_s(rounds, 0.8) == 30.0
    assert time_to_target_s(rounds, 0.5) == 10.0
    assert math.isnan(time_to_target_s(rounds, 0.95))


def write_fake_comparison(directory: Path, csv_only: bool = False) -> Path:
    """Two algorithms × two selections × two repeats with known numbers."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = []
    # (algorithm, selection) -> per-repeat (accuracy, time, ttt, energy)
    numbers = {
        ("pfl_tps", "random"): [(0.80, 90.0, 40.0, 30.0), (0.84, 110.0, 60.0, 50.0)],
        ("fedavg", "random"): [(0.70, 200.0, 100.0, 160.0), (0.74, 200.0, math.nan, 160.0)],
        ("pfl_tps", "null"): [(0.60, 50.0, math.nan, 10.0), (0.60, 50.0, math.nan, 10.0)],
        ("fedavg", "null"): [(0.65, 100.0, math.nan, 20.0), (0.65, 100.0, math.nan, 20.0)],
    }
    for (algorithm, selection), reps in numbers.items():
        for k, (acc, t, ttt, e) in enumerate(reps):
            rows.append({"learning.algorithm.name": algorithm, "fl.selection": selection, "repeat": k, "seed": 1 + k,
                         "run_dir": f"cells/{algorithm}__{selection}/rep{k}", "final_accuracy": acc,
                         "sim_time_s": t, "time_to_target_s": ttt, "energy_j": e, "uplink_bytes": 1000 * (k + 1),
                         "downlink_bytes": 2000, "rounds": 5})
    table = pa.Table.from_pylist(rows)
    if csv_only:
        pa_csv.write_csv(table, directory / "comparison.csv")
    else:
        pq.write_table(table, directory / "comparison.parquet")
    return directory


@pytest.mark.parametrize("csv_only", [False, True])
def test_aggregate_and_claims_exact(tmp_path: Path, csv_only: bool) -> None:
    comp = read_comparison(write_fake_comparison(tmp_path / "c", csv_only))
    assert comp.varied == ["learning.algorithm.name", "fl.selection"]
    assert comp.cells() == [("pfl_tps", "random"), ("fedavg", "random"), ("pfl_tps", "null"), ("fedavg", "null")]
    stats = aggregate(comp)
    first = stats[0]
    assert first.n == 2 and first.mean["energy_j"] == pytest.approx(40.0)
    assert first.std["energy_j"] == pytest.approx(math.sqrt(200.0))  # sample std of 30, 50
    assert stats[1].count["time_to_target_s"] == 1 and stats[1].mean["time_to_target_s"] == 100.0
    assert math.isnan(stats[1].std["time_to_target_s"])
    assert baseline_refs(stats, comp.varied) == [0, 0, 0, 0]
    assert baseline_refs(stats, comp.varied, {"learning.algorithm": "fedavg"}) == [1, 1, 3, 3]
    with pytest.raises(ValueError, match="no such cell"):
        baseline_refs(stats, comp.varied, {"fl.selection": "greedy"})
    found = claims(comp, "pfl_tps")
    assert [(c.others, c.baseline) for c in found] == [(("random",), "fedavg"), (("null",), "fedavg")]
    random, null = found
    assert random.energy_reduction_pct == pytest.approx(75.0)  # 100·(1 − 40/160)
    assert random.time_reduction_pct == pytest.approx(50.0)  # 100·(1 − 100/200)
    assert random.time_to_target_reduction_pct == pytest.approx(50.0)  # 100·(1 − 50/100)
    assert random.accuracy_gain_pts == pytest.approx(10.0)  # 100·(0.82 − 0.72)
    assert null.energy_reduction_pct == pytest.approx(50.0) and null.time_reduction_pct == pytest.approx(50.0)
    assert math.isnan(null.time_to_target_reduction_pct) and null.accuracy_gain_pts == pytest.approx(-5.0)


def test_claims_table_text_and_markdown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = write_fake_comparison(tmp_path / "c")
    text = format_claims(read_comparison(directory), "pfl_tps").splitlines()
    assert re.split(r"\s{2,}", text[1]) == ["selection", "vs", "energy reduction %", "time reduction %",
                                            "time-to-target reduction %", "accuracy gain (pts)"]
    assert text[3].split() == ["random", "fedavg", "+75.0", "+50.0", "+50.0", "+10.0"]
    assert text[4].split() == ["null", "fedavg", "+50.0", "+50.0", "n/a", "-5.0"]
    assert analysis_main(["table", str(directory), "--format", "markdown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("| selection") and set(lines[2]) <= {"|", "-"}
    assert [c.strip() for c in lines[3].strip("|").split("|")] == ["random", "fedavg", "+75.0", "+50.0", "+50.0",
                                                                   "+10.0"]
    assert analysis_main(["table", str(directory), "--method", "fedprox"]) == 2
    err = capsys.readouterr().err
    assert err == "analysis: error: method 'fedprox' is not among the compared algorithms (pfl_tps, fedavg)\n"


def test_phase_intervals_chain_download_compute_upload(run_dir: Path) -> None:
    events = read_trace(run_dir, "events")
    rounds = read_trace(run_dir, "rounds")
    intervals = phase_intervals(events, 1)
    by_device: dict[int, dict[str, tuple[float, float]]] = {}
    for device, phase, start, end in intervals:
        by_device.setdefault(device, {})[phase] = (start, end)
    assert len(by_device) == int(rounds["completed"][1])
    from cosim.engine.links import link_abstractions
    from cosim.scenario import load_scenario

    access_s = link_abstractions(load_scenario(SMOKE).radio)[2]  # grant wait before each transfer's first byte
    assert access_s > 0
    for phases in by_device.values():
        assert phases["download"][0] == pytest.approx(rounds["start_s"][1] + access_s, abs=1e-9)
        assert phases["compute"][0] == pytest.approx(phases["download"][1], abs=1e-9)
        assert phases["upload"][0] == pytest.approx(phases["compute"][1] + access_s, abs=1e-9)
        assert phases["upload"][1] <= rounds["end_s"][1] + 1e-9


def test_plots_from_run_dir_have_expected_size(run_dir: Path, tmp_path: Path) -> None:
    paths = plot_all([run_dir], tmp_path / "png", round_index=1)
    assert [p.name for p in paths] == [f"{name}.png" for name in PLOTS]
    for path in paths:
        assert path.stat().st_size > 5000, path
        assert png_size(path) == (WIDTH_PX, HEIGHT_PX), path


def test_plot_cli_on_csv_only_and_comparison_dir(run_dir: Path, csv_only: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    comp = write_fake_comparison(tmp_path / "cmp")
    for cell in ("pfl_tps__random", "fedavg__random", "pfl_tps__null", "fedavg__null"):
        for k in (0, 1):
            shutil.copytree(csv_only, comp / "cells" / cell / f"rep{k}")
    series = collect_series([comp])
    assert [s.label for s in series][:2] == ["algorithm=pfl_tps, selection=random", "algorithm=fedavg, selection=random"]
    mean = mean_rounds(series[0].runs)  # two identical copies: the mean is the run itself
    own = read_trace(run_dir, "rounds")
    np.testing.assert_allclose(mean["accuracy"], own["accuracy"])
    np.testing.assert_allclose(mean["cum_energy_j"], np.cumsum(own["energy_j"]))
    out = tmp_path / "png"
    assert analysis_main(["plot", str(comp), str(csv_only), "--out", str(out), "--round", "2"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == len(PLOTS)
    for name in PLOTS:
        assert png_size(out / f"{name}.png") == (WIDTH_PX, HEIGHT_PX)
    assert analysis_main(["plot", str(csv_only), "--out", str(out), "--round", "7"]) == 2
    assert "analysis: error: --round 7: not in" in capsys.readouterr().err


def test_analysis_does_not_import_the_engine() -> None:
    code = ("import sys, analysis.io, analysis.table, analysis.plots, analysis.__main__; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('cosim', 'simpy', 'radio', 'torch')); "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_identical_repeats_print_zero_spread_not_float_noise(tmp_path: Path) -> None:
    """Identical repeats printed e.g. ``0.1 ± 1.7e-17`` (numpy's std around a rounded mean); now ``± 0``."""
    assert np.array([0.1] * 3).std(ddof=1) > 0  # the noise the table used to print
    rows = [{"fl.selection": "random", "repeat": k, "seed": k, "run_dir": f"cells/random/rep{k}",
             "final_accuracy": 0.1, "sim_time_s": 1.0 + k * 2e-16, "time_to_target_s": math.nan,
             "energy_j": 10.0 + k, "uplink_bytes": 5, "downlink_bytes": 5, "rounds": 3} for k in range(3)]
    (tmp_path / "c").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "c" / "comparison.parquet")
    comp = read_comparison(tmp_path / "c")
    (stats,) = aggregate(comp)
    assert stats.std["final_accuracy"] == 0.0 and stats.std["energy_j"] == pytest.approx(1.0)
    line = format_cells(comp).splitlines()[3]
    assert "0.1 ± 0 " in line and "e-1" not in line
    assert "1 ± 0 " in line  # sim_time_s differs in the 16th digit only: noise, printed as 0
    assert "11 ± 1 " in line


def test_map_legend_fits_inside_the_figure(run_dir: Path, tmp_path: Path) -> None:
    """Long cell names used to push map.png's outside legend past the right edge (cut off)."""
    import matplotlib.pyplot as plt
    import yaml

    copy = tmp_path / "long_names"
    shutil.copytree(run_dir, copy)
    scenario = yaml.safe_load((copy / "scenario.yaml").read_text())
    for cell in scenario["cells"]:
        cell["name"] = f"a_rather_long_base_station_name_{cell['name']}"
    (copy / "scenario.yaml").write_text(yaml.safe_dump(scenario))
    fig = map_figure(copy)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (legend,) = fig.legends
    box = legend.get_window_extent(renderer)
    assert 0 <= box.x0 and box.x1 <= fig.bbox.x1 and 0 <= box.y0 and box.y1 <= fig.bbox.y1
    labels = [t.get_text() for t in legend.get_texts()]
    assert "base station a_rather_long_base_station_name_west" in labels
    assert (round(fig.bbox.width), round(fig.bbox.height)) == (WIDTH_PX, HEIGHT_PX)
    plt.close(fig)


def test_eleven_series_get_eleven_distinct_line_styles() -> None:
    # the default cycle gave the 11th method the first method's colour (paper figures have 11)
    import matplotlib.pyplot as plt

    from analysis.plots import _figure

    fig, ax = _figure()
    lines = [ax.plot([0, 1], [k, k + 1])[0] for k in range(11)]
    styles = {(line.get_color(), line.get_linestyle()) for line in lines}
    assert len(styles) == 11
    assert [line.get_linestyle() for line in lines[:10]] == ["-"] * 10  # up to 10 series: as before
    plt.close(fig)


def test_run_name_of_a_comparison_without_varied_keys_names_the_comparison(tmp_path: Path) -> None:
    from analysis.plots import run_name

    assert run_name(tmp_path / "pfl_tps" / "cells" / "base" / "rep0") == "pfl_tps/rep0"  # was base/rep0
    assert run_name(tmp_path / "cmp" / "cells" / "fedavg__random" / "rep2") == "fedavg__random/rep2"
    assert run_name(tmp_path / "my_run") == "my_run"
