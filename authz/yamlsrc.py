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


class _Loader(yaml.SafeLoader):
    """A safe loader that builds SourceMap/SourceList with positions (no arbitrary objects)."""

    source_name: str  # the file, set by load_documents


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


def _build(loader: _Loader, node: yaml.Node, path: str) -> Any:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out = SourceMap()
        out.position = _position(loader, node, path)
        out.key_positions = {}
        out.value_positions = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                key = str(key)
            if key in out:
                raise YamlError(f'duplicate key "{key}"', _position(loader, key_node, path))
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


def load_documents(text: str, file: str) -> Iterator[tuple[Any, Position]]:
    """Every document in ``text`` with the position where it starts; empty documents are skipped."""
    loader = _Loader(text)
    loader.source_name = file
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
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
