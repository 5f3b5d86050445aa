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
