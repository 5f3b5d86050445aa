"""Hashed n-gram student: word uni+bigrams (optionally char n-grams) hashed into a fixed number of buckets, and a
linear layer over them (an EmbeddingBag summing L2-normalised term counts). The cheapest baseline: a few thousand
examples train in seconds on CPU, and the model is one sparse matrix.
"""
from __future__ import annotations

import math
import re
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from pgkd.bus.messages import Example
from pgkd.student.inference import batched_probabilities, top_labels
from pgkd.student.kd_loss import class_weights, kd_loss, soft_matrix
from pgkd.student.saved import read_meta, write_meta

WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def bucket(gram: str, buckets: int) -> int:
    # crc32, not hash(): Python salts str hashes per process, and a saved model must see the same ids everywhere
    return zlib.crc32(gram.encode("utf-8")) % buckets


class HashedNgrams:
    """Texts -> EmbeddingBag inputs (ids, offsets, weights). Also the preprocessing an exported model ships with."""

    input_names = ("ids", "offsets", "weights")
    dynamic_axes = {"ids": {0: "features"}, "offsets": {0: "batch"}, "weights": {0: "features"}}

    def __init__(self, buckets: int, word_n: int = 2, char_n: int = 0):
        self.buckets, self.word_n, self.char_n = buckets, word_n, char_n

    def grams(self, text: str) -> list[str]:
        tokens = words(text)
        grams = [f"w{n}:" + " ".join(tokens[i:i + n]) for n in range(1, self.word_n + 1)
                 for i in range(len(tokens) - n + 1)]
        if self.char_n:  # fastText-style: n-grams inside "<word>" help with typos and unseen inflections
            grams += [f"c:{p[i:i + self.char_n]}" for p in (f"<{t}>" for t in tokens)
                      for i in range(len(p) - self.char_n + 1)]
        return grams

    def encode(self, text: str) -> tuple[torch.Tensor, torch.Tensor]:
        """One text -> (bucket ids, term counts scaled to unit L2 norm). An empty text gives an empty bag."""
        counts = Counter(bucket(g, self.buckets) for g in self.grams(text))
        norm = math.sqrt(sum(c * c for c in counts.values())) or 1.0
        return (torch.tensor(list(counts), dtype=torch.long),
                torch.tensor([c / norm for c in counts.values()], dtype=torch.float32))

    @staticmethod
    def collate(rows: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
        lengths = torch.tensor([0] + [len(ids) for ids, _ in rows[:-1]], dtype=torch.long)
        return {"ids": torch.cat([ids for ids, _ in rows]), "offsets": lengths.cumsum(0),
                "weights": torch.cat([w for _, w in rows])}

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self.collate([self.encode(t) for t in texts])

    def save(self, folder: Path) -> dict:
        return {"buckets": self.buckets, "word_n": self.word_n, "char_n": self.char_n, "hash": "crc32"}

    @classmethod
    def load(cls, folder: Path, meta: dict) -> "HashedNgrams":
        return cls(meta["buckets"], meta["word_n"], meta["char_n"])


class NgramNet(torch.nn.Module):
    """The numeric part (what export ships): logits = scale * sum(weight_i * W[id_i]) + b."""

    def __init__(self, buckets: int, classes: int, scale: float):
        super().__init__()
        # sparse gradients: a batch touches a few hundred of the buckets, SparseAdam updates only those rows
        self.bag = torch.nn.EmbeddingBag(buckets, classes, mode="sum", sparse=True)
        torch.nn.init.zeros_(self.bag.weight)  # a linear model needs no random start, and untouched rows stay 0
        self.bias = torch.nn.Parameter(torch.zeros(classes))
        self.scale = scale

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return self.bag(ids, offsets, per_sample_weights=weights * self.scale) + self.bias


class NgramStudent:
    kind = "ngram"

    def __init__(self, labels: list[str], features: HashedNgrams, device: str, feature_scale: float):
        self.labels, self.features, self.device = labels, features, device
        self.net = NgramNet(features.buckets, len(labels), feature_scale).to(device)

    @classmethod
    def from_config(cls, labels, config, device):
        features = HashedNgrams(config.ngram_buckets, config.ngram_word_n, config.ngram_char_n)
        return cls(labels, features, device, config.feature_scale)

    def _batch(self, rows) -> dict[str, torch.Tensor]:
        return {k: v.to(self.device) for k, v in HashedNgrams.collate(rows).items()}

    def fit(self, examples: list[Example], config, on_epoch=None) -> float:
        """Train on all examples (warm start from the current weights). Returns the last epoch's mean loss."""
        index = {label: i for i, label in enumerate(self.labels)}
        hard = torch.tensor([index[e.label] for e in examples], device=self.device)
        soft, has_soft = soft_matrix([e.soft_label for e in examples], index)
        soft, has_soft = soft.to(self.device), has_soft.to(self.device)
        weights = class_weights(hard, len(self.labels), config.class_weighting)
        rows = [self.features.encode(e.text) for e in examples]  # hashed once per fit, not per epoch
        optimizers = [torch.optim.SparseAdam([self.net.bag.weight], lr=config.lr),
                      torch.optim.Adam([self.net.bias], lr=config.lr)]
        generator = torch.Generator().manual_seed(config.seed)
        self.net.train()
        last = float("nan")
        for epoch in range(config.epochs):
            order, total = torch.randperm(len(rows), generator=generator), 0.0
            for start in range(0, len(rows), config.batch_size):
                picked = order[start:start + config.batch_size]
                logits = self.net(**self._batch([rows[i] for i in picked]))
                take = picked.to(self.device)
                loss = kd_loss(logits, hard[take], soft[take], has_soft[take], config.temperature, config.alpha,
                               None if weights is None else weights[take])
                for optimizer in optimizers:
                    optimizer.zero_grad()
                loss.backward()
                for optimizer in optimizers:
                    optimizer.step()
                total += loss.item() * len(picked)
            last = total / len(rows)
            if on_epoch and on_epoch(epoch, last):  # the trainer's early stopping said enough
                break
        return last

    def predict_proba(self, texts: list[str], batch_size: int = 256) -> np.ndarray:
        return batched_probabilities(self.net, lambda chunk: self._batch([self.features.encode(t) for t in chunk]),
                                     texts, batch_size, len(self.labels))

    def predict(self, texts: list[str]) -> list[tuple[str, float]]:
        return top_labels(self.labels, self.predict_proba(texts))

    def export_parts(self) -> tuple[torch.nn.Module, HashedNgrams]:
        return self.net, self.features

    # ---- persistence: only the rows training touched (the rest are still 0), so a checkpoint is kilobytes
    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        weight = self.net.bag.weight.detach().cpu()
        rows = weight.abs().sum(1).nonzero().squeeze(1)
        torch.save({"rows": rows, "values": weight[rows], "bias": self.net.bias.detach().cpu()}, folder / "ngram.pt")
        meta = {"kind": self.kind, "labels": self.labels, "feature_scale": self.net.scale,
                **self.features.save(folder)}
        write_meta(folder, meta)
        return folder

    @classmethod
    def load(cls, folder: str | Path, device: str):
        folder = Path(folder)
        meta = read_meta(folder)
        student = cls(meta["labels"], HashedNgrams.load(folder, meta), device, meta["feature_scale"])
        state = torch.load(folder / "ngram.pt", map_location=device)
        with torch.no_grad():
            student.net.bag.weight[state["rows"]] = state["values"]
            student.net.bias.copy_(state["bias"])
        return student
