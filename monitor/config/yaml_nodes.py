"""YAML to plain data, remembering where every key and value came from.

PyYAML's constructors forget source positions and silently keep the last of two equal
keys. So the document is composed with a SafeLoader (no arbitrary objects) and rebuilt
here node by node: each value gets a path -> position entry, duplicate keys and other
YAML-level problems are collected (never raised), and scalars are still resolved by
PyYAML's safe constructor so `true`, `5`, `null` mean what YAML says they mean.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import yaml

#: A place in the data: mapping keys and list indexes, like pydantic's error `loc`.
DataPath = tuple[str | int, ...]

_MAP_TAG = "tag:yaml.org,2002:map"
_STR_TAG = "tag:yaml.org,2002:str"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_NULL_TAG = "tag:yaml.org,2002:null"
#: Guards against alias bombs ("billion laughs"). Without aliases a node takes at least one
#: character of text, so a document may always have as many nodes as characters (10,000
#: batches are about 100,000 nodes); only alias expansion can go beyond.
_MAX_NODES = 50_000


class Position(NamedTuple):
    """FILE:LINE:COL, 1-based (a tuple: a large config makes one per node)."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True, order=True)
class Problem:
    """One config error at one place."""

    position: Position
    message: str

    def line(self) -> str:
        return f"{self.position}: {self.message}"


@dataclass(frozen=True)
class Located:
    """Where a value sits: its own start, the key that names it, and if it is empty."""

    value: Position
    key: Position | None = None
    empty: bool = False

    def best(self) -> Position:
        """Point at the key when there is no value text to point at."""
        return self.key if self.empty and self.key is not None else self.value


@dataclass
class YamlDocument:
    """One parsed file: data (None when unusable), positions and problems found."""

    file: str
    data: Any = None
    positions: dict[DataPath, Located] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    #: Paths whose value was dropped after a reported problem: no further errors there.
    reported: set[DataPath] = field(default_factory=set)

    def at(self, path: DataPath) -> Located:
        """The position of `path`, or of its longest known prefix."""
        for length in range(len(path), -1, -1):
            found = self.positions.get(path[:length])
            if found is not None:
                return found
        return Located(Position(self.file, 1, 1))


def _position(file: str, mark: yaml.Mark) -> Position:
    return Position(file, mark.line + 1, mark.column + 1)


def _yaml_error_message(error: yaml.MarkedYAMLError) -> str:
    problem = error.problem or "syntax error"
    if "found another document" in problem:
        return "invalid YAML: one document per file expected, found a second '---'"
    context = error.context
    mark = error.context_mark
    if context and mark is not None and mark != error.problem_mark:
        where = f"line {mark.line + 1}, column {mark.column + 1}"
        return f"invalid YAML: {problem} ({context} at {where})"
    if context:
        return f"invalid YAML: {context}, {problem}"
    return f"invalid YAML: {problem}"


class _Builder:
    """Rebuilds plain data from composed nodes, recording positions and problems."""

    def __init__(self, document: YamlDocument, loader: yaml.SafeLoader, max_nodes: int) -> None:
        self._document = document
        self._max_nodes = max_nodes
        self._loader = loader
        self._active: set[int] = set()
        self._count = 0
        self._too_large = False

    def _problem(self, mark: yaml.Mark, message: str, dropped: DataPath | None) -> None:
        """Record a problem; `dropped` is the path whose value is left out because of it."""
        self._document.problems.append(Problem(_position(self._document.file, mark), message))
        if dropped is not None:
            self._document.reported.add(dropped)

    def build(self, node: yaml.Node, path: DataPath, key: Position | None) -> tuple[bool, Any]:
        """(usable, value) of a node; unusable values have been reported."""
        file = self._document.file
        empty = isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG and node.value == ""
        self._document.positions[path] = Located(_position(file, node.start_mark), key, empty)
        self._count += 1
        if self._count > self._max_nodes:
            if not self._too_large:
                self._too_large = True
                self._problem(node.start_mark, "document too large (runaway aliases?)", path)
            self._document.reported.add(path)
            return False, None
        if id(node) in self._active:
            self._problem(node.start_mark, "recursive alias", path)
            return False, None
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            if isinstance(node, yaml.SequenceNode):
                return self._sequence(node, path)
            return self._scalar(node, path)
        finally:
            self._active.discard(id(node))

    def _scalar(self, node: yaml.Node, path: DataPath | None) -> tuple[bool, Any]:
        if node.tag == _STR_TAG and isinstance(node.value, str):
            return True, node.value  # what the constructor returns, without its overhead
        try:
            return True, self._loader.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as error:
            self._problem(node.start_mark, f"unsupported YAML value: {error.problem}", path)
            return False, None

    def _sequence(self, node: yaml.SequenceNode, path: DataPath) -> tuple[bool, Any]:
        if node.tag != _SEQ_TAG:
            self._problem(node.start_mark, f"unsupported YAML tag {node.tag!r}", path)
            return False, None
        items = []
        for index, item in enumerate(node.value):
            _, value = self.build(item, (*path, index), None)
            items.append(value)
        return True, items

    def _mapping(self, node: yaml.MappingNode, path: DataPath) -> tuple[bool, Any]:
        if node.tag != _MAP_TAG:
            self._problem(node.start_mark, f"unsupported YAML tag {node.tag!r}", path)
            return False, None
        result: dict[str, Any] = {}
        merges = [value for key, value in node.value if key.tag == _MERGE_TAG]
        for merged in merges:  # `<<: *defaults` first; explicit keys override
            for source in merged.value if isinstance(merged, yaml.SequenceNode) else [merged]:
                if not isinstance(source, yaml.MappingNode):
                    self._problem(source.start_mark, "'<<' merges only mappings", None)
                    continue
                _, values = self._mapping(source, path)
                for name, value in (values or {}).items():
                    result.setdefault(name, value)
        seen: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            usable, key = self._scalar(key_node, None)
            if not usable:
                continue
            if not isinstance(key, str):
                # Carry on under the key's text so nothing else breaks because of it.
                self._problem(
                    key_node.start_mark,
                    f'key {key!r} must be text (quote it: "{key_node.value}")',
                    (*path, str(key_node.value)),
                )
                key = str(key_node.value)
            first = seen.get(key)
            if first is not None:
                self._problem(
                    key_node.start_mark,
                    f"duplicate key {key!r} (first at line {first.start_mark.line + 1}, "
                    f"column {first.start_mark.column + 1})",
                    None,
                )
                continue
            seen[key] = key_node
            key_at = _position(self._document.file, key_node.start_mark)
            usable, value = self.build(value_node, (*path, key), key_at)
            if usable:
                result[key] = value
            else:
                result.pop(key, None)
        return True, result


def _memoised_resolver(base: type[yaml.SafeLoader]) -> type[yaml.SafeLoader]:
    """`base` with scalar tag resolution memoised per (value, implicit) pair.

    libyaml composes in C but asks Python to resolve every scalar's tag, which is most of
    the time left on a large config; the answer depends only on the scalar's text and
    whether it was plain or quoted, and keys and values repeat across thousands of
    batches. Path resolvers (none are registered) would make the answer depend on the
    node's place, so they disable the memo.
    """

    class Memoised(base):  # type: ignore[valid-type, misc]
        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self._tags: dict[tuple[str, Any], str] = {}

        def resolve(self, kind: type[yaml.Node], value: Any, implicit: Any) -> str:
            if kind is yaml.ScalarNode and not self.yaml_path_resolvers:
                key = (value, implicit)
                tag = self._tags.get(key)
                if tag is None:
                    tag = self._tags[key] = str(super().resolve(kind, value, implicit))
                return tag
            return str(super().resolve(kind, value, implicit))

    Memoised.__name__ = f"Memoised{base.__name__}"
    return Memoised


#: libyaml's composer when PyYAML has it (several times faster on large configs; its nodes
#: carry the same line/column marks). A file with any problem is read again by the
#: pure-Python loader, whose messages and positions are the ones documented and tested.
_FAST_LOADER: type[yaml.SafeLoader] = _memoised_resolver(
    getattr(yaml, "CSafeLoader", yaml.SafeLoader)
)


def read_yaml(file: str, text: str) -> YamlDocument:
    """Parse one YAML document whose top level must be a mapping of settings."""
    if getattr(yaml, "CSafeLoader", None) is not None:
        document = _read_yaml(file, text, _FAST_LOADER)
        if not document.problems:
            return document
    return _read_yaml(file, text, yaml.SafeLoader)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a document is composed and rebuilt.

    A 10,000-batch config creates hundreds of thousands of nodes and positions, none of
    them garbage yet; each of the collector's generation-0 passes would walk them again
    (measured: over a third of the load time). Nothing is lost: collection resumes after.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _read_yaml(file: str, text: str, loader_type: type[yaml.SafeLoader]) -> YamlDocument:
    with _collector_paused():
        return _compose(file, text, loader_type)


def _compose(file: str, text: str, loader_type: type[yaml.SafeLoader]) -> YamlDocument:
    document = YamlDocument(file)
    loader = loader_type(text)
    try:
        root = loader.get_single_node()
        if root is None:
            document.problems.append(
                Problem(Position(file, 1, 1), "empty file: expected a mapping of settings")
            )
            return document
        if not isinstance(root, yaml.MappingNode):
            kind = "a list" if isinstance(root, yaml.SequenceNode) else "a single value"
            document.problems.append(
                Problem(
                    _position(file, root.start_mark),
                    f"the top level must be a mapping of settings (key: value), not {kind}",
                )
            )
            return document
        limit = max(_MAX_NODES, len(text))
        _, document.data = _Builder(document, loader, limit).build(root, (), None)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        position = _position(file, mark) if mark is not None else Position(file, 1, 1)
        document.problems.append(Problem(position, _yaml_error_message(error)))
        document.data = None
    except yaml.YAMLError as error:  # e.g. a control character in the stream
        document.problems.append(Problem(Position(file, 1, 1), f"invalid YAML: {error}"))
        document.data = None
    finally:
        loader.dispose()
    return document
