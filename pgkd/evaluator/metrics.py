"""Classification metrics without sklearn: accuracy, macro-F1, per-class F1, confusion pairs."""
from __future__ import annotations

from collections import Counter


def per_class_f1(gold: list[str], pred: list[str], labels: list[str]) -> dict[str, float]:
    tp, fp, fn = Counter(), Counter(), Counter()
    for g, p in zip(gold, pred):
        if g == p:
            tp[g] += 1
        else:
            fp[p] += 1
            fn[g] += 1
    scores = {}
    for label in labels:
        denom = 2 * tp[label] + fp[label] + fn[label]
        scores[label] = 2 * tp[label] / denom if denom else 0.0
    return scores


def present_labels(gold: list[str], labels: list[str]) -> list[str]:
    """Macro-F1 averages over classes present in the gold set (as sklearn does with labels=gold)."""
    seen = set(gold)
    return [label for label in labels if label in seen]


def macro_f1(gold: list[str], pred: list[str], labels: list[str]) -> float:
    scores = per_class_f1(gold, pred, labels)
    present = present_labels(gold, labels)
    return sum(scores[label] for label in present) / len(present) if present else 0.0


def accuracy(gold: list[str], pred: list[str]) -> float:
    if not gold:
        return 0.0
    return sum(g == p for g, p in zip(gold, pred)) / len(gold)


def confusion_pairs(gold: list[str], pred: list[str], top: int = 20) -> list[tuple[str, str, int]]:
    counts = Counter((g, p) for g, p in zip(gold, pred) if g != p)
    return [(g, p, n) for (g, p), n in counts.most_common(top)]
