"""Quality filters between the teacher's reply and the students: duplicates, copies and leakage."""
from __future__ import annotations

from pgkd.dataset import normalize_text


class NoveltyFilter:
    """Drops texts already seen (seeds or earlier generations) and texts of the validation or test sets."""

    def __init__(self, seen: list[str], protected: list[str]):
        self.seen = {normalize_text(t) for t in seen}
        self.protected = {normalize_text(t) for t in protected}

    def check(self, text: str) -> str | None:
        """Return a drop reason, or None and remember the text."""
        key = normalize_text(text)
        if not key:
            return "empty"
        if key in self.protected:
            return "leak_eval_text"
        if key in self.seen:
            return "duplicate"
        self.seen.add(key)
        return None
