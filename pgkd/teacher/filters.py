"""Quality filters between the teacher's reply and the students: duplicates, near-duplicates and leakage."""
from __future__ import annotations

from pgkd.basics.dataset import normalize_text


def word_shingles(key: str) -> frozenset:
    """Word bigrams of a normalized text (single words for one-word texts)."""
    words = key.split()
    return frozenset(zip(words, words[1:])) if len(words) > 1 else frozenset(words)


def jaccard(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


class NoveltyFilter:
    """Drops texts already seen (seeds or earlier generations) and texts of the validation or test sets,
    exactly or nearly (word-bigram Jaccard at or above near_threshold; 1.0 turns near matching off)."""

    def __init__(self, seen: list[str], protected: list[str], near_threshold: float = 0.8):
        self.near_threshold = near_threshold
        self.seen = {normalize_text(t) for t in seen}
        self.protected = {normalize_text(t) for t in protected}
        self._seen_shingles = [word_shingles(k) for k in self.seen]
        self._protected_shingles = [word_shingles(k) for k in self.protected]

    def check(self, text: str) -> str | None:
        """Return a drop reason, or None and remember the text."""
        key = normalize_text(text)
        if not key:
            return "empty"
        if key in self.protected:
            return "leak_eval_text"
        if key in self.seen:
            return "duplicate"
        shingles = word_shingles(key)
        if self._near(shingles, self._protected_shingles):
            return "near_eval_text"
        if self._near(shingles, self._seen_shingles):
            return "near_duplicate"
        self.seen.add(key)
        self._seen_shingles.append(shingles)
        return None

    def _near(self, shingles: frozenset, pool: list[frozenset]) -> bool:
        if self.near_threshold >= 1.0:
            return False
        return any(jaccard(shingles, other) >= self.near_threshold for other in pool)
