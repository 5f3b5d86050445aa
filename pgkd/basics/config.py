"""The one config tree of a run, loaded from YAML in ray_configs/ with --set overrides."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pgkd.basics.errors import InputError
from pgkd.basics.registries import BACKENDS, EMBEDDED_ENCODERS, EMBEDDED_TEACHERS, TRAINABLE_KINDS
from pgkd.basics.yaml_lines import DuplicateKey, TooLarge, load_with_lines, nearest_line

EMBEDDED_TEACHER = EMBEDDED_TEACHERS[0]
EMBEDDED_ENCODER = EMBEDDED_ENCODERS[0]
SIMULATED = "simulated"  # the teacher backend of benchmarks: a reservoir of real labelled texts, known noise
BackendName = Literal[(*BACKENDS, SIMULATED)]  # the registry's names; nothing of them is imported
StudentKind = Literal[tuple(TRAINABLE_KINDS)]
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def check_safe_name(value: str) -> str:
    """A name that becomes a folder under runs/: letters, digits, '.', '-', '_'; no '..', no '/'."""
    if not SAFE_NAME.fullmatch(value) or ".." in value:
        raise ValueError(f"'{value}' is not a safe name: use letters, digits, '.', '-' and '_' (at most 100, "
                         f"starting with a letter or digit, no '..')")
    return value


def check_url(url: str, schemes: tuple[str, ...], example: str) -> str:
    """A URL with one of the schemes, a host and a numeric port (if any); the message never repeats it whole,
    since it may hold a password."""
    try:
        parts = urlsplit(url)
        parts.port  # raises on a port that is not a number in range
    except ValueError as exc:
        raise ValueError(f"malformed URL ({exc}); expected {example}") from None
    if parts.scheme not in schemes or (parts.scheme != "unix" and not parts.hostname):
        raise ValueError(f"malformed URL (scheme '{parts.scheme}', host '{parts.hostname or ''}'); expected {example}")
    return url


def check_redis_url(url: str) -> str:
    check_url(url, ("redis", "rediss", "unix"), "redis://[:password@]host:port/db")
    db = urlsplit(url).path.strip("/")
    if urlsplit(url).scheme != "unix" and db and not db.isdigit():
        raise ValueError(f"the database after the port must be a number, got '{db}'")
    return url


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DatasetConfig(Strict):
    path: Path
    task: str = Field("Short texts", description="what the texts are, for teacher prompts: 'Customer messages to a bank'")
    seeds_per_class: int | None = Field(None, ge=1, description="keep N labelled train examples per class; null keeps all")
    sample_seed: int = 0
    max_validation: int | None = Field(None, ge=1, description="cap validation size (stratified) to bound eval time")
    pool_from_train: bool = Field(False, description="use the train texts left after seeding, labels hidden, as the "
                                  "unlabelled pool (as in PGKD's sparse setting; the hidden labels score the teacher)")
    max_pool: int | None = Field(2000, ge=1, description="cap the unlabelled pool taken from unlabeled.jsonl or "
                                 "pool_from_train (random sample); pool files are never capped")
    pool: list[Path] | None = Field(None, description="the unlabelled pool as files of any size: JSONL or Parquet "
                                    "files (a 'text' field each row) or folders of them; relative to the config")
    pool_shard_rows: int = Field(20_000, ge=1, description="the pool is scored in shards of about this many rows")
    pool_shards_per_round: int = Field(5, ge=1, description="shards scored after each new best student, in turn: "
                                       "a large pool is covered over several rounds, a small one every round")
    selection_share: float = Field(0.5, ge=0, lt=1, description="share of each class's validation texts held "
                                   "out to choose the best student; the teacher never sees them (0: one set for both)")

    @field_validator("pool", mode="before")
    @classmethod
    def _one_or_more_paths(cls, value):
        return [value] if isinstance(value, (str, Path)) else value

    @model_validator(mode="after")
    def _one_pool_source(self) -> "DatasetConfig":
        if self.pool and self.pool_from_train:
            raise ValueError("set dataset.pool or dataset.pool_from_train, not both")
        return self


class HttpBackendConfig(Strict):
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


class SimulatedTeacherConfig(Strict):
    """A measuring instrument, never a teacher: it answers from the labelled train texts the seeds left over."""

    error_rate: float = Field(0.0, ge=0, le=1, description="share of its labels that are wrong: flipped to the "
                              "contrast class when the plan names one, else to a random other class")
    seconds_per_example: float = Field(0.0, ge=0, description="sleep per example written, to study the loop at "
                                       "the pace of a real model (e.g. 1 s for an 8B model on a GPU)")
    embedding: str = Field(EMBEDDED_ENCODER, description="encoder whose cosine picks the texts closest to a "
                           "contrast class or a hard negative")
    allow_repeats: bool = Field(False, description="reuse texts once a class's reservoir is spent (only for "
                                "load tests; every repeat is marked)")


class TeacherConfig(Strict):
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


class StudentConfig(Strict):
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


class LoopConfig(Strict):
    patience: int = Field(3, ge=1)
    min_delta: float = Field(0.005, ge=0)
    max_versions: int = Field(20, ge=1)
    time_budget_s: float = Field(1800, gt=0)
    max_generated: int | None = Field(None, ge=1)
    poll_interval_s: float = Field(0.5, gt=0)
    selection_z: float = Field(1.0, ge=0, description="a later version replaces the seeds-only one only when it "
                               "beats it on the selection texts by more than this many standard errors of the paired "
                               "difference (bootstrap); 0: the highest score wins")


class RedisConfig(Strict):
    url: str | None = Field(None, description="absent: start an embedded redis-server on 127.0.0.1")
    retry_seconds: float = Field(120, gt=0, description="how long every process retries a Redis that went away "
                                 "(restart, failover, network blip) before giving up")
    archive_every_s: float = Field(5.0, ge=0, description="how often the driver moves example batches every "
                                   "student has trained on from Redis to runs/<id>/data/ (0: never; Redis then "
                                   "holds the whole run)")
    startup_timeout_s: float = Field(10, gt=0, description="how long the driver tries to reach Redis at start "
                                     "before it refuses to start")

    @field_validator("url")
    @classmethod
    def _is_redis_url(cls, value: str | None) -> str | None:
        return None if value is None else check_redis_url(value)


class RayConfig(Strict):
    address: str | None = None  # None: start a local cluster
    dashboard: bool = True
    dashboard_host: str = Field("127.0.0.1", description="where a local cluster's dashboard listens; 0.0.0.0 "
                                "exposes it (and Ray's job API) to the network")
    num_cpus: int | None = Field(None, ge=1, description="logical CPUs of the local cluster")
    namespace: str = "pgkd"
    # Custom Ray resources each teacher / student actor also asks for, e.g. {"pgkd_teacher_gpu": 1}: nodes that
    # advertise them (ray_configs/cluster-aws.yaml, kuberay-rayjob.yaml) form pools that never take each other's GPUs.
    teacher_resources: dict[str, float] = Field(default_factory=dict, description="custom resources per teacher")
    max_restarts: int = Field(3, ge=0, description="times Ray restarts a failed teacher or student actor")
    student_resources: dict[str, float] = Field(default_factory=dict, description="custom resources per student")

    @field_validator("teacher_resources", "student_resources")
    @classmethod
    def _custom_only(cls, value: dict[str, float]) -> dict[str, float]:
        builtin = sorted(set(value) & {"CPU", "GPU", "memory", "object_store_memory"})
        if builtin:  # Ray refuses these in `resources`; threads and gpus set them
            raise ValueError(f"{builtin} are not custom resources; use threads / gpus_per_replica / gpus")
        if any(amount < 0 for amount in value.values()):
            raise ValueError("resource amounts must be >= 0")
        return value


class EvaluatorConfig(Strict):
    threads: int = Field(1, ge=1)
    batch_size: int = Field(64, ge=1)
    max_hard_negatives: int = Field(50, ge=0)


class RunConfig(Strict):
    name: str = "pgkd"
    runs_dir: Path = Path("runs")
    dataset: DatasetConfig
    teacher: TeacherConfig = TeacherConfig()
    students: list[StudentConfig] = Field(default_factory=lambda: [StudentConfig()], min_length=1)
    evaluator: EvaluatorConfig = EvaluatorConfig()
    loop: LoopConfig = LoopConfig()
    redis: RedisConfig = RedisConfig()
    ray: RayConfig = RayConfig()

    @field_validator("name")
    @classmethod
    def _name_is_safe(cls, value: str) -> str:
        return check_safe_name(value)

    @field_validator("runs_dir")
    @classmethod
    def _runs_dir_is_a_folder(cls, value: Path) -> Path:
        if value.exists() and not value.is_dir():
            raise ValueError(f"'{value}' exists and is not a folder")
        return value

    @model_validator(mode="after")
    def _unique_student_names(self) -> "RunConfig":
        names = [s.name for s in self.students]
        if len(set(names)) != len(names):
            raise ValueError(f"student names must be unique, got {names}")
        return self

    def resolve_paths(self, base: Path) -> "RunConfig":
        """Relative dataset paths are relative to the config file's folder."""
        if not self.dataset.path.is_absolute():
            candidate = (base / self.dataset.path).resolve()
            if candidate.exists() or not self.dataset.path.exists():
                self.dataset.path = candidate
            else:
                self.dataset.path = self.dataset.path.resolve()
        if self.dataset.pool:
            self.dataset.pool = [p if p.is_absolute() or not (base / p).exists() else (base / p).resolve()
                                 for p in self.dataset.pool]
        templates = self.teacher.templates_dir
        if templates is not None and not templates.is_absolute() and (base / templates).is_dir():
            self.teacher.templates_dir = (base / templates).resolve()
        chat_template = self.teacher.chat_template
        if chat_template is not None and not chat_template.is_absolute() and (base / chat_template).is_file():
            self.teacher.chat_template = (base / chat_template).resolve()
        return self


def parse_override(text: str) -> tuple[list, object]:
    """'teacher.replicas=2' -> (['teacher', 'replicas'], 2); the value is parsed as YAML."""
    if "=" not in text:
        raise InputError("expected dotted.key=value", field=text)
    key, raw = text.split("=", 1)
    path = [int(p) if p.isdigit() else p for p in key.strip().split(".")]
    if any(p == "" for p in path):
        raise InputError("empty part in the dotted key", field=key)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise InputError(f"value is not valid YAML: {str(exc).splitlines()[0]}", field=key.strip()) from exc
    return path, value


def apply_override(data: dict, path: list, value: object) -> None:
    """Set data[path] = value, creating mappings, and list items one past the end (students.0.alpha)."""
    node = data
    for part, following in zip(path[:-1], path[1:]):
        empty = [] if isinstance(following, int) else {}
        if isinstance(node, list):
            if part == len(node):
                node.append(empty)
            node = node[part]
        else:
            node = node.setdefault(part, empty)
    if isinstance(node, list) and path[-1] == len(node):
        node.append(value)
    else:
        node[path[-1]] = value


def read_text_file(path: Path) -> str:
    """The file as UTF-8 text; other bytes are refused with the line they are on."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8",
                         file=str(path), line=line) from exc


def load_config(path: str | Path, overrides: list[str] = ()) -> RunConfig:
    """Load and validate a run config; errors name the file, line and field."""
    path = Path(path)
    if not path.is_file():
        raise InputError("config file not found", file=str(path))
    text = read_text_file(path)
    try:
        data, lines = load_with_lines(text)
    except (DuplicateKey, TooLarge) as exc:
        raise InputError(str(exc), file=str(path), line=exc.line, field=getattr(exc, "key", None)) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(f"not valid YAML: {exc}", file=str(path), line=mark.line + 1 if mark else None) from exc
    data = data or {}
    if not isinstance(data, dict):
        raise InputError("top level must be a mapping", file=str(path), line=1)
    for override in overrides:
        keys, value = parse_override(override)
        try:
            apply_override(data, keys, value)
        except (IndexError, TypeError, KeyError, AttributeError) as exc:
            raise InputError(f"cannot apply override: {type(exc).__name__}: {exc}", field=override) from exc
    config = validate_config(data, str(path), lines).resolve_paths(path.parent)
    check_paths(config, str(path), lines)
    return config


def validate_config(data: dict, file: str = "<config>", lines: dict | None = None) -> RunConfig:
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        field = ".".join(str(p) for p in loc)
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise InputError(first["msg"] + more, file=file, line=nearest_line(lines or {}, loc), field=field) from exc


def check_paths(config: RunConfig, file: str = "<config>", lines: dict | None = None) -> None:
    """Model and template paths that do not exist are refused now, not a minute later inside an actor."""
    def refuse(loc: tuple, message: str):
        raise InputError(message, file=file, line=nearest_line(lines or {}, loc), field=".".join(map(str, loc)))

    teacher = config.teacher
    if teacher.templates_dir is not None and not teacher.templates_dir.is_dir():
        refuse(("teacher", "templates_dir"), f"no folder at {teacher.templates_dir}")
    if teacher.chat_template is not None and not teacher.chat_template.is_file():
        refuse(("teacher", "chat_template"), f"no file at {teacher.chat_template}")
    if teacher.backend == "vllm":
        problem = model_problem(teacher.model, EMBEDDED_TEACHERS, gguf=True)
        if problem:
            refuse(("teacher", "model"), problem)
    for index, student in enumerate(config.students):
        problem = model_problem(student.model, EMBEDDED_ENCODERS) if student.kind == "encoder" else None
        if problem:
            refuse(("students", index, "model"), problem)


def model_problem(spec: str, embedded: tuple[str, ...], gguf: bool = False) -> str | None:
    """Why a model spec cannot load, or None: an embedded name, a folder (or .gguf file), or a hub id, which
    with HF_HUB_OFFLINE set must already be in the Hugging Face cache."""
    if spec.startswith("embedded:"):
        return None if spec in embedded else f"unknown embedded model '{spec}' (known: {list(embedded)})"
    local = Path(spec).expanduser()
    if local.is_dir() or (gguf and spec.endswith(".gguf") and local.is_file()):
        return None
    if spec.startswith(("/", "./", "../", "~")) or spec.endswith(".gguf") or local.exists():
        return f"no model folder at {spec}" + (" (or .gguf file)" if gguf else "")
    if not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", spec):
        return f"'{spec}' is neither a folder nor a hub id (org/name)"
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false") and not hub_cached(spec):
        return f"'{spec}' is not a folder and not in the Hugging Face cache (HF_HUB_OFFLINE is set)"
    return None


def hub_cached(repo_id: str) -> bool:
    hub = os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"
    return (Path(hub) / ("models--" + repo_id.replace("/", "--"))).is_dir()


def dump_config(config: RunConfig) -> dict:
    return config.model_dump(mode="json")


def redis_url_from_env(config: RunConfig) -> str | None:
    if config.redis.url:
        return config.redis.url
    url = os.environ.get("PGKD_REDIS_URL") or None
    if url is not None:
        try:
            check_redis_url(url)
        except ValueError as exc:
            raise InputError(str(exc), field="PGKD_REDIS_URL (environment)") from None
    return url
