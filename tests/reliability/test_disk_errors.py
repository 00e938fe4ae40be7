"""Disk and I/O errors (#18): a failed write ends the run with one line naming the file,
exit 2, leaves no temp file and keeps the last good checkpoint, from which the run resumes
byte-identical. The fault is injected into the Parquet writer: half a file, then the
``OSError`` pyarrow raises on a full disk."""

from __future__ import annotations

import errno
import filecmp
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cosim import cli
from cosim.engine.checkpoint import CHECKPOINT_NAME, load_checkpoint

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "scenarios" / "smoke.yaml")
SETS = ["learning.mode=surrogate", "fl.rounds=4", "output.checkpoint_every=1", "output.formats=[parquet]"]
TRACES = ("events.parquet", "rounds.parquet", "devices.parquet", "summary.json")


def run(out: Path, *extra: str) -> int:
    return cli.main(["run", SMOKE, "--quiet", "--out", str(out), *extra, *[a for s in SETS for a in ("--set", s)]])


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "run"
    assert run(out) == 0
    return out


@pytest.mark.parametrize("table", ["events", "devices"])
def test_full_disk_while_writing_traces(table: str, reference: Path, tmp_path: Path, monkeypatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    real_write_table = pq.write_table

    def disk_full_for_one_table(data, where, **options):
        if Path(where).name.endswith(f"-{table}.parquet"):
            Path(where).write_bytes(b"PAR1 half a file")
            # what pyarrow raises on a full disk (measured on /dev/full): an errno, no file name
            raise OSError(errno.ENOSPC, "Error writing bytes to file. Detail: [errno 28] No space left on device")
        return real_write_table(data, where, **options)

    monkeypatch.setattr(pq, "write_table", disk_full_for_one_table)
    out = tmp_path / "run"
    capsys.readouterr()
    assert run(out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"cosim: error: {out / (table + '.parquet')}: No space left on device"], err
    assert not list(out.glob(".cosim-tmp-*")), "temp files left behind"
    assert not (out / "summary.json").exists() and not (out / f"{table}.parquet").exists()
    assert load_checkpoint(out / CHECKPOINT_NAME)["rounds_done"] == 3  # the last good one, intact
    monkeypatch.setattr(pq, "write_table", real_write_table)
    assert cli.main(["run", "--resume", str(out), "--quiet"]) == 0
    for name in TRACES:
        assert filecmp.cmp(reference / name, out / name, shallow=False), f"{name} differs"
