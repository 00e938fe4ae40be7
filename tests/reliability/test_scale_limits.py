"""Scale limits that hold: a train-mode population that cannot fit in memory and a
comparison too big to plan are refused at once with one line (they used to swap for
minutes, or plan for ever: ``--repeats 1000000000``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cosim import cli
from cosim.grid import MAX_GRID_RUNS
from cosim.scenario import capacity, components, load_scenario

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "scenarios" / "smoke.yaml")


def _one_line(code: int, err: str) -> str:
    lines = err.splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("cosim: error: "), err
    return lines[0]


@pytest.fixture()
def small_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine has 256 MiB."""
    monkeypatch.setattr(capacity, "machine_memory_b", lambda: 256 * 2**20)
    monkeypatch.setattr(components, "_PASSED", {})


def test_train_population_over_the_machine_memory_is_refused(small_machine, tmp_path: Path, capsys) -> None:
    line = _one_line(cli.main(["validate", SMOKE]), capsys.readouterr().err)
    assert line.startswith("cosim: error: devices.count: 6 devices in train mode need about 0.")
    assert "but this machine has 0.25 GiB" in line and "learning.mode: surrogate" in line
    assert _one_line(cli.main(["run", SMOKE, "--out", str(tmp_path / "r"), "--quiet"]), capsys.readouterr().err)
    assert not (tmp_path / "r").exists()
    assert cli.main(["validate", SMOKE, "--set", "learning.mode=surrogate"]) == 0  # no training, no estimate


def test_validate_prints_the_estimate(capsys) -> None:
    assert cli.main(["validate", SMOKE]) == 0
    memory = [line for line in capsys.readouterr().out.splitlines() if line.startswith("memory: ")]
    assert len(memory) == 1 and "GiB estimated for train mode (this machine: " in memory[0]


def test_estimate_grows_with_devices_and_personal_states() -> None:
    base = load_scenario(SMOKE)
    many = load_scenario(SMOKE, ["devices.count=100000", "fl.rounds=10", "fl.devices_per_round=1000",
                                 "learning.dataset.params={num_train: 200000, num_test: 1000, num_classes: 4}"])
    small = capacity.estimate(base, 600, (1, 28, 28), 4, personalized=False)
    big = capacity.estimate(many, 200_000, (1, 28, 28), 4, personalized=False)
    personal = capacity.estimate(many, 200_000, (1, 28, 28), 4, personalized=True)
    assert big.devices_b == 100_000 * capacity.PER_DEVICE_OVERHEAD_B and small.states_b == big.states_b == 0
    # States for the 10 x 1000 devices that ever train, not for all 100,000.
    assert personal.states_b == 10_000 * personal.parameters * 4 * capacity.STATE_COPIES
    assert personal.parameters == capacity.parameter_count(dict(base.learning.model), (1, 28, 28), 4) > 1000
    assert small.total_b < big.total_b < personal.total_b


def test_huge_repeats_and_grids_are_refused_at_once(tmp_path: Path, capsys) -> None:
    out = str(tmp_path / "cmp")
    line = _one_line(cli.main(["compare", SMOKE, "--repeats", "1000000000", "--out", out]), capsys.readouterr().err)
    assert line == f"cosim: error: --repeats 1000000000: at most {MAX_GRID_RUNS} runs per comparison"
    argv = ["compare", SMOKE, "--vary", "seed=" + ",".join(map(str, range(200))),
            "--vary", "fl.rounds=" + ",".join(map(str, range(1, 101))), "--out", out]
    line = _one_line(cli.main(argv), capsys.readouterr().err)
    assert f"200 x 100 cells x 1 repeats = 20000 runs, at most {MAX_GRID_RUNS} per comparison" in line
    assert not Path(out).exists()
