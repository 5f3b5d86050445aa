"""Choosing the student to export on texts the teacher never saw, without mistaking noise for a gain.

The highest selection macro-F1 wins, except that a version trained on teacher data replaces the best seeds-only
version (v0) only when its gain exceeds `z` standard errors of the paired difference, estimated by resampling
the selection texts (the same resamples for both versions, so what they get right together cancels out).
On a few hundred selection texts that error is about 0.01 macro-F1: smaller gains are not evidence.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RESAMPLES = 200


@dataclass
class Candidate:
    key: str
    version: int
    macro_f1: float
    predictions: list[str]


@dataclass
class Choice:
    best: Candidate
    seeds_only: Candidate | None
    gain: float  # best minus seeds-only selection macro-F1 (0 when the seeds-only version is kept)
    margin: float  # z standard errors of that paired difference: the gain had to exceed it
    reason: str


class BestChoice:
    def __init__(self, gold: list[str], labels: list[str], z: float, resamples: int = RESAMPLES, seed: int = 0):
        self.index = {label: i for i, label in enumerate(labels)}
        self.gold = np.array([self.index[g] for g in gold])
        self.z, self.k = z, len(labels)
        self.samples = np.random.default_rng(seed).integers(0, len(gold), size=(resamples, len(gold)))
        self.candidates: dict[str, Candidate] = {}
        self._resampled: dict[str, np.ndarray] = {}  # candidate key -> its macro-F1 on every resample

    def add(self, candidate: Candidate) -> None:
        self.candidates[candidate.key] = candidate

    def choose(self) -> Choice | None:
        if not self.candidates:
            return None
        ranked = sorted(self.candidates.values(), key=lambda c: (-c.macro_f1, c.version, c.key))
        base = next((c for c in ranked if c.version == 0), None)
        if base is None or self.z == 0 or ranked[0] is base:
            gain = 0.0 if base is None else ranked[0].macro_f1 - base.macro_f1
            return Choice(ranked[0], base, gain, 0.0, "highest selection macro-F1")
        above = ranked[:ranked.index(base)]  # later versions that scored higher than seeds-only
        for candidate in above:
            gain, margin = candidate.macro_f1 - base.macro_f1, self.z * self.paired_se(base, candidate)
            if gain > margin:
                return Choice(candidate, base, gain, margin, f"beats seeds-only {base.key} by {gain:.4f} > "
                                                             f"{self.z:g} x SE = {margin:.4f}")
        gain, margin = above[0].macro_f1 - base.macro_f1, self.z * self.paired_se(base, above[0])
        return Choice(base, base, 0.0, margin, f"kept seeds-only: the best later version gained {gain:.4f}, "
                                               f"within {self.z:g} x SE = {margin:.4f} of selection noise")

    def paired_se(self, a: Candidate, b: Candidate) -> float:
        """Standard error of macro-F1(b) - macro-F1(a) over resamples of the selection texts."""
        for c in (a, b):
            if c.key not in self._resampled:
                self._resampled[c.key] = self._resampled_f1(c.predictions)
        diff = self._resampled[b.key] - self._resampled[a.key]
        return float(diff.std(ddof=1)) if len(diff) > 1 else 0.0

    def _resampled_f1(self, predictions: list[str]) -> np.ndarray:
        """Macro-F1 (mean over the labels present in the resample's gold, as evaluator.metrics) on every
        resample at once."""
        pred = np.array([self.index.get(p, -1) for p in predictions])
        gold, guess = self.gold[self.samples], pred[self.samples]
        rows = np.arange(len(self.samples))[:, None]
        tp, predicted, actual = (np.zeros((len(self.samples), self.k)) for _ in range(3))
        hit = gold == guess
        np.add.at(tp, (np.broadcast_to(rows, gold.shape)[hit], gold[hit]), 1)
        valid = guess >= 0
        np.add.at(predicted, (np.broadcast_to(rows, guess.shape)[valid], guess[valid]), 1)
        np.add.at(actual, (np.broadcast_to(rows, gold.shape), gold), 1)
        denom = predicted + actual
        f1 = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)
        present = actual > 0
        return (f1 * present).sum(1) / np.maximum(present.sum(1), 1)
