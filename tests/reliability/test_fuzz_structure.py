"""Structure fuzzer: random YAML *documents* and random bytes, not only bad values.

``test_fuzz_scenarios`` mutates one value of a good scenario at a time; here hypothesis
builds whole documents -- random nested mappings, lists and scalars under known scenario
keys (its ``FIELD_MUTATIONS`` / ``UNKNOWN_KEYS``) and random keys, a good scenario with
a random subtree grafted in, YAML-ish token soup (anchors, aliases, merge keys, tags,
flow brackets, tabs, NUL, BOMs) and raw bytes (invalid UTF-8 included) -- and feeds them
to the loader and validator in-process (``load_scenario`` + ``check_components``, what
``cosim validate`` runs). Every case must either validate or raise ``ScenarioError``
whose problems are single printable lines of bounded length; any other exception, or
a case running past ``CASE_LIMIT_S`` (a hang), fails. ``test_report_counts`` prints how
many cases ran and how they ended (``pytest -s``).

Counts: 490 cases by default (about 9 s); ``COSIM_FUZZ_SCALE=15`` ran 7,350 with no
finding after the bounded loader landed. On the code before it the alias-bomb bytes
case blew the time limit (a value expanded to 9**n items inside pydantic's error).
"""

from __future__ import annotations

import math
import os
import signal
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fuzz_scenarios import FIELD_MUTATIONS, SMOKE, UNKNOWN_KEYS

from cosim.scenario import ScenarioError, load_scenario
from cosim.scenario.components import check_components
from cosim.scenario.text import escape_controls

#: Hard limit on one case [s]: the loader must answer long before (an alias bomb used to hang).
CASE_LIMIT_S = 10.0
#: Longest acceptable problem line [characters].
MAX_LINE = 2000
#: ``COSIM_FUZZ_SCALE=N`` runs N times the examples with fresh random draws (a longer hunt);
#: the default is a fixed, derandomized sample that keeps the file to about 10 s.
SCALE = max(1, int(os.environ.get("COSIM_FUZZ_SCALE", "1")))
FUZZ = settings(deadline=None, derandomize=SCALE == 1, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
OUTCOMES: Counter = Counter()
SMOKE_DATA = yaml.safe_load(SMOKE.read_text())
KNOWN_KEYS = sorted({part for key in [*FIELD_MUTATIONS, *UNKNOWN_KEYS] for part in key.split(".")
                     if not part.isdigit()} | set(SMOKE_DATA))
KNOWN_PATHS = sorted(FIELD_MUTATIONS)
BAD_VALUES = sorted({v for vs in FIELD_MUTATIONS.values() for v in vs})


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise ``TimeoutError`` in this (main) thread after ``seconds``."""

    def alarm(signum, frame):  # pragma: no cover - only on a hang
        raise TimeoutError(f"case ran past {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def check(path: Path, kind: str) -> None:
    """Load and fully validate ``path``: a Scenario, or one-line ``ScenarioError`` problems only."""
    with time_limit(CASE_LIMIT_S):
        try:
            scenario = load_scenario(path)
            check_components(scenario)
        except ScenarioError as exc:
            assert exc.problems, "an empty ScenarioError"
            for problem in exc.problems:
                assert problem and "\n" not in problem and escape_controls(problem) == problem, repr(problem)
                assert len(problem) <= MAX_LINE, f"{len(problem)}-character problem line: {problem[:200]!r}..."
            OUTCOMES[(kind, "error")] += 1
            return
    OUTCOMES[(kind, "valid")] += 1


SCRATCH = Path(tempfile.mkdtemp(prefix="cosim-fuzz-")) / "fuzz.yaml"


def write(data: bytes) -> Path:
    SCRATCH.write_bytes(data)
    return SCRATCH


# ---- strategies --------------------------------------------------------------------------

keys = st.one_of(
    st.sampled_from(KNOWN_KEYS),
    st.text(min_size=0, max_size=12),  # any unicode: control characters, line separators
    st.integers(-5, 5),
    st.none(),
    st.booleans(),
)
scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["0", "-1", "1e400", ".nan", "fedavg", "surrogate", "train", "umi", "static", "iid"]),
)
trees = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)),
    max_leaves=25,
)


def dump(data: Any) -> bytes:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False).encode("utf-8")


@st.composite
def grafted(draw) -> Any:
    """The smoke scenario with a random subtree (or a known bad value) at a known or random path."""
    data = yaml.safe_load(SMOKE.read_text())
    path = draw(st.sampled_from(KNOWN_PATHS)).split(".")
    if draw(st.booleans()):
        path = [*path[:-1], draw(st.sampled_from(KNOWN_KEYS))]
    node = data
    for part in path[:-1]:
        if isinstance(node, list):
            node = node[int(part) % len(node)] if part.isdigit() and node else None
        elif isinstance(node, dict):
            node = node.setdefault(part, {})
        if not isinstance(node, (dict, list)):
            return data
    value = draw(st.one_of(trees, st.sampled_from(BAD_VALUES).map(yaml.safe_load)))
    if isinstance(node, dict):
        node[path[-1]] = value
    elif node:
        node[0] = value
    return data


TOKENS = ["seed: 1\n", "fl:\n", "  rounds: 3\n", "  rounds: 4\n", "&a ", "*a", "*b", "&b [", "<<: *a\n", "[", "]",
          "{", "}", ", ", ": ", "- ", "\n", "  ", "\t", "!!python/object/apply:os.system ['true']", "!!binary ",
          "!!set {a, b}", "!!omap [a: 1]", "? ", "---\n", "...\n", "%YAML 1.1\n", "'", '"', "#", "|\n", ">\n",
          "\x00", "\ufeff", "\x1b[31m", "\u2028", "1e9", "0x1F", "0o17", "2001-13-45", "9" * 5000, "~",
          "learning:\n  mode: surrogate\n", "cells: [{name: a}]\n", "devices: {count: 2}\n"]


@st.composite
def token_soup(draw) -> bytes:
    """YAML-looking text: a random sequence of anchors, aliases, brackets, tags and key lines."""
    parts = draw(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=40))
    return "".join(parts).encode("utf-8", "surrogatepass")


def alias_bomb(levels: int, width: int) -> bytes:
    lines = ["a0: &a0 [" + ", ".join(["x"] * width) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels)]
    return ("\n".join(lines) + f"\nseed: *a{levels - 1}\n").encode()


raw_bytes = st.one_of(
    st.binary(max_size=300),
    st.binary(max_size=60).map(lambda b: b"seed: 1\n" + b + b"\nfl: {rounds: 2}\n"),
    st.builds(alias_bomb, st.integers(2, 12), st.integers(2, 12)),
    st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 3000).map(lambda n: b"a:\n" + b"".join(b" " * i + b"b:\n" for i in range(1, n))),
)


# ---- the properties -------------------------------------------------------------------------


@settings(FUZZ, max_examples=120 * SCALE)
@given(trees)
def test_random_documents(data: Any) -> None:
    check(write(dump(data)), "random document")


@settings(FUZZ, max_examples=120 * SCALE)
@given(grafted())
def test_smoke_with_a_random_subtree(data: Any) -> None:
    check(write(dump(data)), "grafted subtree")


@settings(FUZZ, max_examples=150 * SCALE)
@given(token_soup())
def test_yaml_token_soup(data: bytes) -> None:
    check(write(data), "token soup")


@settings(FUZZ, max_examples=100 * SCALE)
@given(raw_bytes)
def test_random_bytes(data: bytes) -> None:
    check(write(data), "bytes")


def test_report_counts() -> None:
    """Prints the tally (run with -s); runs last in this file."""
    total = sum(OUTCOMES.values())
    print(f"\nstructure fuzz cases: {total}; outcomes: {dict(sorted(OUTCOMES.items()))}")
    if total:
        assert OUTCOMES[("grafted subtree", "valid")] > 0 and OUTCOMES[("token soup", "error")] > 0
    assert not math.isnan(total)


@pytest.fixture(scope="module", autouse=True)
def _cleanup() -> Iterator[None]:
    yield
    if SCRATCH.exists():
        os.unlink(SCRATCH)
    SCRATCH.parent.rmdir()
