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
from typing import Any, NamedTuple, Protocol

import yaml

from monitor.config.yaml_pieces import PIECES_KEY, compose_in_pieces

#: A place in the data: mapping keys and list indexes, like pydantic's error `loc`.
DataPath = tuple[str | int, ...]

_MAP_TAG = "tag:yaml.org,2002:map"
_STR_TAG = "tag:yaml.org,2002:str"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_NULL_TAG = "tag:yaml.org,2002:null"
#: Guards against alias bombs ("billion laughs"), merge-key bombs included. Without aliases
#: a node takes at least one character of text, so a document may always have as many nodes
#: as characters (10,000 batches are about 100,000 nodes); only expanding aliases (as values
#: or as `<<` merge sources) can go beyond. Every visit counts: a key, a value, a merged
#: mapping each time it is merged.
_MAX_NODES = 50_000
#: Deepest nesting accepted. A real config nests five levels (batches, item, match, labels,
#: value); without a limit a deep `[[[[…]]]]` exhausts Python's recursion limit.
MAX_DEPTH = 50
_TOO_DEEP = f"nested too deeply: at most {MAX_DEPTH} levels"
#: Longest scalar text quoted back in a message.
_SHOWN = 40


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
    #: Composing ran out of recursion: parsing it again (slower) would say the same.
    too_deep: bool = False

    def at(self, path: DataPath) -> Located:
        """The position of `path`, or of its longest known prefix."""
        for length in range(len(path), -1, -1):
            found = self.positions.get(path[:length])
            if found is not None:
                return found
        return Located(Position(self.file, 1, 1))


class _Mark(Protocol):
    """A place in the text, as PyYAML's and libyaml's marks both give it (0-based)."""

    @property
    def line(self) -> int: ...
    @property
    def column(self) -> int: ...


def _position(file: str, mark: _Mark) -> Position:
    return Position(file, mark.line + 1, mark.column + 1)


def _brief(text: str) -> str:
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def shown(text: str) -> str:
    """`text` quoted for a message, shortened: an error line must stay one readable line."""
    return repr(_brief(text))


#: What a scalar of a resolved tag is, for "invalid …" messages.
_SCALAR_KINDS = {
    "tag:yaml.org,2002:int": "integer",
    "tag:yaml.org,2002:float": "number",
    "tag:yaml.org,2002:timestamp": "date",
    "tag:yaml.org,2002:binary": "base64 value",
    "tag:yaml.org,2002:bool": "boolean",
}


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
    """Rebuilds plain data from composed nodes, recording positions and problems.

    Every node visited counts against `max_nodes`, merge sources each time they are merged,
    so the work (and the problems collected) stays bounded by the text's size whatever its
    aliases expand to; nesting deeper than `MAX_DEPTH` is refused at the node that goes too
    deep.
    """

    def __init__(
        self, document: YamlDocument, loader: yaml.SafeLoader, max_nodes: int, located: bool
    ) -> None:
        self._document = document
        self._located = located
        self._max_nodes = max_nodes
        self._loader = loader
        self._active: set[int] = set()  # the nodes being built: the current nesting chain
        self._count = 0
        self._too_large = False
        #: The outermost `<<` being expanded: where a merge-key bomb is reported.
        self._merging: yaml.Mark | None = None

    def build_within(
        self, node: yaml.Node, path: DataPath, parents: tuple[yaml.Node, ...]
    ) -> tuple[bool, Any]:
        """`build`, for a node composed on its own but sitting in `parents` (their
        nesting counts against `MAX_DEPTH`, as if it had been reached through them)."""
        self._active.update(map(id, parents))
        try:
            return self.build(node, path, None)
        finally:
            self._active.difference_update(map(id, parents))

    def _problem(self, mark: yaml.Mark, message: str, dropped: DataPath | None) -> None:
        """Record a problem; `dropped` is the path whose value is left out because of it."""
        self._document.problems.append(Problem(_position(self._document.file, mark), message))
        if dropped is not None:
            self._document.reported.add(dropped)

    def _counted(self, node: yaml.Node, path: DataPath) -> bool:
        """Count one visit; False once the document has expanded past its budget."""
        self._count += 1
        if self._count <= self._max_nodes:
            return True
        if not self._too_large:
            self._too_large = True
            message = "document too large (runaway aliases or merge keys?)"
            self._problem(self._merging or node.start_mark, message, path)
        self._document.reported.add(path)
        return False

    def _enter(self, node: yaml.Node, path: DataPath) -> bool:
        """Push `node` on the nesting chain, or report why it cannot be entered."""
        if id(node) in self._active:
            self._problem(node.start_mark, "recursive alias", path)
            return False
        if len(self._active) >= MAX_DEPTH:
            self._problem(node.start_mark, _TOO_DEEP, path)
            return False
        self._active.add(id(node))
        return True

    def build(self, node: yaml.Node, path: DataPath, key: Position | None) -> tuple[bool, Any]:
        """(usable, value) of a node; unusable values have been reported."""
        if self._located:
            file = self._document.file
            empty = isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG and node.value == ""
            self._document.positions[path] = Located(_position(file, node.start_mark), key, empty)
        if not self._counted(node, path):
            return False, None
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        if not self._enter(node, path):
            return False, None
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            if isinstance(node, yaml.SequenceNode):
                return self._sequence(node, path)
            return False, None  # PyYAML composes no other kind of node
        finally:
            self._active.discard(id(node))

    def _scalar(self, node: yaml.ScalarNode, path: DataPath | None) -> tuple[bool, Any]:
        if node.tag == _STR_TAG and isinstance(node.value, str):
            return True, node.value  # what the constructor returns, without its overhead
        try:
            return True, self._loader.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as error:
            self._problem(node.start_mark, f"unsupported YAML value: {error.problem}", path)
        except Exception as error:
            # PyYAML's safe constructors raise plain errors for text their tag cannot hold:
            # 2026-13-45 (ValueError), 5,000 digits (ValueError), `!!bool maybe` (KeyError),
            # `!!int ""` (IndexError), `!!timestamp abc` (AttributeError).
            kind = _SCALAR_KINDS.get(node.tag, "value")
            reason = f": {error}" if kind == "date" and isinstance(error, ValueError) else ""
            plain = (True, False)  # the tag the text resolves to when written plain
            implicit = self._loader.resolve(yaml.ScalarNode, node.value, plain)  # type: ignore[no-untyped-call]
            quote = " (quote it to make it a string)" if implicit == node.tag else ""
            self._problem(
                node.start_mark, f"invalid {kind} {shown(str(node.value))}{reason}{quote}", path
            )
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

    def _merged(self, node: yaml.MappingNode, path: DataPath) -> dict[str, Any]:
        """The keys `<<` brings into `node` (`<<: *defaults` or `<<: [*a, *b]`)."""
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE_TAG:
                continue
            listed = isinstance(value_node, yaml.SequenceNode)
            outermost = self._merging is None
            if outermost:
                self._merging = key_node.start_mark
            try:
                for source in value_node.value if listed else [value_node]:
                    if not self._counted(source, path):
                        return result
                    for name, value in self._merge_source(source, path).items():
                        result.setdefault(name, value)
            finally:
                if outermost:
                    self._merging = None
        return result

    def _merge_source(self, source: yaml.Node, path: DataPath) -> dict[str, Any]:
        if not isinstance(source, yaml.MappingNode):
            self._problem(source.start_mark, "'<<' merges only mappings", None)
            return {}
        if not self._enter(source, path):
            return {}
        try:
            _, values = self._mapping(source, path)
        finally:
            self._active.discard(id(source))
        return values or {}

    def _key(self, key_node: yaml.Node, path: DataPath) -> str | None:
        """A mapping key as text, or None (reported) when it cannot be one."""
        if not isinstance(key_node, yaml.ScalarNode):
            kind = "a list" if isinstance(key_node, yaml.SequenceNode) else "a mapping"
            self._problem(key_node.start_mark, f"a key must be text, not {kind}", None)
            return None
        usable, key = self._scalar(key_node, None)
        if not usable:
            return None
        if isinstance(key, str):
            return key
        text = str(key_node.value)
        # Carry on under the key's text so nothing else breaks because of it.
        fix = f'quote it: "{text}"' if text.isprintable() and len(text) <= _SHOWN else "quote it"
        self._problem(
            key_node.start_mark, f"key {_brief(repr(key))} must be text ({fix})", (*path, text)
        )
        return text

    def _mapping(self, node: yaml.MappingNode, path: DataPath) -> tuple[bool, Any]:
        if node.tag != _MAP_TAG:
            self._problem(node.start_mark, f"unsupported YAML tag {node.tag!r}", path)
            return False, None
        result = self._merged(node, path)  # `<<: *defaults` first; explicit keys override
        seen: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            if not self._counted(key_node, path):
                break
            key = self._key(key_node, path)
            if key is None:
                continue
            first = seen.get(key)
            if first is not None:
                self._problem(
                    key_node.start_mark,
                    f"duplicate key {shown(key)} (first at line {first.start_mark.line + 1}, "
                    f"column {first.start_mark.column + 1})",
                    None,
                )
                continue
            seen[key] = key_node
            key_at = _position(self._document.file, key_node.start_mark) if self._located else None
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


def read_yaml(file: str, text: str, *, located: bool = True) -> YamlDocument:
    """Parse one YAML document whose top level must be a mapping of settings.

    `located=False` records no positions and composes the `batches` list one item at a
    time (`yaml_pieces`): for 10,000 batches the peak is 12 MB instead of 52, and the data
    is the same. Its problems are found, but placed and worded only roughly: read it again
    with positions to report them.
    """
    if getattr(yaml, "CSafeLoader", None) is not None:
        document = _read_yaml(file, text, _FAST_LOADER, located)
        if not document.problems or document.too_deep or not located:
            return document
        # PyYAML's own scanner is quadratic in nesting depth: do not hand it a deep document.
        deep = _too_deep(file, text) if document.data is None else None
        if deep is not None:
            return YamlDocument(file, problems=[Problem(deep, _TOO_DEEP)], too_deep=True)
    return _read_yaml(file, text, yaml.SafeLoader, located)


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


def _read_yaml(
    file: str, text: str, loader_type: type[yaml.SafeLoader], located: bool
) -> YamlDocument:
    with _collector_paused():
        return _compose(file, text, loader_type, located)


def _compose(
    file: str, text: str, loader_type: type[yaml.SafeLoader], located: bool
) -> YamlDocument:
    document = YamlDocument(file)
    loader: yaml.SafeLoader | None = None
    try:
        loader = loader_type(text)  # PyYAML's reader refuses control characters right here
        builder = _Builder(document, loader, max(_MAX_NODES, len(text)), located)
        if not located:
            if _built_in_pieces(document, loader, builder):
                return document
            loader.dispose()  # not of the usual shape: composed whole below
            loader = loader_type(text)
            builder = _Builder(document, loader, max(_MAX_NODES, len(text)), located)
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
        _, document.data = builder.build(root, (), None)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        position = _position(file, mark) if mark is not None else Position(file, 1, 1)
        document.problems.append(Problem(position, _yaml_error_message(error)))
        document.data = None
    except yaml.reader.ReaderError as error:  # a control character, or a lone surrogate
        at = _offset_position(file, text, error.position)
        character = f"U+{error.character:04X}" if isinstance(error.character, int) else "byte"
        document.problems.append(Problem(at, f"invalid YAML: character {character} not allowed"))
        document.data = None
    except yaml.YAMLError as error:
        message = " ".join(str(error).split())  # one line, whatever PyYAML's text holds
        document.problems.append(Problem(Position(file, 1, 1), f"invalid YAML: {message}"))
        document.data = None
    except RecursionError:  # PyYAML composes recursively: nesting past Python's limit
        at = _too_deep(file, text) or Position(file, 1, 1)
        document.problems.append(Problem(at, _TOO_DEEP))
        document.data = None
        document.too_deep = True
    finally:
        if loader is not None:
            loader.dispose()
    return document


def _built_in_pieces(document: YamlDocument, loader: yaml.SafeLoader, builder: _Builder) -> bool:
    """Build the document with its `batches` composed one item at a time (a fraction of the
    memory: see `yaml_pieces`); False, having built nothing, if it is not of that shape."""
    items: list[Any] = []

    def built(node: yaml.Node, index: int, parents: tuple[yaml.Node, ...]) -> None:
        items.append(builder.build_within(node, (PIECES_KEY, index), parents)[1])

    root = compose_in_pieces(loader, built)
    if root is None:
        return False
    _, document.data = builder.build(root, (), None)  # its `batches` node is left empty
    if isinstance(document.data, dict) and document.data.get(PIECES_KEY) == []:
        document.data[PIECES_KEY] = items
    return True


def _offset_position(file: str, text: str, offset: int) -> Position:
    """FILE:LINE:COL of a character offset into `text`."""
    offset = min(max(offset, 0), len(text))
    line_start = text.rfind("\n", 0, offset) + 1
    return Position(file, text.count("\n", 0, offset) + 1, offset - line_start + 1)


def _too_deep(file: str, text: str) -> Position | None:
    """Where nesting first goes past `MAX_DEPTH` (None: it never does), from parser events:
    the parser is a state machine, so this cannot run out of recursion itself."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_FAST_LOADER):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH and event.start_mark is not None:
                    return _position(file, event.start_mark)
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.MarkedYAMLError as error:
        # libyaml looks up to 1,024 characters ahead and stops at its own limit, 1,000 levels.
        if "nesting depth" in str(error.problem) and error.problem_mark is not None:
            return _position(file, error.problem_mark)
    except yaml.YAMLError:
        pass
    return None
