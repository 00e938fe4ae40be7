"""The README's Python examples run as written: every ```python block, in a fresh interpreter.

Each block runs in a temporary directory laid out like the repository root
(``scenarios/`` and ``examples/`` linked in) that also holds ``runs/urban_50dev``:
a tiny run standing in for the reference run the README's trace example reads (the
real one takes minutes).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"^```python\n(.*?)^```", (ROOT / "README.md").read_text(encoding="utf-8"), flags=re.M | re.S)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import cosim

    root = tmp_path_factory.mktemp("readme")
    for name in ("scenarios", "examples"):
        (root / name).symlink_to(ROOT / name, target_is_directory=True)
    cosim.run(ROOT / "scenarios" / "smoke.yaml", out=root / "runs" / "urban_50dev", overrides={"fl.rounds": 2},
              progress=False)
    return root


def test_the_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 3  # traces with pandas, the Python API, plugin checks


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_python_block_runs(index: int, workdir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", BLOCKS[index]], cwd=workdir, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, f"README python block {index} failed:\n{BLOCKS[index]}\n{proc.stderr[-3000:]}"


def test_every_radio_cell_and_device_key_is_in_the_scenario_table() -> None:
    from cosim.scenario.schema_world import Cell, Devices, Handover, Radio

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text[text.index("### Scenario reference"):text.index("### Radio and energy model")]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    missing = []
    for prefix, model in (("cells[].", Cell), ("devices.", Devices), ("radio.", Radio), ("radio.handover.", Handover)):
        for key in model.model_fields:
            if key == "handover" and model is Radio:
                continue  # its own keys are checked below
            first = [r for r in rows if f"`{prefix}{key}" in r]
            # A row may list sibling keys after the first one: "`cells[].x_m`, `y_m`".
            sibling = [r for r in rows if r.startswith(f"| `{prefix}") and f", `{key}`" in r.split(" | ")[0]]
            if not first and not sibling:
                missing.append(prefix + key)
    assert not missing, f"scenario keys missing from the README table: {missing}"
