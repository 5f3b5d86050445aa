"""Turns raw teacher replies into candidate texts; what does not parse is dropped with a reason."""
from __future__ import annotations

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
