"""What a new user meets first: make targets, the console script, hints that work as printed, a smoke run that learns."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import cosim
from cosim.progress import cosim_command

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "scenarios" / "smoke.yaml"


def make_dry(venv: Path, *args: str) -> str:
    proc = subprocess.run(["make", "-n", "-C", str(ROOT), f"VENV={venv}", *args], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture()
def venv(tmp_path: Path) -> Path:
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    (tmp_path / "venv" / "bin" / "python").touch()  # pretend the venv exists; make -n runs nothing
    return tmp_path / "venv"


def test_make_run_installs_only_what_running_needs(venv: Path) -> None:
    run = make_dry(venv, "run")
    assert "pip install --quiet -e '.'" in run and "[test" not in run and "ray" not in run
    assert f"{venv}/bin/cosim run scenarios/urban_50dev.yaml" in run
    test = make_dry(venv, "test")
    assert "pip install --quiet -e '.[test,ray]'" in test and "-m pytest" in test
    assert "pip install --quiet -e '.[test]'" in make_dry(venv, "test", "EXTRAS=test")


def test_install_stamp_depends_on_torch_spec_and_extras(venv: Path) -> None:
    def stamp(*args: str) -> str:
        (found,) = re.findall(r"^touch (\S+)$", make_dry(venv, *args), flags=re.M)
        return found

    default = stamp("run")
    assert stamp("run", "TORCH_SPEC=torch --index-url https://download.pytorch.org/whl/cpu") != default
    assert stamp("test") != stamp("test", "EXTRAS=test") != default
    Path(default).touch()  # installed with the default spec: nothing to do now ...
    assert "pip install" not in make_dry(venv, "run")
    assert "pip install --quiet torch" in make_dry(venv, "run", "TORCH_SPEC=torch")  # ... until the spec changes


def test_console_script_license_and_pandas_are_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == {"cosim": "cosim.cli:main"}
    assert project["license"] == "MIT"  # SPDX string, not the deprecated table
    assert any(dep.startswith("pandas") for dep in project["dependencies"])
    from cosim.cli import main

    assert main(["validate", str(SMOKE)]) == 0


def test_hints_run_as_printed(tmp_path: Path) -> None:
    line = cosim_command("--version")
    proc = subprocess.run(line, shell=True, capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"cosim {cosim.__version__}"
    from cosim.engine import RunInterrupted

    message = str(RunInterrupted(tmp_path / "run dir", 1, 3))
    command = message.split("continue with: ", 1)[1]
    assert shlex.split(command)[-3:] == ["run", "--resume", str(tmp_path / "run dir")]
    assert not command.startswith("python ")  # a bare `python` is not the venv's outside it


def test_analysis_table_help_shows_percent(capsys: pytest.CaptureFixture[str]) -> None:
    from analysis.__main__ import main

    with pytest.raises(SystemExit):
        main(["table", "--help"])
    out = capsys.readouterr().out
    assert "reduction % and" in out and "%%" not in out


def test_readme_says_how_to_reach_the_venv() -> None:
    head = (ROOT / "README.md").read_text().split("## What and why")[0]
    assert "source .venv/bin/activate" in head and ".venv/bin/cosim run" in head


def test_smoke_scenario_visibly_learns(tmp_path: Path) -> None:
    run = cosim.run(SMOKE, out=tmp_path / "smoke", progress=False)
    accuracy = run.rounds["accuracy"]
    chance = 1 / run.scenario.learning.dataset.params["num_classes"]
    assert run.summary["rounds"] == 6
    assert run.summary["final_accuracy"] > 0.6 > chance + 0.3
    assert accuracy.iloc[-1] > accuracy.iloc[0]
