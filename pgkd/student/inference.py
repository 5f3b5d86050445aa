"""Batched inference and top labels, shared by the student kinds."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch


def batched_probabilities(net: torch.nn.Module, make_inputs: Callable[[list[str]], dict], texts: list[str],
                          batch_size: int, n_labels: int) -> np.ndarray:
    """softmax(net(**make_inputs(chunk))) over texts in chunks, in eval mode and without gradients."""
    net.eval()
    with torch.inference_mode():
        chunks = [net(**make_inputs(texts[s:s + batch_size])) for s in range(0, len(texts), batch_size)]
        logits = torch.cat(chunks) if chunks else torch.zeros(0, n_labels)
        return torch.softmax(logits, dim=-1).cpu().numpy()


def top_labels(labels: list[str], probs) -> list[tuple[str, float]]:
    """(label, probability) of the most probable class of each row."""
    return [(labels[i], float(p[i])) for p, i in zip(probs, probs.argmax(1))]
