"""Where a scenario may put its run directory.

A run directory taken from the scenario (``output.directory``, or ``runs/<name>`` when
it is not set) must be a relative path inside ``runs/``: no absolute path, no ``..``
component, and a folder below ``runs/`` (not ``runs/`` itself). Any other directory is
given explicitly with ``cosim run --out`` (checked then by ``cosim.engine.rundir``).
The rule is checked when a scenario is validated (``cosim validate``, ``run``,
``compare``) and again by the engine before it writes.
"""

from __future__ import annotations

import os
from pathlib import Path

from cosim.scenario.text import short_repr

#: The folder every scenario-named run directory lies in.
RUNS_DIR = "runs"
#: What a scenario's run directory may be (the end of every refusal).
ALLOWED = (f"allowed: a relative path {RUNS_DIR}/NAME without '..'; give any other directory explicitly "
           "with --out")


def escapes_runs(directory: str | Path) -> bool:
    """True when `directory` is not a relative path strictly inside ``runs/`` without ``..``."""
    path = Path(directory)
    parts = Path(os.path.normpath(path)).parts if str(directory) else ()
    return path.is_absolute() or ".." in path.parts or len(parts) < 2 or parts[0] != RUNS_DIR


def directory_problems(directory: str | None, name: str) -> list[tuple[str, str]]:
    """``(key, problem)`` for a scenario whose run directory (``output.directory``, or
    ``runs/<name>`` when unset) escapes ``runs/``; empty when it is allowed."""
    default = f"{RUNS_DIR}/{name}"
    chosen = directory or default
    if not escapes_runs(chosen):
        return []
    if chosen == default:  # from the name
        return [("name", f"{short_repr(name)} makes the run directory {short_repr(chosen)}, which is not inside "
                 f"{RUNS_DIR}/ ({ALLOWED}; or set output.directory)")]
    return [("output.directory", f"{short_repr(chosen)} is not inside {RUNS_DIR}/ ({ALLOWED})")]
