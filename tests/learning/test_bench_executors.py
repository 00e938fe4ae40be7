"""bench/executors.py runs against the current API: its ``--stack`` mode (stacked ViT steps
against one device's model, the evidence behind the README's per-thread bound)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench" / "executors.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_executors", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_measure_stack_times_every_size() -> None:
    threads = torch.get_num_threads()
    try:
        ms = _bench().measure_stack([1, 3], repeats=1, steps=1, batch=4)
    finally:
        torch.set_num_threads(threads)
    assert set(ms) == {"alone", "1", "3"}
    assert all(v > 0 for v in ms.values())


def test_stack_mode_rejects_sizes_below_one() -> None:
    out = subprocess.run([sys.executable, str(BENCH), "--stack", "--stack-sizes", "2", "0"], cwd=ROOT,
                         capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 2
    assert "--stack-sizes: every size must be >= 1, got [2, 0]" in out.stderr
