"""Run-directory ownership: cosim writes only into directories that are its own.

A run directory carries a marker, ``.cosim-run.json`` (the run id and the hash of the
resolved scenario), written before anything else, and a lock file, ``.cosim-lock``,
held with ``fcntl.flock`` for the whole run (it names the holder's pid). The rules:

- a fresh run takes a directory that does not exist, is empty, or holds only its
  marker, lock and temp files (a run killed before it wrote ``scenario.yaml``); a directory holding
  an earlier cosim run needs ``overwrite`` (``--overwrite``), which deletes the files
  cosim writes (:data:`OWN_FILES`, its ``.cosim-tmp-*`` temp files) and nothing else;
  any other non-empty directory is refused, with or without ``overwrite``;
- a resume takes only a marked directory whose ``scenario.yaml`` still has the
  marker's scenario hash;
- never: ``/``, the home directory, the current directory or one of its ancestors, a
  directory holding ``.git`` or ``pyproject.toml`` (a project), the folder of the input
  scenario; a directory taken from the scenario (``name``/``output.directory``, not
  given with ``--out``) must lie inside ``runs/`` (no absolute path, no ``..``);
- a second process that wants a locked directory (a concurrent run, a ``compare``
  worker) fails at once, naming the directory and the holder's pid.

Every refusal is a :class:`RunDirError`: one line, the CLI's exit status 2.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from cosim.scenario.paths import ALLOWED, escapes_runs
from cosim.scenario.text import escape_controls
from cosim.trace import TMP_PREFIX, write_json_atomic

MARKER_NAME = ".cosim-run.json"
LOCK_NAME = ".cosim-lock"
#: Every file a run writes into its directory (besides its ``.cosim-tmp-*`` temp files).
OWN_FILES = frozenset({
    MARKER_NAME, LOCK_NAME, "scenario.yaml", "summary.json", "manifest.json", "checkpoint.pkl",
    "checkpoint-trace.jsonl",
    *(f"{table}.{fmt}" for table in ("events", "rounds", "devices", "updates") for fmt in ("parquet", "csv")),
})


class RunDirError(ValueError):
    """A run directory cosim must not (or cannot now) write into. The message is one line:
    control characters in it (a directory name holding a newline or an escape) are escaped."""

    def __init__(self, message: str) -> None:
        super().__init__(escape_controls(str(message)))


def scenario_sha256(scenario) -> str:
    """SHA-256 of the resolved scenario as canonical JSON, without ``output.directory``
    (a run directory may be moved or given with ``--out``; everything else is the run)."""
    dumped = scenario.model_dump(mode="json")
    output = dict(dumped.get("output") or {})
    output.pop("directory", None)
    dumped["output"] = output
    text = json.dumps(dumped, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def read_marker(directory: Path) -> dict[str, Any] | None:
    """The marker of `directory` (None when it has none or it is unreadable)."""
    try:
        marker = json.loads((directory / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and isinstance(marker.get("run_id"), str) else None


def _is_own(name: str) -> bool:
    return name in OWN_FILES or name.startswith(TMP_PREFIX)


def check_location(out_dir: Path, explicit: bool, scenario_file: str | Path | None = None) -> None:
    """Refuse directories no run may write into (see the module docstring)."""
    shown = str(out_dir)
    if not explicit:
        if escapes_runs(out_dir):
            raise RunDirError(f"output directory {shown!r} (from the scenario's name/output.directory) is not inside "
                              f"runs/ ({ALLOWED})")
    target = out_dir.resolve()
    cwd = Path.cwd().resolve()
    home = Path.home().resolve()
    if target == Path(target.anchor):
        raise RunDirError(f"--out {shown}: refusing to write a run into the file-system root")
    if target == home:
        raise RunDirError(f"--out {shown}: refusing to write a run into the home directory")
    if target == cwd or target in cwd.parents:
        raise RunDirError(f"--out {shown}: refusing to write a run into the current directory or one of its "
                          "parents; name a new directory (e.g. runs/NAME)")
    for project in (".git", "pyproject.toml"):
        if (target / project).exists():
            raise RunDirError(f"--out {shown}: holds {project} (a project, not a run directory); refusing to write "
                              "into it")
    if scenario_file is not None and str(scenario_file) not in ("-", ""):
        source = Path(scenario_file).resolve()
        own_copy = source == target / "scenario.yaml" and read_marker(target) is not None
        if source.parent == target and not own_copy:
            raise RunDirError(f"--out {shown}: is the folder of the input scenario {scenario_file}; a run would "
                              "overwrite it; name a new directory")


def check_grid_out(out_dir: Path, scenario_file: str | Path | None = None) -> None:
    """Refuse a ``compare``/``tune`` output directory cosim must not write into: the
    locations of :func:`check_location` (``/``, home, the current directory or a parent, a
    project, the input scenario's folder) and a non-empty directory that is not a
    comparison (neither ``cells/`` nor ``comparison.json``: its ``comparison.csv`` would be
    replaced). Each run directory under ``cells/`` is then claimed on its own."""
    directory = Path(out_dir)
    check_location(directory, explicit=True, scenario_file=scenario_file)
    if not directory.exists():
        return
    if not directory.is_dir():
        raise RunDirError(f"--out {directory}: exists and is not a directory")
    names = {p.name for p in directory.iterdir()}
    if names and not names & {"cells", "comparison.json"}:
        raise RunDirError(f"--out {directory}: not empty and not a comparison directory (no cells/ or "
                          "comparison.json); refusing to write into it; choose a new or empty directory")


class RunDir:
    """An acquired run directory: its lock is held until `release` (or process exit)."""

    def __init__(self, path: Path, run_id: str, lock_fd: int, scenario_hash: str = "",
                 lock_created: bool = False) -> None:
        self.path = path
        self.run_id = run_id
        self.scenario_hash = scenario_hash
        self._lock_fd: int | None = lock_fd
        self._lock_created = lock_created

    def start(self) -> str:
        """A fresh run begins: delete an earlier run's files (cosim's own names only) and
        write this run's marker; return its new run id."""
        self.clear()
        self.run_id = uuid.uuid4().hex
        write_json_atomic(self.path / MARKER_NAME, {"cosim_run": 1, "run_id": self.run_id,
                                                    "scenario_sha256": self.scenario_hash,
                                                    "created_unix_s": time.time()})
        return self.run_id

    def clear(self) -> None:
        """Delete an earlier run's files (cosim's own names only; never the lock)."""
        _clear(self.path)

    def abandon(self, remove_dir: bool) -> None:
        """The run never started (its set-up failed): drop the lock file this run created and,
        when `remove_dir`, the directory it created (if still empty)."""
        if self._lock_created:
            (self.path / LOCK_NAME).unlink(missing_ok=True)
        self.release()
        if remove_dir:
            try:
                self.path.rmdir()
            except OSError:
                pass

    def release(self) -> None:
        """Drop the lock (the lock file stays: it is the directory's own)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _lock(directory: Path, create: bool) -> int | None:
    """Take `directory`'s lock (fail at once when held); None when there is no lock file and
    `create` is False."""
    path = directory / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o644)
    except FileNotFoundError:
        if create:
            raise
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise
        try:
            holder = path.read_text(encoding="utf-8").strip() or "unknown"
        except OSError:
            holder = "unknown"
        raise RunDirError(f"{directory}: another cosim process (pid {holder}) is running in this directory; "
                          "wait for it or choose another --out") from None
    if create:  # the holder's pid, for the message of a process that finds it locked
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _foreign(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if not _is_own(p.name))


def _clear(directory: Path) -> None:
    """Delete what an earlier run wrote (its own file names only; not the lock)."""
    for entry in directory.iterdir():
        if _is_own(entry.name) and entry.name != LOCK_NAME and entry.is_file() and not entry.is_symlink():
            entry.unlink(missing_ok=True)


def remove_stale_temps(directory: Path) -> None:
    """Delete temp files left by a cosim writer killed mid-write (only cosim's own names)."""
    for entry in directory.glob(f"{TMP_PREFIX}*"):
        if entry.is_file() and not entry.is_symlink():
            entry.unlink(missing_ok=True)


def _unmarked_leftovers(names: set[str]) -> bool:
    """Whether a directory holding ``names`` is empty or holds only what a run killed before
    its marker was in place leaves: its lock, and the marker's temp file when it was killed
    between writing it and moving it into place (a ``compare`` worker killed with its pool)."""
    return all(n == LOCK_NAME or n.startswith(TMP_PREFIX) for n in names)


def _check_fresh(directory: Path, overwrite: bool) -> None:
    if not directory.exists():
        return
    if not directory.is_dir():
        raise RunDirError(f"--out {directory}: exists and is not a directory")
    names = {p.name for p in directory.iterdir()}
    if _unmarked_leftovers(names):  # empty, or what a run killed before its marker landed leaves
        return
    marker = read_marker(directory)
    if marker is None:
        raise RunDirError(f"--out {directory}: not empty and not a cosim run directory (no {MARKER_NAME}); "
                          "refusing to write into it; choose a new or empty directory")
    if overwrite or names <= {MARKER_NAME, LOCK_NAME} | {n for n in names if n.startswith(TMP_PREFIX)}:
        return
    if "summary.json" in names:
        raise RunDirError(f"--out {directory}: holds a finished cosim run; use --overwrite to replace it, or choose "
                          "another directory")
    from cosim.progress import cosim_command

    raise RunDirError(f"--out {directory}: holds an unfinished cosim run; continue it with: "
                      f"{cosim_command('run', '--resume', str(directory))} (or use --overwrite to start again)")


def acquire_fresh(out_dir: Path, scenario_hash: str, overwrite: bool = False) -> RunDir:
    """Lock `out_dir` for a new run after checking it may be written (see the module
    docstring); `RunDir.start` then clears an earlier run and writes the marker. The
    caller has run `check_location`."""
    directory = Path(out_dir)
    if directory.is_dir():
        held = _lock(directory, create=False)  # a running owner fails us before we write anything
        if held is not None:
            os.close(held)
    _check_fresh(directory, overwrite)
    directory.mkdir(parents=True, exist_ok=True)
    lock_created = not (directory / LOCK_NAME).exists()
    fd = _lock(directory, create=True)
    assert fd is not None
    try:
        _check_fresh(directory, overwrite)  # again, under the lock (a racing run may have started)
        foreign = _foreign(directory)
        if foreign:
            raise RunDirError(f"--out {directory}: holds files cosim did not write ({', '.join(foreign[:3])}); "
                              "refusing to replace a foreign directory")
    except BaseException:
        os.close(fd)
        raise
    return RunDir(directory, "", fd, scenario_hash, lock_created)


def acquire_resume(run_dir: Path) -> tuple[RunDir, dict[str, Any]]:
    """Lock the run directory `run_dir` for a resume; return it and its marker."""
    directory = Path(run_dir)
    if not directory.is_dir():
        raise RunDirError(f"{directory}: no such run directory")
    marker = read_marker(directory)
    if marker is None:
        if _unmarked_leftovers({p.name for p in directory.iterdir()}):  # killed before its marker
            raise RunDirError(f"{directory}: nothing to resume: the run stopped before it started; run the "
                              f"scenario again with --out {directory}")
        if (directory / "scenario.yaml").is_file():
            raise RunDirError(f"{directory}: no {MARKER_NAME}: not a run directory of this cosim version; "
                              "run the scenario again")
        raise RunDirError(f"{directory}: not a run directory (no scenario.yaml)")
    fd = _lock(directory, create=True)
    assert fd is not None
    if not (directory / "scenario.yaml").is_file():
        os.close(fd)
        raise RunDirError(f"{directory}: nothing to resume: the run stopped before it started; run the scenario "
                          f"again with --out {directory}")
    return RunDir(directory, str(marker["run_id"]), fd, str(marker.get("scenario_sha256", ""))), marker
