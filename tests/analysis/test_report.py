"""``python -m analysis report``: one self-contained HTML page, checked by rendering it in headless Chromium."""

from __future__ import annotations

import base64
import re
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from analysis.__main__ import main as analysis_main
from analysis.io import read_trace
from analysis.plots import PLOTS
from test_analysis import write_fake_comparison

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "scenarios" / "smoke.yaml"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHECK_IMAGES = """<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  const ok = images.filter((i) => i.complete && i.naturalWidth === 800 && i.naturalHeight === 500).length;
  document.body.dataset.images = ok + "/" + images.length;
  if (ok !== images.length) console.error("an embedded figure did not load");
});
</script>"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cosim.engine import run_simulation
    from cosim.scenario import load_scenario

    out = tmp_path_factory.mktemp("report") / "smoke"
    run_simulation(load_scenario(SMOKE, ["fl.rounds=3"]), out)
    return out


@pytest.fixture(scope="module")
def comparison_dir(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    comp = write_fake_comparison(tmp_path_factory.mktemp("report") / "cmp")
    for cell in ("pfl_tps__random", "fedavg__random", "pfl_tps__null", "fedavg__null"):
        for k in (0, 1):
            shutil.copytree(run_dir, comp / "cells" / cell / f"rep{k}")
    return comp


def embedded_pngs(page: str) -> list[bytes]:
    return [base64.b64decode(data) for data in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def check_self_contained(page: str) -> None:
    assert "<script" not in page and "<link" not in page
    assert not re.search(r'(src|href)="(?!data:)', page), "a resource outside the file"
    images = embedded_pngs(page)
    assert len(images) == len(PLOTS)
    for png in images:
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24]) == (800, 500)


def test_run_report_holds_scenario_summary_rounds_and_plots(run_dir: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.html"
    assert analysis_main(["report", str(run_dir), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    page = out.read_text(encoding="utf-8")
    check_self_contained(page)
    assert "name: smoke" in page and "rounds: 3" in page  # the resolved scenario
    assert "final_accuracy" in page and "energy_j" in page  # the summary
    rounds = read_trace(run_dir, "rounds")
    per_round = page.split("<h2>Per round</h2>")[1].split("</table>")[0]
    assert per_round.count("<tr") == len(rounds) + 1  # header + one row per round


def test_comparison_report_has_the_claims_table(comparison_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp.html"
    assert analysis_main(["report", str(comparison_dir), "--out", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    check_self_contained(page)
    claims = page.split("<h2>Claims</h2>")[1].split("</table>")[0]
    cells = re.findall(r"<td>([^<]*)</td>", claims)
    assert cells[:6] == ["random", "fedavg", "+75.0", "+50.0", "+50.0", "+10.0"]  # as `analysis table` prints
    assert "Mean ± std over repeats" in page and "40 ± 14.14" in page  # energy of pfl_tps/random: 30, 50


def test_report_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert analysis_main(["report", str(tmp_path), "--out", str(tmp_path / "r.html")]) == 2
    assert capsys.readouterr().err == (f"analysis: error: {tmp_path}: neither a run directory nor a comparison "
                                       "directory\n")


def chromium(*args: str, user_data: Path) -> subprocess.CompletedProcess[str]:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={user_data}",
             "--enable-logging=stderr", "--v=0"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=180)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get update && apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(comparison_dir: Path, tmp_path: Path) -> None:
    import matplotlib.image

    report = tmp_path / "cmp.html"
    assert analysis_main(["report", str(comparison_dir), "--out", str(report)]) == 0
    shot = tmp_path / "shot.png"
    proc = chromium(f"--screenshot={shot}", "--window-size=1200,2400", report.as_uri(), user_data=tmp_path / "u1")
    assert shot.is_file(), proc.stderr[-2000:]
    assert "CONSOLE" not in proc.stderr, [l for l in proc.stderr.splitlines() if "CONSOLE" in l]
    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (2400, 1200)
    ink = (pixels < 0.9).any(axis=-1).mean()  # fraction of pixels that are not (near) white
    assert ink > 0.02 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50, "blank screenshot"
    # every embedded figure decodes in the browser (a copy of the page with a checking script)
    probe = tmp_path / "probe.html"
    probe.write_text(report.read_text(encoding="utf-8").replace("</body>", CHECK_IMAGES + "</body>"), encoding="utf-8")
    proc = chromium("--dump-dom", probe.as_uri(), user_data=tmp_path / "u2")
    assert f'data-images="{len(PLOTS)}/{len(PLOTS)}"' in proc.stdout, proc.stderr[-2000:]
    assert "CONSOLE" not in proc.stderr and "<h2>Claims</h2>" in proc.stdout
