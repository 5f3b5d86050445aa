"""The students block of a run: one entry per student pool."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from pgkd.basics.models import model_problem
from pgkd.basics.settings import Settings

EMBEDDED_ENCODERS = ("embedded:all-MiniLM-L6-v2",)
EMBEDDED_ENCODER = EMBEDDED_ENCODERS[0]
StudentKind = Literal["encoder", "ngram", "graph"]


class StudentConfig(Settings):
    name: str = "minilm"
    kind: StudentKind = "encoder"
    model: str = EMBEDDED_ENCODER
    finetune: bool = False  # False: frozen encoder + trained head (fast on CPU)
    pooling: Literal["mean", "cls"] = "mean"
    max_length: int = Field(64, ge=8)
    min_new_examples: int = Field(16, ge=1)
    epochs: int = Field(150, ge=1, description="per version at most; early stopping on the steering texts "
                        "usually ends it sooner (60 left banking77 students short: test macro-F1 0.880 vs 0.889, "
                        "bench/value.py)")
    lr: float = Field(1e-2, gt=0)
    finetune_lr: float = Field(3e-5, gt=0)
    feature_scale: float = Field(10.0, gt=0, description="scales unit-norm embeddings before the head")
    batch_size: int = Field(64, ge=1)
    temperature: float = Field(2.0, gt=0)
    # KD weight. Unset, the teacher audit sets it from the teacher's calibration error (teacher/audit.py kd_alpha):
    # 0 where soft labels are off. Soft labels of the embedded 270M teacher raised the very confusions they
    # describe (banking77, 100 teacher examples: validation macro-F1 0.838 with alpha 0, 0.798 with 0.5).
    alpha: float | None = Field(None, ge=0, le=1, description="KD weight of the soft labels; null: from the "
                                "teacher audit's calibration error (0 without an audit)")
    label_filter: float = Field(0.1, ge=0, lt=1, description="leave a teacher example out of a version when the "
                                "previous version gives its label less than this probability (a noisy teacher's "
                                "wrong labels); 0 keeps all")
    class_weighting: Literal["none", "balanced"] = Field("none", description="balanced: every class weighs the same "
                                                         "in the loss however many examples the teacher wrote of it")
    early_stop_every: int = Field(5, ge=1, description="epochs between validation-loss checks inside training")
    early_stop_patience: int = Field(3, ge=1, description="checks without a lower validation loss before stopping")
    seed: int = 0
    threads: int = Field(1, ge=1)
    gpus: float = Field(0, ge=0)
    replicas: int = Field(1, ge=1)
    replay: int | None = Field(4096, ge=0, description="old examples replayed per version at most (a random "
                               "sample; the new ones always train): a version costs the new data plus this; null: all")
    pool_queries: int = Field(32, ge=0, description="each pool scoring round with this student's checkpoint offers "
                              "the teachers this many of the pool texts it is least sure of (pool_strategy); 0: none")
    pool_strategy: Literal["margin", "entropy", "diverse_margin", "random"] = Field(
        "margin", description="which pool texts to offer: smallest top-2 margin, highest entropy, the smallest "
        "margins spread over k-means clusters of the student's probabilities, or at random (a control)")
    pool_balanced: bool = Field(False, description="offer pool texts spread over the classes the student "
                                "predicts for them, in turn (for pools where a few classes dominate)")
    pool_scorers: int = Field(1, ge=1, description="Ray Data actors that score the pool with this student's "
                              "best checkpoint (each loads it once; CPUs and GPUs as this student's threads and gpus)")
    # kind: ngram (feature_scale also scales its unit-norm n-gram vectors)
    ngram_buckets: int = Field(2**18, ge=16, le=2**24, description="hash buckets for n-gram features")
    ngram_word_n: int = Field(2, ge=1, le=4, description="word n-grams up to this order (2: uni+bigrams)")
    ngram_char_n: int = Field(0, ge=0, le=6, description="char n-grams of this size inside words; 0: none")
    # kind: graph (one word co-occurrence graph per text; the vocabulary is frozen after the first fit)
    graph_layer: Literal["gcn", "gin", "gat"] = "gcn"
    graph_dim: int = Field(64, ge=4, description="word embedding and hidden size")
    graph_window: int = Field(3, ge=2, description="words co-occur (share an edge) within this sliding window")
    graph_vocab_size: int = Field(30000, ge=1, description="most frequent words kept; the rest map to <unk>")
    graph_min_count: int = Field(1, ge=1, description="a word needs this many occurrences to enter the vocabulary")
    graph_word_dropout: float = Field(0.1, ge=0, lt=1, description="train-time chance a word is read as <unk>, "
                                      "so <unk> (unseen words at inference) has a trained embedding")

    @field_validator("name")
    @classmethod
    def _name_is_simple(cls, value: str) -> str:
        if not value.replace("-", "").replace("_", "").isalnum():
            raise ValueError("use letters, digits, - and _ only (it names a Ray actor)")
        return value

    def path_problems(self) -> list[tuple[tuple, str]]:
        problem = model_problem(self.model, EMBEDDED_ENCODERS) if self.kind == "encoder" else None
        return [(("model",), problem)] if problem else []
