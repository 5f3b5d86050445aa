"""Choosing the student to export without mistaking noise for a gain.

A version trained on teacher data (a challenger) replaces the best seeds-only version (v0) only when its gain
exceeds `z` standard errors of the paired difference, estimated by resampling the texts that decide (the same
resamples for both versions, so what they get right together cancels out). Which versions challenge:
- "newest": each student's newest version, named before any score is read. Testing one challenger fixed in
  advance is not biased upwards, where the best of twenty noisy scores is; with a replay that does not forget
  (student/trainer.py) the newest is the one with the most data.
- "best": every later version that scores above v0, best first (the rule before issue 27).
On a few hundred texts that error is about 0.01 macro-F1: smaller gains are not evidence. bench/selection_rules.py
measures the rules as classifiers of "really better".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Challengers = Literal["newest", "best"]

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
    def __init__(self, gold: list[str], labels: list[str], z: float, resamples: int = RESAMPLES, seed: int = 0,
                 challengers: Challengers = "best"):
        self.index = {label: i for i, label in enumerate(labels)}
        self.gold = np.array([self.index[g] for g in gold])
        self.z, self.k, self.challengers = z, len(labels), challengers
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
        if base is None or (self.z == 0 and self.challengers == "best") or ranked[0] is base:
            gain = 0.0 if base is None else ranked[0].macro_f1 - base.macro_f1
            return Choice(ranked[0], base, gain, 0.0, "kept seeds-only: no later version scored higher"
                          if ranked[0] is base and len(ranked) > 1 else "highest macro-F1")
        challengers = [c for c in self.challenging(ranked) if c.macro_f1 > base.macro_f1]
        what = "newest version" if self.challengers == "newest" else "version"
        for candidate in challengers:
            gain, margin = candidate.macro_f1 - base.macro_f1, self.z * self.paired_se(base, candidate)
            if gain > margin:
                return Choice(candidate, base, gain, margin, f"its {what} {candidate.key} beats seeds-only "
                                                             f"{base.key} by {gain:.4f} > {self.z:g} x SE = {margin:.4f}")
        if not challengers:
            newest = max((c for c in ranked if c.version > 0), key=lambda c: (c.version, c.key))
            return Choice(base, base, 0.0, 0.0, f"kept seeds-only: the newest version {newest.key} scored "
                                                f"{newest.macro_f1 - base.macro_f1:+.4f} against it")
        gain, margin = challengers[0].macro_f1 - base.macro_f1, self.z * self.paired_se(base, challengers[0])
        return Choice(base, base, 0.0, margin, f"kept seeds-only: the {what} {challengers[0].key} gained {gain:.4f}, "
                                               f"within {self.z:g} x SE = {margin:.4f} of noise")

    def challenging(self, ranked: list[Candidate]) -> list[Candidate]:
        """The later versions that may replace seeds-only, best score first."""
        later = [c for c in ranked if c.version > 0]
        if self.challengers == "best":
            return later
        newest: dict[str, Candidate] = {}
        for c in later:
            student = c.key.rpartition("@")[0]
            if student not in newest or c.version > newest[student].version:
                newest[student] = c
        chosen = {id(c) for c in newest.values()}
        return [c for c in ranked if id(c) in chosen]

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
