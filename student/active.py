"""Active learning: which pool texts a student is least sure of (smallest margin between its top two labels)."""
from __future__ import annotations

import numpy as np


def least_confident(probs: np.ndarray, labels: list[str], k: int, skip: set[int] = frozenset(),
                    top: int = 3) -> list[tuple[int, float, list[str]]]:
    """Up to k (pool index, uncertainty = 1 - margin, the student's top labels) rows, least sure first."""
    if k <= 0 or len(probs) == 0:
        return []
    ranked = np.argsort(-probs, axis=1)
    rows = np.arange(len(probs))
    margin = probs[rows, ranked[:, 0]] - (probs[rows, ranked[:, 1]] if probs.shape[1] > 1 else 0.0)
    picked = []
    for index in np.argsort(margin, kind="stable"):
        if int(index) in skip:
            continue
        picked.append((int(index), float(1.0 - margin[index]), [labels[j] for j in ranked[index, :top]]))
        if len(picked) == k:
            break
    return picked


def most_uncertain(probs: np.ndarray, labels: list[str], k: int, strategy: str, skip: set[int] = frozenset(),
                   seed: int = 0, top: int = 3) -> list[tuple[int, float, list[str]]]:
    """k pool rows by strategy: `margin` (smallest top-1 minus top-2), `entropy` (highest predictive entropy,
    normalised to [0, 1]) or `random` (the control: uncertainty 0.5 for all)."""
    if strategy == "margin":
        return least_confident(probs, labels, k, skip, top)
    if k <= 0 or len(probs) == 0:
        return []
    ranked = np.argsort(-probs, axis=1)[:, :top]
    if strategy == "entropy":
        entropy = -(probs * np.log(np.clip(probs, 1e-12, 1.0))).sum(1) / np.log(max(probs.shape[1], 2))
        order, score = np.argsort(-entropy, kind="stable"), entropy
    elif strategy == "random":
        order, score = np.random.default_rng(seed).permutation(len(probs)), np.full(len(probs), 0.5)
    else:
        raise ValueError(f"unknown pool strategy '{strategy}' (known: margin, entropy, random)")
    picked = [int(i) for i in order if int(i) not in skip][:k]
    return [(i, float(score[i]), [labels[j] for j in ranked[i]]) for i in picked]
