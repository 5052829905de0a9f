"""YAML documents that remember where each value came from, so that every policy error can say
file:line:col. Mappings load as ``SourceMap`` and sequences as ``SourceList``; both carry the
1-based position of the node and of each of their keys or items.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml


@dataclass(frozen=True)
class Position:
    file: str
    line: int
    column: int
    path: str = "$"

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class SourceMap(dict[str, Any]):
    """A YAML mapping with the position of itself, of each key and of each value."""

    position: Position
    key_positions: dict[str, Position]
    value_positions: dict[str, Position]

    def pos(self, key: str | None = None) -> Position:
        if key is None:
            return self.position
        return self.value_positions.get(key) or self.key_positions.get(key) or self.position

    def key_pos(self, key: str) -> Position:
        return self.key_positions.get(key, self.position)


class SourceList(list[Any]):
    """A YAML sequence with the position of itself and of each item."""

    position: Position
    item_positions: list[Position]

    def pos(self, index: int | None = None) -> Position:
        if index is None or index >= len(self.item_positions):
            return self.position
        return self.item_positions[index]


class YamlError(Exception):
    def __init__(self, message: str, position: Position) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


# Limits on hostile files (Cerbos has none: its YAML parser expands an alias bomb until memory runs
# out). A policy or test file nests a few levels deep and uses aliases to share small fixtures.
MAX_DEPTH = 128  # nested mappings and sequences, counted after aliases are expanded
MAX_ALIAS_EXPANSION = 100_000  # values that aliases may add to a document (or its own size, if more)


class _Loader(yaml.SafeLoader):
    """A safe loader that builds SourceMap/SourceList with positions (no arbitrary objects)."""

    source_name: str  # the file, set by load_documents
    depth = 0
    has_anchors = False  # in the last document composed (without anchors, no alias to expand)

    def compose_document(self) -> yaml.Node | None:
        anchors = self.anchors  # the composer fills this dict, then starts a new one
        node: yaml.Node | None = super().compose_document()
        self.has_anchors = bool(anchors)
        return node

    # PyYAML composes nested collections recursively: past MAX_DEPTH that is an error at the
    # collection that opens too deep, not Python's recursion limit.
    def compose_sequence_node(self, anchor: Any) -> yaml.SequenceNode:
        self._enter()
        try:
            return super().compose_sequence_node(anchor)
        finally:
            self.depth -= 1

    def compose_mapping_node(self, anchor: Any) -> yaml.MappingNode:
        self._enter()
        try:
            return super().compose_mapping_node(anchor)
        finally:
            self.depth -= 1

    def _enter(self) -> None:
        if self.depth >= MAX_DEPTH:
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise YamlError(
                f"invalid YAML: nested more than {MAX_DEPTH} levels deep",
                Position(self.source_name, mark.line + 1, mark.column + 1),
            )
        self.depth += 1


def _position(loader: _Loader, node: yaml.Node, path: str) -> Position:
    mark = node.start_mark
    return Position(loader.source_name, mark.line + 1, mark.column + 1, path)


def _content_position(loader: _Loader, node: yaml.Node, path: str) -> Position:
    """Where a scalar's text starts: after an opening quote, or on the line after ``|``/``>``."""
    pos = _position(loader, node, path)
    style = getattr(node, "style", None)
    if style in ('"', "'"):
        return Position(pos.file, pos.line, pos.column + 1, path)
    if style in ("|", ">"):
        buffer, pointer = node.start_mark.buffer, node.start_mark.pointer
        if buffer is None:
            return pos
        newline = buffer.find("\n", pointer)
        if newline < 0:
            return pos
        rest = buffer[newline + 1 :]
        indent = len(rest) - len(rest.lstrip(" "))
        return Position(pos.file, pos.line + 1, indent + 1, path)
    return pos


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _flatten_merge_keys(loader: _Loader, node: yaml.MappingNode) -> int:
    """Resolves ``<<: *anchor`` merge keys in place, as YAML's merge-key type says: the merged
    pairs come first, each key once (from the first mapping merged that has it), then the
    mapping's own pairs, which override them. Returns how many pairs were merged; a node reached
    again through an alias is already flattened and keeps its count."""
    merged: int | None = getattr(node, "ccc_merged_pairs", None)
    if merged is not None:
        return merged
    own: list[tuple[yaml.Node, yaml.Node]] = []
    sources: list[yaml.MappingNode] = []
    for key_node, value_node in node.value:
        if key_node.tag != _MERGE_TAG:
            if key_node.tag == "tag:yaml.org,2002:value":
                key_node.tag = "tag:yaml.org,2002:str"
            own.append((key_node, value_node))
            continue
        subnodes = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        for sub in subnodes:
            if not isinstance(sub, yaml.MappingNode):
                raise YamlError(
                    "invalid YAML: expected a mapping or list of mappings for merging", _position(loader, sub, "$")
                )
            sources.append(sub)
    pairs: dict[object, tuple[yaml.Node, yaml.Node]] = {}
    for source in sources:
        _flatten_merge_keys(loader, source)
        effective: dict[object, tuple[yaml.Node, yaml.Node]] = {}
        for pair in source.value:  # already flattened: a later pair overrides an earlier one
            effective[_key_identity(pair[0])] = pair
        for key, pair in effective.items():
            pairs.setdefault(key, pair)
    node.value = [*pairs.values(), *own]
    node.ccc_merged_pairs = len(pairs)  # type: ignore[attr-defined]
    return len(pairs)


def _key_identity(key_node: yaml.Node) -> object:
    return (key_node.tag, key_node.value) if isinstance(key_node, yaml.ScalarNode) else id(key_node)


def _build(loader: _Loader, node: yaml.Node, path: str) -> Any:
    if isinstance(node, yaml.MappingNode):
        merged = _flatten_merge_keys(loader, node)
        out = SourceMap()
        out.position = _position(loader, node, path)
        out.key_positions = {}
        out.value_positions = {}
        own_keys: set[str] = set()
        for i, (key_node, value_node) in enumerate(node.value):
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                key = str(key)
            if i >= merged:  # the mapping's own keys: they override merged ones, never each other
                if key in own_keys:
                    raise YamlError(f'duplicate key "{key}"', _position(loader, key_node, path))
                own_keys.add(key)
            child_path = f"{path}.{key}"
            out.key_positions[key] = _position(loader, key_node, child_path)
            out.value_positions[key] = _content_position(loader, value_node, child_path)
            out[key] = _build(loader, value_node, child_path)
        return out
    if isinstance(node, yaml.SequenceNode):
        out_list = SourceList()
        out_list.position = _position(loader, node, path)
        out_list.item_positions = []
        for i, item in enumerate(node.value):
            child_path = f"{path}[{i}]"
            out_list.item_positions.append(_content_position(loader, item, child_path))
            out_list.append(_build(loader, item, child_path))
        return out_list
    return loader.construct_object(node, deep=True)


def _check_expansion(loader: _Loader, root: yaml.Node) -> None:
    """Refuses a document whose aliases would expand it past the limits (a "billion laughs" file:
    each level repeating the previous one's alias ten times) or that an alias makes infinite
    (``&a [*a]``), before anything is expanded: each distinct node is visited once."""
    size: dict[int, int] = {}  # expanded values below and including each node
    depth: dict[int, int] = {}
    distinct = 0
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        children = _children(node)
        if not children_done:
            if key in size:
                continue
            if key in on_path:
                where = _position(loader, node, "$")
                raise YamlError("invalid YAML: an alias refers to a node that contains it", where)
            on_path.add(key)
            distinct += 1
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in size)
            continue
        on_path.discard(key)
        size[key] = 1 + sum(size[id(c)] for c in children)
        depth[key] = 1 + max((depth[id(c)] for c in children), default=0) if children else 0
        if size[key] - distinct > max(MAX_ALIAS_EXPANSION, distinct):
            raise YamlError(
                f"invalid YAML: aliases expand this document past {max(MAX_ALIAS_EXPANSION, distinct)} "
                "more values (an alias bomb?)",
                _position(loader, node, "$"),
            )
        if depth[key] > MAX_DEPTH:
            raise YamlError(
                f"invalid YAML: aliases nest this value more than {MAX_DEPTH} levels deep",
                _position(loader, node, "$"),
            )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def load_documents(text: str, file: str) -> Iterator[tuple[Any, Position]]:
    """Every document in ``text`` with the position where it starts; empty documents are skipped."""
    loader = _Loader(text)
    loader.source_name = file
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            if loader.has_anchors:
                _check_expansion(loader, node)
            yield _build(loader, node, "$"), _position(loader, node, "$")
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise YamlError(f"invalid YAML: {exc.problem or exc}", Position(file, line, col)) from None
    finally:
        loader.dispose()


def plain(value: Any) -> Any:
    """The value without position bookkeeping (plain dicts and lists)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
