"""Scoring a pool too large to hold: each batch keeps only its best candidates, a bounded merge keeps the round's,
and the strategy picks from those (`students[].pool_strategy`, `pool_balanced`).

The candidates of a round are the rows with the highest uncertainty by the strategy's own measure, so picking
among them equals picking over the whole pool. Memory is bounded by the candidates, never by the pool.
"""
from __future__ import annotations

import hashlib
import heapq
from dataclasses import dataclass, field

import numpy as np

from pgkd.student.active import DIVERSE_CANDIDATES, most_uncertain, normalized_entropy, top2_margin

TOP_LABELS = 3


@dataclass(order=True)
class Candidate:
    score: float  # higher: the student is less sure (or, for random, a draw)
    id: str = field(compare=False)
    text: str = field(compare=False)
    probs: list[float] = field(compare=False)
    top_labels: list[str] = field(compare=False)


def uncertainty(probs: np.ndarray, strategy: str, ids: list[str], seed: int) -> np.ndarray:
    """One score per row, higher first: 1 - top-2 margin (margin, diverse_margin), normalised entropy (entropy),
    or a draw fixed by the text id and seed (random: the same text draws the same in every shard)."""
    if strategy in ("margin", "diverse_margin"):
        return 1.0 - top2_margin(probs)
    if strategy == "entropy":
        return normalized_entropy(probs)
    if strategy == "random":
        return np.array([_draw(i, seed) for i in ids])
    raise ValueError(f"unknown pool strategy '{strategy}' (known: margin, entropy, diverse_margin, random)")


def _draw(text_id: str, seed: int) -> float:
    digest = hashlib.blake2b(f"{seed}:{text_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def candidates_to_keep(k: int, strategy: str) -> int:
    """Rows a batch and a round keep: k, or k * DIVERSE_CANDIDATES for diverse_margin, which clusters them."""
    return k * DIVERSE_CANDIDATES if strategy == "diverse_margin" else k


def batch_candidates(probs: np.ndarray, ids: list[str], texts: list[str], labels: list[str], k: int, strategy: str,
                     balanced: bool, seed: int) -> list[Candidate]:
    """A scored batch's candidates: its `candidates_to_keep` most uncertain rows (balanced: that many for each
    class the student predicts)."""
    if len(ids) == 0 or k <= 0:
        return []
    scores = uncertainty(probs, strategy, ids, seed)
    keep = candidates_to_keep(k, strategy)
    predicted = probs.argmax(1)
    groups = [np.flatnonzero(predicted == c) for c in np.unique(predicted)] if balanced else [np.arange(len(ids))]
    ranked = np.argsort(-probs, axis=1)[:, :TOP_LABELS]
    chosen = [i for group in groups for i in group[np.argsort(-scores[group], kind="stable")[:keep]]]
    return [Candidate(float(scores[i]), ids[i], texts[i], probs[i].tolist(), [labels[j] for j in ranked[i]])
            for i in chosen]


class RoundCandidates:
    """The round's best candidates, merged batch by batch: at most `keep` (per predicted class when balanced),
    one per text id, none already labelled."""

    def __init__(self, k: int, strategy: str, balanced: bool, labelled: set[str]):
        self.keep, self.balanced, self.labelled = candidates_to_keep(k, strategy), balanced, labelled
        self.heaps: dict[str, list[Candidate]] = {}  # class (or "" when not balanced) -> min-heap by score
        self.seen: set[str] = set()

    def add(self, candidates: list[Candidate]) -> None:
        for candidate in candidates:
            if candidate.id in self.labelled or candidate.id in self.seen:
                continue
            heap = self.heaps.setdefault(candidate.top_labels[0] if self.balanced else "", [])
            if len(heap) < self.keep:
                heapq.heappush(heap, candidate)
                self.seen.add(candidate.id)
            elif candidate.score > heap[0].score:
                self.seen.discard(heapq.heapreplace(heap, candidate).id)
                self.seen.add(candidate.id)

    def __len__(self) -> int:
        return sum(len(heap) for heap in self.heaps.values())

    def pick(self, k: int, strategy: str, seed: int) -> list[Candidate]:
        """The k to offer: by the strategy over all candidates, or (balanced) the best of each class in turn, the
        classes with the least sure candidate first."""
        if not self.balanced:
            return _by_strategy(self.heaps.get("", []), k, strategy, seed)
        queues = [sorted(heap, reverse=True) for heap in self.heaps.values()]
        queues.sort(key=lambda queue: -queue[0].score)
        picked = []
        while len(picked) < k and any(queues):
            picked += [queue.pop(0) for queue in queues if queue][:k - len(picked)]
        return picked


def _by_strategy(candidates: list[Candidate], k: int, strategy: str, seed: int) -> list[Candidate]:
    if not candidates:
        return []
    if strategy == "random":  # the draws already chose: the k highest
        return sorted(candidates, reverse=True)[:k]
    probs = np.array([c.probs for c in candidates])
    names = [str(j) for j in range(probs.shape[1])]  # rows are picked by position: label names are not needed
    return [candidates[i] for i, _, _ in most_uncertain(probs, names, k, strategy, seed=seed)]
