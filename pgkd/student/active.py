"""Active learning: which pool texts a student should have labelled next (`students[].pool_strategy`)."""
from __future__ import annotations

import numpy as np


def top2_margin(probs: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability of each row (top-1 alone with a single class)."""
    top = np.sort(probs, axis=1)[:, ::-1]
    return top[:, 0] - (top[:, 1] if probs.shape[1] > 1 else 0.0)


def normalized_entropy(probs: np.ndarray) -> np.ndarray:
    """Predictive entropy of each row, divided by its maximum: 0 sure, 1 uniform."""
    return -(probs * np.log(np.clip(probs, 1e-12, 1.0))).sum(1) / np.log(max(probs.shape[1], 2))


def least_confident(probs: np.ndarray, labels: list[str], k: int, skip: set[int] = frozenset(),
                    top: int = 3) -> list[tuple[int, float, list[str]]]:
    """Up to k (pool index, uncertainty = 1 - margin, the student's top labels) rows, least sure first."""
    if k <= 0 or len(probs) == 0:
        return []
    ranked = np.argsort(-probs, axis=1)
    margin = top2_margin(probs)
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
    normalised to [0, 1]), `diverse_margin` (the smallest margins, spread over clusters) or `random` (the
    control: uncertainty 0.5 for all)."""
    if strategy == "margin":
        return least_confident(probs, labels, k, skip, top)
    if strategy == "diverse_margin":
        return diverse_margin(probs, labels, k, skip, seed, top)
    if k <= 0 or len(probs) == 0:
        return []
    ranked = np.argsort(-probs, axis=1)[:, :top]
    if strategy == "entropy":
        entropy = normalized_entropy(probs)
        order, score = np.argsort(-entropy, kind="stable"), entropy
    elif strategy == "random":
        order, score = np.random.default_rng(seed).permutation(len(probs)), np.full(len(probs), 0.5)
    else:
        raise ValueError(f"unknown pool strategy '{strategy}' (known: margin, entropy, diverse_margin, random)")
    picked = [int(i) for i in order if int(i) not in skip][:k]
    return [(i, float(score[i]), [labels[j] for j in ranked[i]]) for i in picked]


DIVERSE_CANDIDATES = 10  # diverse_margin clusters the k * this smallest-margin rows


def diverse_margin(probs: np.ndarray, labels: list[str], k: int, skip: set[int] = frozenset(), seed: int = 0,
                   top: int = 3) -> list[tuple[int, float, list[str]]]:
    """The k * DIVERSE_CANDIDATES smallest-margin rows, grouped into k clusters of the student's probability vectors
    (k-means), and the least sure row of each cluster: one batch then holds k different confusions, not k
    near-identical texts of the same one. Probability vectors need no second model and work for every kind."""
    candidates = least_confident(probs, labels, k * DIVERSE_CANDIDATES, skip, top)
    if len(candidates) <= k:
        return candidates
    vectors = probs[[index for index, _, _ in candidates]]
    clusters = kmeans(vectors, k, seed)
    picked = {}
    for row, cluster in zip(candidates, clusters):  # candidates come least sure first
        picked.setdefault(int(cluster), row)
    chosen = sorted(picked.values(), key=lambda row: -row[1])
    taken = {index for index, _, _ in chosen}
    chosen += [row for row in candidates if row[0] not in taken][:k - len(chosen)]  # empty clusters: by margin
    return chosen


def kmeans(vectors: np.ndarray, k: int, seed: int, iterations: int = 20) -> np.ndarray:
    """Cluster index of each row (k-means++ start, a few Lloyd steps; deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    centres = [vectors[rng.integers(len(vectors))]]
    for _ in range(1, k):
        distance = np.min([((vectors - c) ** 2).sum(1) for c in centres], axis=0)
        total = distance.sum()
        centres.append(vectors[rng.choice(len(vectors), p=distance / total)] if total > 0 else vectors[0])
    centres = np.array(centres)
    for _ in range(iterations):
        assign = nearest(vectors, centres)
        moved = np.array([vectors[assign == c].mean(0) if (assign == c).any() else centres[c] for c in range(k)])
        if np.allclose(moved, centres):
            break
        centres = moved
    return nearest(vectors, centres)


def nearest(vectors: np.ndarray, centres: np.ndarray) -> np.ndarray:
    return ((vectors[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)
