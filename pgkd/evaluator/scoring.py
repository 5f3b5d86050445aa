"""Scores a student on a labelled set: the numbers of an EvalReport. No Ray here."""
from __future__ import annotations

import time

import numpy as np

from pgkd.bus.messages import HardNegative
from pgkd.evaluator.metrics import accuracy, confusion_pairs, macro_f1, per_class_f1


def score(student, texts: list[str], gold: list[str], labels: list[str], max_hard_negatives: int = 50) -> dict:
    started = time.monotonic()
    probs = student.predict_proba(texts)
    predicted_index = probs.argmax(1)
    pred = [labels[i] for i in predicted_index]
    wrong = [i for i, (g, p) in enumerate(zip(gold, pred)) if g != p]
    wrong.sort(key=lambda i: -float(probs[i, predicted_index[i]]))
    hard = [HardNegative(text=texts[i], label=gold[i], predicted=pred[i], confidence=float(probs[i, predicted_index[i]]))
            for i in wrong[:max_hard_negatives]]
    index = {label: i for i, label in enumerate(labels)}
    true_prob: dict[str, list[float]] = {}
    for row, g in enumerate(gold):
        true_prob.setdefault(g, []).append(float(probs[row, index[g]]))
    return {
        "per_class_true_prob": {label: sum(v) / len(v) for label, v in true_prob.items()},
        "accuracy": accuracy(gold, pred),
        "macro_f1": macro_f1(gold, pred, labels),
        "per_class_f1": per_class_f1(gold, pred, labels),
        "confusion_pairs": confusion_pairs(gold, pred),
        "hard_negatives": hard,
        "eval_seconds": time.monotonic() - started,
        "predictions": pred,
        "probabilities": np.asarray(probs),
    }
