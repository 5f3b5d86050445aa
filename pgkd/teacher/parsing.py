"""Turns raw teacher replies into candidate texts; what does not parse is dropped with a reason."""
from __future__ import annotations

import json
from dataclasses import dataclass

STRIP = " \t-*•\"'“”`"


@dataclass
class Parsed:
    text: str | None
    reason: str | None  # why it was dropped, None when kept


def parse_reply(raw: str, min_words: int, max_words: int, truncated: bool = False) -> Parsed:
    """One reply is one text: the first line, bullet and quotes stripped."""
    if raw is None:
        return Parsed(None, "no_reply")
    line = raw.strip().split("\n", 1)[0].strip(STRIP)
    if not line:
        return Parsed(None, "empty")
    if not any(c.isalpha() for c in line):
        return Parsed(None, "no_letters")
    words = len(line.split())
    if words < min_words:
        return Parsed(None, "too_short")
    if words > max_words or truncated:
        return Parsed(None, "too_long")
    return Parsed(line, None)


@dataclass
class ParsedList:
    texts: list[str]  # each still to pass parse_reply's checks
    reason: str | None  # why the whole reply was dropped, None when it parsed


def parse_json_reply(raw: str | None, structured: bool) -> ParsedList:
    """A structured reply: {"examples": [text, ...]}. One that does not parse, or is not that shape, is dropped
    whole as schema_invalid; the other replies of the batch are untouched. A reply the backend could not hold to
    the schema (structured=False) that is not JSON is read as today's plain reply instead: one text per line."""
    if raw is None:
        return ParsedList([], "no_reply")
    try:
        data = json.loads(raw)
    except ValueError:
        if structured:
            return ParsedList([], "schema_invalid")
        return ParsedList([line for line in raw.splitlines() if line.strip()], None)
    items = data.get("examples") if isinstance(data, dict) else data
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        return ParsedList([], "schema_invalid")
    return ParsedList(items, None)
