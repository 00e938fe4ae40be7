"""Shared fixtures of the reliability tests: another process holding a run directory's lock."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

_HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0)  # as cosim does: an earlier holder's longer pid must not show through
os.write(fd, f"{os.getpid()}\\n".encode())
print("locked", flush=True)
time.sleep(60)
"""


@pytest.fixture
def lock_holder() -> Iterator[Callable[[Path], subprocess.Popen]]:
    """``hold(lock_file)`` starts a process that takes ``lock_file``'s lock as a running cosim
    would, returns once it holds it, and is killed when the test ends."""
    holders: list[subprocess.Popen] = []

    def hold(lock_file: Path) -> subprocess.Popen:
        holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(lock_file)], stdout=subprocess.PIPE,
                                  text=True)
        holders.append(holder)
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        return holder

    yield hold
    for holder in holders:
        holder.kill()
        holder.wait()
