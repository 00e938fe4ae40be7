"""The ``--out`` directory of ``compare``/``tune`` follows the run-directory rules (#18): a
non-empty directory that is not a comparison (its ``comparison.csv`` would be replaced),
the current directory, a project and the input scenario's folder are refused in one line
(exit 2) with nothing written; a comparison's own directory is resumed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cosim import cli

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "scenarios" / "smoke.yaml"
SETS = ["learning.mode=surrogate", "fl.rounds=1", "output.formats=[parquet]"]


def compare_cli(capsys: pytest.CaptureFixture[str], scenario: Path, out: str) -> tuple[int, list[str]]:
    argv = ["compare", str(scenario), *(a for s in SETS for a in ("--set", s)), "--vary", "seed=1", "--out", out,
            "--quiet"]
    code = cli.main(argv)
    return code, capsys.readouterr().err.strip().splitlines()


def assert_refused(code: int, err: list[str], *fragments: str) -> None:
    assert code == 2 and len(err) == 1 and err[0].startswith("cosim: error: "), err
    for fragment in fragments:
        assert fragment in err[0], err[0]


def test_a_foreign_directory_keeps_its_comparison_csv(tmp_path: Path, capsys) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "comparison.csv").write_text("my data\n")
    assert_refused(*compare_cli(capsys, SMOKE, str(out)), str(out), "not a comparison directory")
    assert sorted(os.listdir(out)) == ["comparison.csv"] and (out / "comparison.csv").read_text() == "my data\n"


@pytest.mark.parametrize("target", [".", "project", "input_folder"])
def test_dangerous_compare_directories_are_refused(target: str, tmp_path: Path, capsys, monkeypatch) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    scenario = SMOKE
    if target == "project":
        target = str(tmp_path / "project")
        Path(target).mkdir()
        (Path(target) / "pyproject.toml").write_text("[project]\n")
    elif target == "input_folder":
        scenario = work / "study.yaml"
        scenario.write_text(SMOKE.read_text())
        target = str(work)
    before = sorted(os.listdir(work))
    assert_refused(*compare_cli(capsys, scenario, target), "refusing")
    assert sorted(os.listdir(work)) == before  # no cells/, no comparison.* written


def test_a_comparison_directory_is_resumed(tmp_path: Path, capsys) -> None:
    out = tmp_path / "cmp"
    assert compare_cli(capsys, SMOKE, str(out))[0] == 0
    (out / "notes.txt").write_text("mine")  # a user's note beside a comparison is left alone
    assert compare_cli(capsys, SMOKE, str(out))[0] == 0
    assert (out / "notes.txt").read_text() == "mine" and (out / "comparison.parquet").is_file()
