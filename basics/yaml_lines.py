"""YAML loading that remembers the line of every key, for error messages that point at the file."""
from __future__ import annotations

import yaml


def load_with_lines(text: str) -> tuple[object, dict[tuple, int]]:
    """Parse YAML; return (data, {path tuple: 1-based line}) for every mapping key and list item."""
    data = yaml.safe_load(text)
    lines: dict[tuple, int] = {}
    node = yaml.compose(text)
    if node is not None:
        _walk(node, (), lines)
    return data, lines


def _walk(node, path: tuple, lines: dict) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = path + (key_node.value,)
            lines[child] = key_node.start_mark.line + 1
            _walk(value_node, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = path + (index,)
            lines[child] = item.start_mark.line + 1
            _walk(item, child, lines)


def nearest_line(lines: dict[tuple, int], path: tuple) -> int | None:
    """Line of the deepest known prefix of path (a missing field points at its parent)."""
    for cut in range(len(path), 0, -1):
        if path[:cut] in lines:
            return lines[path[:cut]]
    return None
