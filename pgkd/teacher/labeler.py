"""Soft labels from the teacher: calibrated label log-probabilities over a few candidate labels.

A small base model leans hard toward some labels; dividing by the probabilities it gives a content-free input
("N/A") in the same prompt removes most of that bias. Scoring every label of a 77-class task per text costs 77
forward passes, so only candidates are scored (the intended label, its confusions, random others) and the rest
get no mass.

A text without probabilities says why: UNSCORED (the backend gave no score, or its candidate set has no
content-free baseline yet) or UNSCORABLE (a log-probability, or the calibration of one, is not a finite number:
it would make every probability NaN). A baseline is kept only when it is whole and finite; else it is asked for
again with the next texts of that set.
"""
from __future__ import annotations

import math
import random

from pgkd.teacher.backends.base import TeacherBackend
from pgkd.teacher.prompts import PromptBuilder

CONTENT_FREE = "N/A"
UNSCORED, UNSCORABLE = "unscored", "unscorable"  # the drop reasons of a text without probabilities

Scores = dict[str, float] | str  # a text's calibrated probabilities, or why it has none


def finite(scores: dict[str, float]) -> bool:
    return all(math.isfinite(v) for v in scores.values())


def softmax(scores: dict[str, float]) -> dict[str, float]:
    top = max(scores.values())
    exps = {k: math.exp(v - top) for k, v in scores.items()}
    total = sum(exps.values())
    return {k: v / total for k, v in exps.items()}


class SoftLabeler:
    def __init__(self, backend: TeacherBackend, prompts: PromptBuilder, label_names: list[str], n_candidates: int,
                 rng: random.Random):
        self.backend, self.prompts = backend, prompts
        self.label_names, self.n_candidates, self.rng = label_names, n_candidates, rng
        self._content_free: dict[tuple, dict[str, float]] = {}

    def candidates(self, intended: str, related: list[str]) -> list[str]:
        chosen = [intended] + [r for r in related if r != intended]
        others = [name for name in self.label_names if name not in chosen]
        self.rng.shuffle(others)
        chosen += others[: max(0, self.n_candidates - len(chosen))]
        return sorted(chosen[: max(self.n_candidates, 2)])

    def score(self, texts: list[str], candidate_sets: list[list[str]]) -> list[Scores]:
        """Calibrated probabilities over each text's candidates, or the reason it has none (UNSCORED,
        UNSCORABLE). The content-free inputs of new candidate sets ride in the same backend call."""
        new_sets = list(dict.fromkeys(tuple(c) for c in candidate_sets if tuple(c) not in self._content_free))
        raw = self._raw_scores(texts + [CONTENT_FREE] * len(new_sets), candidate_sets + [list(c) for c in new_sets])
        missing = {}  # candidate set -> why its baseline is missing, for this call only
        for cands, base in zip(new_sets, raw[len(texts):]):
            if base is not None and finite(base):
                self._content_free[cands] = base
            else:  # a lost or non-finite baseline is never kept: it would skew (or NaN) every later label
                missing[cands] = UNSCORED if base is None else UNSCORABLE
        return [self._calibrated(scores, tuple(cands), missing) for scores, cands in zip(raw[:len(texts)],
                                                                                       candidate_sets)]

    def _raw_scores(self, texts, candidate_sets) -> list[dict[str, float] | None]:
        """Each text's labelling prompt, with each candidate's answer scored as the reply (backend.choice_logprobs)."""
        prompts = [self.prompts.classify_prompt(text, cands) for text, cands in zip(texts, candidate_sets)]
        answers = [{self.prompts.label_answer(label): label for label in cands} for cands in candidate_sets]
        scored = self.backend.choice_logprobs(prompts, [list(a) for a in answers])
        return [None if by_answer is None or len(by_answer) < len(names) else
                {names[answer]: logprob for answer, logprob in by_answer.items() if answer in names}
                for by_answer, names in zip(scored, answers)]

    def _calibrated(self, scores: dict[str, float] | None, cands: tuple, missing: dict[tuple, str]) -> Scores:
        if scores is None:
            return UNSCORED
        if not finite(scores):
            return UNSCORABLE
        if cands in missing:  # uncalibrated probabilities are not the teacher's labels: none rather than those
            return missing[cands]
        base = self._content_free[cands]
        probs = softmax({label: scores[label] - base[label] for label in cands})
        return probs if finite(probs) else UNSCORABLE  # finite scores far apart can still overflow
