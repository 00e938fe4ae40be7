"""Bounded reading and parsing of scenario YAML.

A scenario file is a few kilobytes of YAML, so anything far bigger is a mistake or an
attack, and must fail in seconds with one line, not after minutes and gigabytes:

* :func:`read_scenario_text` reads at most ``cap + 1`` bytes (also from a pipe or a
  process substitution, ``cosim run <(cat x.yaml)``), refuses device files, sockets
  and directories, and decodes UTF-8. The cap is :data:`DEFAULT_MAX_SCENARIO_BYTES`,
  or the environment variable ``COSIM_MAX_SCENARIO_BYTES``.
* :func:`parse_yaml` parses with :class:`BoundedLoader`, a ``SafeLoader`` that also
  reads ``1e9``/``3.5e9`` as floats and, while composing, counts every value the
  document expands to (an alias counts the full size of what it repeats, so a
  "billion laughs" alias bomb stops after :data:`MAX_YAML_NODES`), refuses recursive
  aliases, nesting deeper than :data:`MAX_YAML_DEPTH` and duplicate keys (named by
  their dotted path and both lines). Values that cannot be built (a 5,000-digit
  integer, the 13th month) are errors too.

Every problem is a :class:`YAMLLimitError` (a ``yaml.YAMLError``) whose ``detail`` is
one line naming the key path; :mod:`cosim.scenario.loader` prefixes the source.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from cosim.scenario.errors import ScenarioError
from cosim.scenario.text import MAX_KEY_CHARS, clip

#: Environment variable overriding the scenario size cap [bytes].
MAX_SCENARIO_BYTES_ENV = "COSIM_MAX_SCENARIO_BYTES"
#: Default cap on a scenario file [bytes]: 1 MiB, hundreds of times a real scenario.
DEFAULT_MAX_SCENARIO_BYTES = 1 << 20
#: Most values (scalars, lists, mappings; aliases at their expanded size) one YAML document may hold.
MAX_YAML_NODES = 100_000
#: Deepest nesting of lists/mappings in a YAML document (scenarios use about 5 levels).
MAX_YAML_DEPTH = 64

_SIZE = "_cosim_expanded_size"


class YAMLLimitError(yaml.YAMLError):
    """A YAML document broke a bound (size, nesting, duplicate key, unbuildable value).

    ``detail`` is one line naming the key path, ``problem_mark`` the position if known.
    """

    def __init__(self, detail: str, mark: Any = None) -> None:
        where = f" (line {mark.line + 1})" if mark is not None else ""
        self.detail = f"{detail}{where}"
        self.problem = self.detail
        self.problem_mark = mark
        super().__init__(self.detail)


class BoundedLoader(yaml.SafeLoader):
    """``SafeLoader`` with a value budget, a nesting limit, no duplicate keys and YAML 1.2 floats."""

    max_nodes = MAX_YAML_NODES
    max_depth = MAX_YAML_DEPTH

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._expanded = 0
        self._path: list[str] = []

    def _where(self, segment: str | None = None) -> str:
        parts = [*self._path, segment] if segment is not None else self._path
        return clip(".".join(part for part in parts if part), 160) or "<scenario>"

    def _spend(self, count: int, mark: Any) -> None:
        self._expanded += count
        if self._expanded > self.max_nodes:
            raise YAMLLimitError(f"{self._where()}: the document expands to more than {self.max_nodes} values "
                                 "(aliases count at their full size)", mark)

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        """Compose one node, counting it (or, for an alias, the size of what it repeats) against the budget."""
        if self.check_event(AliasEvent):
            event = self.peek_event()
            target = self.anchors.get(event.anchor)
            if target is not None:
                size = getattr(target, _SIZE, None)
                if size is None:
                    raise YAMLLimitError(f"{self._where()}: alias *{clip(event.anchor, MAX_KEY_CHARS)} is inside the "
                                         "value it names (recursive alias)", event.start_mark)
                self._spend(size, event.start_mark)
            return super().compose_node(parent, index)
        if isinstance(parent, SequenceNode):
            segment = str(index)
        elif isinstance(parent, MappingNode):
            segment = clip(str(index.value), MAX_KEY_CHARS) if isinstance(index, ScalarNode) else "?"
        else:
            segment = ""
        mark = self.peek_event().start_mark
        if len(self._path) >= self.max_depth:
            raise YAMLLimitError(f"{self._where(segment)}: nested deeper than {self.max_depth} levels", mark)
        self._spend(1, mark)
        self._path.append(segment)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._path.pop()
        if isinstance(node, SequenceNode):
            size = 1 + sum(getattr(child, _SIZE) for child in node.value)
        elif isinstance(node, MappingNode):
            size = 1 + sum(getattr(key, _SIZE) + getattr(value, _SIZE) for key, value in node.value)
        else:
            size = 1
        setattr(node, _SIZE, size)
        return node

    def compose_mapping_node(self, anchor: str | None) -> MappingNode:
        """Compose a mapping and reject a key given twice, naming its path and both lines."""
        node: MappingNode = super().compose_mapping_node(anchor)
        seen: dict[tuple[str, str], int] = {}
        for key, _value in node.value:
            if not isinstance(key, ScalarNode):
                continue
            ident = (key.tag, key.value)
            line = key.start_mark.line + 1
            if ident in seen:
                path = self._where(clip(str(key.value), MAX_KEY_CHARS))
                raise YAMLLimitError(f"{path}: duplicate key (lines {seen[ident]} and {line})")
            seen[ident] = line
        return node

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        """Build one value; one that cannot be built (``ValueError``) is a ``YAMLLimitError`` at its line."""
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:
            reason = clip((str(exc).splitlines() or [type(exc).__name__])[0], 120)
            raise YAMLLimitError(f"cannot build value {clip(str(node.value), 40)!s}: {reason}"
                                 if isinstance(node, ScalarNode) else f"cannot build value: {reason}",
                                 node.start_mark) from None


BoundedLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def parse_yaml(text: str) -> Any:
    """Parse YAML ``text`` within the bounds above; raise ``yaml.YAMLError`` (often ``YAMLLimitError``)."""
    loader = BoundedLoader(text)
    try:
        return loader.get_single_data()
    except RecursionError:  # a backstop: the depth limit should stop every recursion first
        raise YAMLLimitError("nested too deeply to parse") from None
    finally:
        loader.dispose()


def max_scenario_bytes() -> int:
    """The scenario size cap [bytes]: ``COSIM_MAX_SCENARIO_BYTES`` if set, else the default."""
    text = os.environ.get(MAX_SCENARIO_BYTES_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_SCENARIO_BYTES
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise ScenarioError(f"{MAX_SCENARIO_BYTES_ENV}={clip(text)}: expected a positive number of bytes")
    return value


def _kind(mode: int) -> str:
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _too_big(file: Path, limit: int, size: int | None) -> ScenarioError:
    amount = f"{size} bytes" if size is not None else f"more than {limit} bytes"
    return ScenarioError(f"{file}: {amount}, over the {limit}-byte cap on scenario files "
                         f"(set {MAX_SCENARIO_BYTES_ENV}=BYTES to raise it)")


def _check_kind(file: Path, mode: int) -> None:
    if stat.S_ISDIR(mode):
        raise ScenarioError(f"{file}: is a directory, expected a YAML file")
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
        raise ScenarioError(f"{file}: is {_kind(mode)}, expected a YAML file (a regular file or a pipe)")


def read_scenario_text(path: str | Path, limit: int | None = None) -> str:
    """The UTF-8 text of the scenario file at ``path``, at most ``limit`` bytes (default: the cap).

    Regular files and pipes (``<(cat x.yaml)``, ``/dev/stdin`` from a pipe) are read;
    directories, devices (``/dev/zero``) and sockets are refused before any byte is
    read. Raises ``ScenarioError`` with one line naming the file.
    """
    file = Path(path)
    cap = max_scenario_bytes() if limit is None else limit
    try:
        info = file.stat()
        _check_kind(file, info.st_mode)
        if stat.S_ISREG(info.st_mode) and info.st_size > cap:
            raise _too_big(file, cap, info.st_size)
        with file.open("rb") as stream:
            _check_kind(file, os.fstat(stream.fileno()).st_mode)  # the same file we checked
            data = stream.read(cap + 1)
    except FileNotFoundError:
        raise ScenarioError(f"{file}: no such file") from None
    except IsADirectoryError:
        raise ScenarioError(f"{file}: is a directory, expected a YAML file") from None
    except OSError as exc:
        raise ScenarioError(f"{file}: cannot read ({exc.strerror or exc})") from None
    if len(data) > cap:
        raise _too_big(file, cap, None)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
