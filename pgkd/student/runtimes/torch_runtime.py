"""The encoder in torch, as loaded: the fallback, the runtime on GPUs, and the one a fine-tuned encoder trains in."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from pgkd.student.runtimes.base import EncoderRuntime, register


def pool_hidden(hidden: torch.Tensor, attention_mask: torch.Tensor, cls: bool) -> torch.Tensor:
    """Unit-norm text vectors from the encoder's last hidden states: the first token's, or the mean of the real
    tokens (padding masked out)."""
    if cls:
        pooled = hidden[:, 0]
    else:
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-6)
    return F.normalize(pooled, dim=-1)


@register("torch")
class TorchRuntime(EncoderRuntime):
    def __init__(self, encoder_dir: str, tokenizer, pooling: str, max_length: int, encoder: torch.nn.Module):
        super().__init__(encoder_dir, tokenizer, pooling, max_length)
        self.encoder = encoder

    @classmethod
    def build(cls, encoder_dir, encoder, tokenizer, pooling, max_length) -> "TorchRuntime":
        return cls(encoder_dir, tokenizer, pooling, max_length, encoder)

    def tensors(self, texts: list[str]) -> torch.Tensor:
        """Pooled vectors with the graph kept when the encoder trains (fine-tuning calls this directly)."""
        device = next(self.encoder.parameters()).device
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        batch = {k: v.to(device) for k, v in batch.items()}
        hidden = self.encoder(**batch).last_hidden_state
        return pool_hidden(hidden, batch["attention_mask"], self.cls)

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        self.encoder.eval()
        with torch.inference_mode():
            return self.tensors(texts).float().cpu().numpy()
