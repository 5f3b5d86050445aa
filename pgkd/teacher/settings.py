"""What the teacher blocks share. `TeacherSettings`: every backend, the simulated teacher included (replicas, the
batch plan and its steering, the budget, what a label must reach, prices). `LLMTeacherSettings`: the backends
that speak to a model besides (prompts, sampling, filters, the audit). Each backend's own block, its fields only,
lives beside its class in teacher/backends/; teacher/config.py makes the tagged union of them."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from pgkd.basics.settings import Settings, relative_to
from pgkd.teacher.model_store import EMBEDDED_TEACHERS


class TeacherSettings(Settings):
    backend: str  # each block narrows it to Literal["<its name>"], the union's tag
    replicas: int = Field(1, ge=0)
    classes_per_batch: int = Field(4, ge=1)
    examples_per_class: int = Field(8, ge=1)
    use_report: bool = True
    hard_negatives: bool = True
    steer_power: float = Field(2.0, ge=0, description="steered, classes are drawn with weight (1 - F1)^power: "
                               "higher spends more of the budget on weak classes; 0 spreads it evenly")
    steer_share: float = Field(0.5, ge=0, le=1, description="steered, the share of a batch's classes drawn by "
                               "weakness; the rest are visited round-robin, so no class goes without examples")
    steer_floor: float = Field(0.02, ge=0, description="added to every class's weakness weight: a class that "
                               "scores perfectly on a few steering texts still gets drawn now and then")
    steer_by: Literal["f1", "confidence"] = Field("f1", description="the weakness a class is drawn by: 1 - its F1 "
                                                  "on the steering texts, or 1 - the mean probability the student "
                                                  "gives their true label (less noisy on a few texts)")
    boundary_share: float = Field(0.0, ge=0, le=1, description="steered, the share of a class's examples asked as "
                                  "boundary cases (confusions named, hard negatives quoted); the rest are typical")
    max_hard_negatives: int = Field(3, ge=0)
    price_per_hour: float = Field(0.0, ge=0, description="USD per replica-hour of busy time, for cost accounting")
    price_per_million_prompt_tokens: float = Field(0.0, ge=0)
    price_per_million_completion_tokens: float = Field(0.0, ge=0)
    min_confidence: float | None = Field(None, ge=0, le=1, description="drop a teacher label whose own probability "
                                         "is lower; null: the audit sets it (target_precision), 0.8 without one")
    max_batches: int | None = Field(None, ge=1)
    max_ahead_batches: int | None = Field(64, ge=1, description="the teacher waits while the slowest student has "
                                          "more than this many batches not yet trained on; null: never waits")
    threads: int = Field(1, ge=1)
    gpus_per_replica: float = Field(0, ge=0)
    seed: int = 0
    # modes, each an ablation switch (PGKD's table rows): what a batch is made of
    generate: bool = Field(True, description="write new examples for the planned classes")
    pool_labelling: bool = Field(False, description="label the pool texts the students are least sure of, first")
    pool_per_batch: int = Field(16, ge=1, description="pool texts labelled per batch at most")

    @property
    def audited(self) -> bool:
        """Whether the run audits this teacher before its first batch (teacher/audit.py); only an LLM can be."""
        return False

    def in_process_dtype(self) -> str | None:
        """The dtype setting of a model engine the replica runs in its own process ('auto' until placement picks
        one for the node); None: it runs none (an endpoint, the simulated teacher)."""
        return None

    def with_dtype(self, dtype: str) -> "TeacherSettings":
        """This block with the node's engine dtype in place of 'auto' (no engine: unchanged)."""
        return self

    def preloads_libraries(self) -> bool:
        """Whether the replica's process starts with tcmalloc and Intel OpenMP preloaded, for its engine."""
        return False


class LLMTeacherSettings(TeacherSettings):
    """The backends that prompt a model (in-process or at an endpoint) and label with its probabilities."""

    model: str = EMBEDDED_TEACHERS[0]
    demos_per_class: int = Field(4, ge=1)
    temperature: float = Field(0.9, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    max_new_tokens: int = Field(40, ge=4)
    min_words: int = Field(3, ge=1)
    max_words: int = Field(60, ge=1)
    label_check: Literal["drop", "relabel", "off"] = "drop"
    soft_label_candidates: int = Field(4, ge=2)
    near_duplicate_threshold: float = Field(0.8, gt=0, le=1, description="word-bigram Jaccard; 1 turns it off")
    audit: bool = Field(True, description="an LLM teacher first labels a stratified sample of steering validation "
                        "texts; the run's thresholds and policy follow from it (teacher/audit.py)")
    audit_per_class: int | None = Field(None, ge=1, description="audit texts per class, which the steering part "
                                        "must hold; null: 5, or as many as its smallest class holds")
    audit_max: int = Field(400, ge=1, description="audit texts at most")
    audit_budget_s: float | None = Field(None, gt=0, description="seconds the audit may cost, whatever the label "
                                         "count: it labels the texts that fit (each label in turn) and says how "
                                         "many; null: 60, or 5% of loop.time_budget_s if that is more")
    target_precision: float = Field(0.9, gt=0, le=1, description="min_confidence from the audit: the lowest "
                                    "confidence whose labels were right this often")
    per_label_thresholds: bool = Field(True, description="from the audit, also a min_confidence per label the "
                                       "teacher gives (seen at least 5 times), for a teacher that is surer of some "
                                       "labels than it should be")
    protect_student: bool = Field(True, description="pool labelling and soft labels off when the audit finds the "
                                  "teacher labelling worse than the seeds-only student")
    max_soft_label_ece: float = Field(0.15, ge=0, le=1, description="soft labels only from a teacher whose audit "
                                      "expected calibration error is at most this")
    augmentation: bool = Field(False, description="paraphrase seeds of the planned classes")
    augment_per_class: int = Field(2, ge=1, description="paraphrases per planned class and batch")
    templates_dir: Path | None = Field(None, description="folder of prompt templates (generate.txt, "
                                       "generate_json.txt, classify.txt, paraphrase.txt), one set per format in "
                                       "completion/ and chat/; a file missing there comes from teacher/templates")
    prompt_format: Literal["auto", "completion", "chat"] = Field(
        "auto", description="completion: text the model continues; chat: a user message through the model's chat "
        "template (in-process) or /v1/chat/completions (openai); auto: chat for an instruct model that has a chat "
        "template (an endpoint: one that chats and is named instruct, or has no /completions), else completion")
    structured: Literal["auto", "on", "off"] = Field(
        "auto", description="on: a generation request asks for examples_per_request texts as JSON held to a "
        "schema (vLLM guided decoding in-process, response_format over HTTP); off: one text per request, parsed "
        "from plain text; auto: on in the chat format. A backend without schema support falls back to off")
    examples_per_request: int = Field(8, ge=1, description="texts asked of one structured generation request")

    @model_validator(mode="after")
    def _word_range(self) -> "LLMTeacherSettings":
        if self.min_words > self.max_words:
            raise ValueError(f"min_words ({self.min_words}) is above max_words ({self.max_words}): no text could pass")
        return self

    @property
    def audited(self) -> bool:
        return self.audit

    def resolve_paths(self, base: Path) -> None:
        self.templates_dir = relative_to(base, self.templates_dir, want_dir=True)

    def path_problems(self) -> list[tuple[tuple, str]]:
        if self.templates_dir is not None and not self.templates_dir.is_dir():
            return [(("templates_dir",), f"no folder at {self.templates_dir}")]
        return []
