"""YAML loading that remembers the line of every key, for error messages that point at the file.

It also refuses what a plain safe_load accepts silently: a key given twice in one mapping (the last one would
win), and aliases that expand into a huge tree (an "alias bomb": each level doubles it).
"""
from __future__ import annotations

import yaml

MAX_NODES = 100_000  # mapping keys and list items after alias expansion; real configs have a few hundred


class DuplicateKey(yaml.YAMLError):
    def __init__(self, key: str, line: int, first_line: int):
        self.key, self.line = key, line
        super().__init__(f"key '{key}' given twice in one mapping (first on line {first_line})")


class TooLarge(yaml.YAMLError):
    def __init__(self, line: int):
        self.line = line
        super().__init__(f"the document expands to more than {MAX_NODES} keys and items (aliases inside aliases?)")


def load_with_lines(text: str) -> tuple[object, dict[tuple, int]]:
    """Parse YAML; return (data, {path tuple: 1-based line}) for every mapping key and list item."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        lines: dict[tuple, int] = {}
        if node is None:
            return None, lines
        _walk(node, (), lines)  # bounded: raises before constructing anything big
        return loader.construct_document(node), lines
    finally:
        loader.dispose()


def _walk(node, path: tuple, lines: dict) -> None:
    if len(lines) > MAX_NODES:
        raise TooLarge(lines.get(path, node.start_mark.line + 1))  # the key that expands, not the anchor
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if isinstance(key_node, yaml.ScalarNode) and key_node.value != "<<":
                if key_node.value in seen:
                    raise DuplicateKey(key_node.value, line, seen[key_node.value])
                seen[key_node.value] = line
            child = path + (key_node.value,)
            lines[child] = line
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
