"""Text-graph student (after TextING rather than transductive TextGCN): every text becomes its own small graph,
so new texts are classified without rebuilding anything. Nodes are the text's distinct words (a vocabulary built at
the first fit and frozen; unknown words read as <unk>), edges join words that co-occur within a sliding window,
weighted by how often. A learned word embedding, two GCN/GIN/GAT layers, mean+max pooling and a linear head.

torch_geometric is imported only where it is used: importing it costs seconds and ~250 MB, and listing the student
kinds (any config load) imports this module.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from pgkd.bus.messages import Example
from pgkd.student.base import STUDENT_KINDS, StudentSettings
from pgkd.student.head_training import adamw, train_head
from pgkd.student.kinds.ngram import words
from pgkd.student.net_student import NetStudent
from pgkd.student.saved import inside, load_weights, read_meta, write_meta

UNK = 0
VOCAB_FILE = "vocab.json"


class GraphSettings(StudentSettings):
    """One word co-occurrence graph per text; the vocabulary is frozen after the first fit."""

    kind: Literal["graph"] = "graph"
    layer: Literal["gcn", "gin", "gat"] = "gcn"
    dim: int = Field(64, ge=4, description="word embedding and hidden size")
    window: int = Field(3, ge=2, description="words co-occur (share an edge) within this sliding window")
    vocab_size: int = Field(30000, ge=1, description="most frequent words kept; the rest map to <unk>")
    min_count: int = Field(1, ge=1, description="a word needs this many occurrences to enter the vocabulary")
    word_dropout: float = Field(0.1, ge=0, lt=1, description="train-time chance a word is read as <unk>, "
                                "so <unk> (unseen words at inference) has a trained embedding")


class Vocabulary:
    def __init__(self, known: list[str]):
        self.words = ["<unk>", *known]
        self.ids = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def build(cls, texts: list[str], max_size: int, min_count: int) -> "Vocabulary":
        counts = Counter(w for text in texts for w in words(text))
        ranked = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        return cls(ranked[:max_size])

    def __len__(self) -> int:
        return len(self.words)

    def id(self, word: str) -> int:
        return self.ids.get(word, UNK)


class TextGraphs:
    """Texts -> one batched graph (x: word ids, edges, weights, node->graph index, nodes per graph). Also the
    preprocessing an exported model ships with."""

    input_names = ("x", "edge_index", "edge_weight", "batch", "counts")
    dynamic_axes = {"x": {0: "nodes"}, "edge_index": {1: "edges"}, "edge_weight": {0: "edges"},
                    "batch": {0: "nodes"}, "counts": {0: "graphs"}}

    def __init__(self, vocab: Vocabulary, window: int):
        self.vocab, self.window = vocab, window

    def graph(self, text: str):
        from torch_geometric.data import Data

        node_of: dict[str, int] = {}
        sequence = [node_of.setdefault(w, len(node_of)) for w in words(text)]
        if not sequence:  # an empty text still gets a graph: one <unk> node
            node_of, sequence = {"": 0}, [0]
        pairs = Counter()
        for i, a in enumerate(sequence):
            for b in sequence[i + 1:i + self.window]:
                if a != b:
                    pairs[(a, b)] += 1
                    pairs[(b, a)] += 1
        return Data(x=torch.tensor([self.vocab.id(w) for w in node_of], dtype=torch.long),
                    edge_index=torch.tensor(list(pairs), dtype=torch.long).reshape(-1, 2).t().contiguous(),
                    edge_weight=torch.tensor(list(pairs.values()), dtype=torch.float32), num_nodes=len(node_of))

    @staticmethod
    def collate(graphs: list) -> dict[str, torch.Tensor]:
        from torch_geometric.data import Batch

        batch = Batch.from_data_list(graphs)
        counts = torch.tensor([g.num_nodes for g in graphs], dtype=torch.long)
        return {"x": batch.x, "edge_index": batch.edge_index, "edge_weight": batch.edge_weight,
                "batch": batch.batch, "counts": counts}

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self.collate([self.graph(t) for t in texts])

    def save(self, folder: Path) -> dict:
        (folder / VOCAB_FILE).write_text(json.dumps(self.vocab.words[1:]))
        return {"window": self.window, "vocab_file": VOCAB_FILE}

    @classmethod
    def load(cls, folder: Path, meta: dict) -> "TextGraphs":
        return cls(Vocabulary(json.loads(inside(folder, meta["vocab_file"], "vocab_file").read_text())), meta["window"])


def make_conv(layer: str, dim: int) -> torch.nn.Module:
    from torch_geometric.nn import GATConv, GCNConv, GINConv

    if layer == "gcn":
        return GCNConv(dim, dim)
    if layer == "gin":
        return GINConv(torch.nn.Sequential(torch.nn.Linear(dim, dim), torch.nn.ReLU(), torch.nn.Linear(dim, dim)))
    if layer == "gat":
        return GATConv(dim, dim, heads=4, concat=False)
    raise ValueError(f"unknown graph layer '{layer}' (known: gcn, gin, gat)")


def pool(h: torch.Tensor, batch: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Mean and max per graph, in plain scatter ops: the graph count comes from counts.size(0), so tracing and ONNX
    keep it dynamic (PyG's global_max_pool breaks the ONNX exporter). h >= 0 after ReLU, so 0 is a safe max start."""
    index = batch.unsqueeze(1).expand_as(h)
    zeros = h.new_zeros(counts.size(0), h.size(1))
    mean = zeros.scatter_add(0, index, h) / counts.unsqueeze(1).to(h.dtype)
    top = zeros.scatter_reduce(0, index, h, reduce="amax", include_self=True)
    return torch.cat([mean, top], dim=1)


class GraphNet(torch.nn.Module):
    """The numeric part (what export ships): batched text graphs -> logits."""

    def __init__(self, vocab_size: int, dim: int, classes: int, layer: str):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab_size, dim)
        self.convs = torch.nn.ModuleList([make_conv(layer, dim) for _ in range(2)])
        self.weighted = layer == "gcn"  # GIN and GAT take no scalar edge weights
        self.head = torch.nn.Linear(2 * dim, classes)

    def forward(self, x, edge_index, edge_weight, batch, counts) -> torch.Tensor:
        h = self.embed(x)
        for conv in self.convs:
            h = F.relu(conv(h, edge_index, edge_weight) if self.weighted else conv(h, edge_index))
        return self.head(pool(h, batch, counts))


@STUDENT_KINDS.register("graph", GraphSettings)
class GraphStudent(NetStudent):
    preprocessing = TextGraphs

    def __init__(self, labels: list[str], settings: GraphSettings, device):
        super().__init__(labels, settings, device)
        self.features, self.net = None, None  # known at the first fit, which fixes the vocabulary

    def _freeze(self, graphs: TextGraphs, seed: int) -> None:
        """Fix the vocabulary (hence the embedding size) and create the network, reproducibly."""
        self.features = graphs
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = GraphNet(len(graphs.vocab), self.settings.dim, len(self.labels), self.settings.layer)
            self.net = self.net.to(self.device)

    def fit(self, examples: list[Example], settings: GraphSettings, on_epoch=None) -> float:
        if self.features is None:  # first fit: this data defines the vocabulary for good
            vocab = Vocabulary.build([e.text for e in examples], settings.vocab_size, settings.min_count)
            self._freeze(TextGraphs(vocab, self.settings.window), settings.seed)
        graphs = [self.features.graph(e.text) for e in examples]  # built once per fit, batched per step

        def logits(picked: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
            inputs = self.on_device(TextGraphs.collate([graphs[i] for i in picked]))
            drop = torch.rand(inputs["x"].shape, generator=generator).to(self.device) < settings.word_dropout
            inputs["x"] = inputs["x"].masked_fill(drop, UNK)
            return self.net(**inputs)

        return train_head(self, examples, settings, logits, adamw(self.net.parameters(), settings.lr), on_epoch,
                          [self.net])

    def predict_proba(self, texts: list[str], batch_size: int = 256) -> np.ndarray:
        self._check_fitted()
        return super().predict_proba(texts, batch_size)

    def _check_fitted(self) -> None:
        if self.net is None:
            raise RuntimeError("the graph student has no vocabulary yet: fit it first")

    def save(self, folder: str | Path) -> Path:
        self._check_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(self.net.state_dict(), folder / "graph.pt")
        meta = {"kind": self.kind, "labels": self.labels, "layer": self.settings.layer, "dim": self.settings.dim,
                **self.features.save(folder)}
        write_meta(folder, meta)
        return folder

    @classmethod
    def load(cls, folder: str | Path, device):
        folder = Path(folder)
        meta = read_meta(folder)
        settings = GraphSettings(layer=meta["layer"], dim=meta["dim"], window=meta["window"])
        student = cls(meta["labels"], settings, device)
        student._freeze(TextGraphs.load(folder, meta), settings.seed)
        student.net.load_state_dict(load_weights(inside(folder, "graph.pt"), device))
        return student
