"""The teacher block of a run."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from pgkd.basics.models import model_problem
from pgkd.basics.settings import Settings, check_url, relative_to

EMBEDDED_TEACHERS = ("embedded:gemma3-270m",)
EMBEDDED_TEACHER = EMBEDDED_TEACHERS[0]
SIMULATED = "simulated"  # the teacher backend of benchmarks: a reservoir of real labelled texts, known noise
BackendName = Literal["vllm", "openai", SIMULATED]


class HttpBackendConfig(Settings):
    base_url: str = Field("http://127.0.0.1:8000/v1", description="OpenAI-compatible API root, e.g. `vllm serve`")
    served_model: str | None = Field(None, description="model name at the endpoint; null: teacher.model")
    api_key_env: str | None = Field("OPENAI_API_KEY", description="environment variable holding the key (never "
                                    "put the key itself in a config)")
    timeout_s: float = Field(120, gt=0)
    max_retries: int = Field(4, ge=0, description="retries of one request, on retryable errors only")
    concurrency: int = Field(8, ge=1, description="requests in flight at once per replica")
    max_consecutive_failures: int = Field(16, ge=1, description="lost requests in a row (each after its retries) "
                                          "before the replica gives up and says the endpoint is gone")

    @field_validator("base_url")
    @classmethod
    def _is_http_url(cls, value: str) -> str:
        return check_url(value, ("http", "https"), "http(s)://host:port/v1")


class SimulatedTeacherConfig(Settings):
    """A measuring instrument, never a teacher: it answers from the labelled train texts the seeds left over."""

    error_rate: float = Field(0.0, ge=0, le=1, description="share of its labels that are wrong: flipped to the "
                              "contrast class when the plan names one, else to a random other class")
    seconds_per_example: float = Field(0.0, ge=0, description="sleep per example written, to study the loop at "
                                       "the pace of a real model (e.g. 1 s for an 8B model on a GPU)")
    embedding: str = Field("embedded:all-MiniLM-L6-v2", description="encoder whose cosine picks the texts closest to a "
                           "contrast class or a hard negative")
    allow_repeats: bool = Field(False, description="reuse texts once a class's reservoir is spent (only for "
                                "load tests; every repeat is marked)")


class TeacherConfig(Settings):
    backend: BackendName = Field("vllm", description="vllm | openai | simulated (benchmarks only: a teacher "
                                 "of known accuracy drawn from the unseeded train texts)")
    model: str = EMBEDDED_TEACHER
    replicas: int = Field(1, ge=0)
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="engine dtype; auto: on a CPU bfloat16 where it has avx512_bf16 or AMX, else float32 "
        "(measured fastest, bench/README.md); on a GPU vLLM's choice. A 16-bit type on a CPU without AVX-512 is "
        "refused at start")
    preload_libraries: bool = Field(True, description="put tcmalloc and Intel OpenMP (where installed) in the "
                                    "engine's LD_PRELOAD, as vLLM's CPU guide asks")
    max_model_len: int = Field(1024, ge=128)
    kv_cache_gib: float = Field(2, gt=0)
    enforce_eager: bool = True  # on CPU compilation costs minutes and gains nothing
    classes_per_batch: int = Field(4, ge=1)
    examples_per_class: int = Field(8, ge=1)
    demos_per_class: int = Field(4, ge=1)
    temperature: float = Field(0.9, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    max_new_tokens: int = Field(40, ge=4)
    min_words: int = Field(3, ge=1)
    max_words: int = Field(60, ge=1)
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
    label_check: Literal["drop", "relabel", "off"] = "drop"
    soft_label_candidates: int = Field(4, ge=2)
    label_scoring: Literal["full", "distinct"] = Field("full", description="in-process engine: full scores every "
                                                       "token of each candidate label; distinct stops at the first "
                                                       "token that tells the candidates apart (fewer decode steps)")
    near_duplicate_threshold: float = Field(0.8, gt=0, le=1, description="word-bigram Jaccard; 1 turns it off")
    price_per_hour: float = Field(0.0, ge=0, description="USD per replica-hour of busy time, for cost accounting")
    price_per_million_prompt_tokens: float = Field(0.0, ge=0)
    price_per_million_completion_tokens: float = Field(0.0, ge=0)
    min_confidence: float | None = Field(None, ge=0, le=1, description="drop a teacher label whose own probability "
                                         "is lower; null: the audit sets it (target_precision), 0.8 without one")
    audit: bool = Field(True, description="an LLM teacher first labels a stratified sample of steering validation "
                        "texts; the run's thresholds and policy follow from it (teacher/audit.py)")
    audit_per_class: int | None = Field(None, ge=1, description="audit texts per class, which the steering part "
                                        "must hold; null: 5, or as many as its smallest class holds")
    audit_max: int = Field(400, ge=1, description="audit texts at most")
    target_precision: float = Field(0.9, gt=0, le=1, description="min_confidence from the audit: the lowest "
                                    "confidence whose labels were right this often")
    per_label_thresholds: bool = Field(True, description="from the audit, also a min_confidence per label the "
                                       "teacher gives (seen at least 5 times), for a teacher that is surer of some "
                                       "labels than it should be")
    protect_student: bool = Field(True, description="pool labelling and soft labels off when the audit finds the "
                                  "teacher labelling worse than the seeds-only student")
    max_soft_label_ece: float = Field(0.15, ge=0, le=1, description="soft labels only from a teacher whose audit "
                                      "expected calibration error is at most this")
    max_batches: int | None = Field(None, ge=1)
    max_ahead_batches: int | None = Field(64, ge=1, description="the teacher waits while the slowest student has "
                                          "more than this many batches not yet trained on; null: never waits")
    threads: int = Field(1, ge=1)
    gpus_per_replica: float = Field(0, ge=0)
    seed: int = 0
    # modes, each an ablation switch (PGKD's table rows): what a batch is made of
    generate: bool = Field(True, description="write new examples for the planned classes")
    augmentation: bool = Field(False, description="paraphrase seeds of the planned classes")
    augment_per_class: int = Field(2, ge=1, description="paraphrases per planned class and batch")
    pool_labelling: bool = Field(False, description="label the pool texts the students are least sure of, first")
    pool_per_batch: int = Field(16, ge=1, description="pool texts labelled per batch at most")
    templates_dir: Path | None = Field(None, description="folder of prompt templates (generate.txt, "
                                       "generate_json.txt, classify.txt, paraphrase.txt), one set per format in "
                                       "completion/ and chat/; a file missing there comes from teacher/templates")
    prompt_format: Literal["auto", "completion", "chat"] = Field(
        "auto", description="completion: text the model continues; chat: a user message through the model's chat "
        "template (in-process) or /v1/chat/completions (openai); auto: chat for an instruct model that has a chat "
        "template (an endpoint: one that chats and is named instruct, or has no /completions), else completion")
    chat_template: Path | None = Field(None, description="a Jinja chat template file for a model without one; "
                                       "null: the model's own (pgkd ships Gemma's for the embedded model)")
    structured: Literal["auto", "on", "off"] = Field(
        "auto", description="on: a generation request asks for examples_per_request texts as JSON held to a "
        "schema (vLLM guided decoding in-process, response_format over HTTP); off: one text per request, parsed "
        "from plain text; auto: on in the chat format. A backend without schema support falls back to off")
    examples_per_request: int = Field(8, ge=1, description="texts asked of one structured generation request")
    http: HttpBackendConfig = Field(default_factory=lambda: HttpBackendConfig(),
                                    description="backend 'openai': any OpenAI-compatible endpoint")
    simulated: SimulatedTeacherConfig = Field(default_factory=lambda: SimulatedTeacherConfig(),
                                              description="backend 'simulated': benchmarks only")

    @model_validator(mode="after")
    def _word_range(self) -> "TeacherConfig":
        if self.min_words > self.max_words:
            raise ValueError(f"min_words ({self.min_words}) is above max_words ({self.max_words}): no text could pass")
        return self

    def resolve_paths(self, base: Path) -> None:
        self.templates_dir = relative_to(base, self.templates_dir, want_dir=True)
        self.chat_template = relative_to(base, self.chat_template, want_dir=False)

    def path_problems(self) -> list[tuple[tuple, str]]:
        problems = []
        if self.templates_dir is not None and not self.templates_dir.is_dir():
            problems.append((("templates_dir",), f"no folder at {self.templates_dir}"))
        if self.chat_template is not None and not self.chat_template.is_file():
            problems.append((("chat_template",), f"no file at {self.chat_template}"))
        if self.backend == "vllm":
            problem = model_problem(self.model, EMBEDDED_TEACHERS, gguf=True)
            if problem:
                problems.append((("model",), problem))
        return problems
