"""Compose a config document a piece at a time: each item of its `batches` list on its own.

libyaml composes a whole document before anything can be built from it: for 10,000 batches
that is ~46 MB of nodes and marks alive at once, most of what loading a config allocates
(and a reload leaves behind as fragmented heap). Here PyYAML's own composer is fed
libyaml's events instead. The top-level mapping is composed as usual, except its `batches`
list: each item is handed over as soon as it is composed and not kept (the list's node
stays empty), so only one batch's nodes are alive at a time, besides those an anchor names
(an alias further on may use them).

Only a document of the usual shape is composed so: a top-level mapping and a `batches`
list without anchors, so that nothing can refer back to either. For anything else
`compose_in_pieces` returns None having read only the first events, and the caller
composes the whole document instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml
from yaml.composer import Composer, ComposerError

#: The key whose list is composed item by item.
PIECES_KEY = "batches"
#: Receives one composed item of the list, its index and the nodes it sits in (the
#: document's mapping and the list), which a builder counts as its nesting.
ItemSink = Callable[[yaml.Node, int, tuple[yaml.Node, ...]], None]

_STR_TAG = "tag:yaml.org,2002:str"
_PLAIN_TAGS = (None, "!")


class _EventComposer(Composer):
    """PyYAML's composer reading the events of another loader (libyaml's, in C).

    No path resolvers are registered (the caller checks), so descending is a no-op.
    """

    def __init__(self, loader: Any) -> None:
        super().__init__()
        self._loader = loader

    def node(self, parent: yaml.Node, index: Any) -> yaml.Node:
        """The next node, composed whole (`index`: its place in `parent`, key or number)."""
        composed = self.compose_node(parent, index)
        assert composed is not None  # the stubs allow None; inside a collection, never
        return composed

    def check_event(self, *choices: type[yaml.Event]) -> bool:
        return bool(self._loader.check_event(*choices))

    def peek_event(self) -> Any:
        return self._loader.peek_event()

    def get_event(self) -> Any:
        return self._loader.get_event()

    def resolve(self, kind: type[yaml.Node], value: Any, implicit: Any) -> str:
        return str(self._loader.resolve(kind, value, implicit))

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        return None

    def ascend_resolver(self) -> None:
        return None


def compose_in_pieces(loader: Any, item: ItemSink) -> yaml.MappingNode | None:
    """The document's top-level mapping with an empty `batches` list, whose items went to
    `item` one by one; None (nothing but the opening events read) when the document is not
    of that shape. Raises PyYAML's errors as composing the whole document would."""
    if loader.yaml_path_resolvers:
        return None
    loader.get_event()  # the stream's start
    if not loader.check_event(yaml.DocumentStartEvent):
        return None  # an empty file
    loader.get_event()
    opening = loader.peek_event()
    if not isinstance(opening, yaml.MappingStartEvent) or opening.anchor is not None:
        return None
    composer = _EventComposer(loader)
    root: yaml.MappingNode = _opened(composer, yaml.MappingNode)
    listed = False
    while not composer.check_event(yaml.MappingEndEvent):
        key = composer.node(root, None)
        if not listed and _names_the_list(key) and _plain_list_follows(composer):
            listed = True
            root.value.append((key, _list_in_pieces(composer, root, item)))
        else:
            root.value.append((key, composer.node(root, key)))
    root.end_mark = composer.get_event().end_mark
    composer.get_event()  # the document's end
    if not composer.check_event(yaml.StreamEndEvent):
        event = composer.get_event()
        raise ComposerError(
            "expected a single document in the stream",
            root.start_mark,
            "but found another document",
            event.start_mark,
        )
    composer.get_event()
    return root


def _opened(composer: _EventComposer, kind: type[yaml.Node]) -> Any:
    """The node a collection's start event opens (its items still to come)."""
    start = composer.get_event()
    tag = start.tag
    if tag in _PLAIN_TAGS:
        tag = composer.resolve(kind, None, start.implicit)
    return kind(tag, [], start.start_mark, None, flow_style=start.flow_style)  # type: ignore[call-arg]


def _names_the_list(key: yaml.Node) -> bool:
    return isinstance(key, yaml.ScalarNode) and key.tag == _STR_TAG and key.value == PIECES_KEY


def _plain_list_follows(composer: _EventComposer) -> bool:
    event = composer.peek_event()
    return isinstance(event, yaml.SequenceStartEvent) and event.anchor is None


def _list_in_pieces(
    composer: _EventComposer, root: yaml.MappingNode, item: ItemSink
) -> yaml.SequenceNode:
    listing: yaml.SequenceNode = _opened(composer, yaml.SequenceNode)
    index = 0
    while not composer.check_event(yaml.SequenceEndEvent):
        item(composer.node(listing, index), index, (root, listing))
        index += 1
    listing.end_mark = composer.get_event().end_mark
    return listing
