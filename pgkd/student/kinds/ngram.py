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
from typing import Literal

import torch
from pydantic import Field

from pgkd.bus.messages import Example
from pgkd.student.base import STUDENT_KINDS, StudentSettings
from pgkd.student.head_training import train_head
from pgkd.student.net_student import NetStudent
from pgkd.student.saved import inside, load_weights, read_meta, write_meta

WORD = re.compile(r"\w+")


class NgramSettings(StudentSettings):
    kind: Literal["ngram"] = "ngram"
    buckets: int = Field(2**18, ge=16, le=2**24, description="hash buckets for n-gram features")
    word_n: int = Field(2, ge=1, le=4, description="word n-grams up to this order (2: uni+bigrams)")
    char_n: int = Field(0, ge=0, le=6, description="char n-grams of this size inside words; 0: none")
    feature_scale: float = Field(10.0, gt=0, description="scales the unit-norm n-gram vectors before the layer")


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


@STUDENT_KINDS.register("ngram", NgramSettings)
class NgramStudent(NetStudent):
    preprocessing = HashedNgrams

    def __init__(self, labels: list[str], settings: NgramSettings, device):
        super().__init__(labels, settings, device)
        self.features = HashedNgrams(settings.buckets, settings.word_n, settings.char_n)
        self.net = NgramNet(settings.buckets, len(labels), settings.feature_scale).to(device)

    def fit(self, examples: list[Example], settings: NgramSettings, on_epoch=None) -> float:
        rows = [self.features.encode(e.text) for e in examples]  # hashed once per fit, not per epoch
        optimizers = [torch.optim.SparseAdam([self.net.bag.weight], lr=settings.lr),
                      torch.optim.Adam([self.net.bias], lr=settings.lr)]
        return train_head(self, examples, settings, lambda picked, _: self.net(**self._batch(rows, picked)),
                          optimizers, on_epoch, [self.net])

    def _batch(self, rows: list, picked: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.on_device(HashedNgrams.collate([rows[i] for i in picked]))

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
    def load(cls, folder: str | Path, device):
        folder = Path(folder)
        meta = read_meta(folder)
        settings = NgramSettings(buckets=meta["buckets"], word_n=meta["word_n"], char_n=meta["char_n"],
                                 feature_scale=meta["feature_scale"])
        student = cls(meta["labels"], settings, device)
        state = load_weights(inside(folder, "ngram.pt"), device)
        with torch.no_grad():
            student.net.bag.weight[state["rows"]] = state["values"]
            student.net.bias.copy_(state["bias"])
        return student
