"""Distillation loss: alpha * T^2 * KL(teacher/T || student/T) + (1 - alpha) * CE(hard label).

Examples without a soft label (seeds, or a teacher that could not score) fall back to cross-entropy alone.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-8


def soften(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """Teacher probabilities at temperature T: softmax(log p / T)."""
    return torch.softmax(torch.log(probs.clamp_min(EPS)) / temperature, dim=-1)


def kd_loss(logits: torch.Tensor, hard: torch.Tensor, soft: torch.Tensor, has_soft: torch.Tensor,
            temperature: float, alpha: float | None, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean loss over the rows; `weights` (one per row, mean 1) reweights them, e.g. to balance classes.
    alpha None (no audit set one): hard labels only."""
    alpha = alpha or 0.0
    ce = F.cross_entropy(logits, hard, reduction="none")
    target = soften(soft, temperature)
    log_student = F.log_softmax(logits / temperature, dim=-1)
    kl = (target * (torch.log(target.clamp_min(EPS)) - log_student)).sum(-1) * temperature**2
    mixed = alpha * kl + (1 - alpha) * ce
    per_row = torch.where(has_soft, mixed, ce)
    return per_row.mean() if weights is None else (per_row * weights).sum() / weights.sum()


def class_weights(hard: torch.Tensor, n_classes: int, mode: str) -> torch.Tensor | None:
    """Per-row weights that make every class weigh the same in the loss however many examples it has ("balanced"),
    or None ("none"). A teacher that writes more of some classes then shifts no class prior."""
    if mode == "none":
        return None
    counts = torch.bincount(hard, minlength=n_classes).clamp_min(1).float()
    weights = (len(hard) / (n_classes * counts))[hard]
    return weights / weights.mean()


def soft_matrix(soft_labels: list[dict[str, float] | None], label_index: dict[str, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense [n, C] teacher probabilities (labels outside the scored candidates get 0) and a has-soft mask."""
    matrix = torch.zeros(len(soft_labels), len(label_index))
    mask = torch.zeros(len(soft_labels), dtype=torch.bool)
    for row, probs in enumerate(soft_labels):
        if probs:
            for label, p in probs.items():
                if label in label_index:
                    matrix[row, label_index[label]] = p
            total = matrix[row].sum()
            if total > 0:
                matrix[row] /= total
                mask[row] = True
    return matrix, mask
