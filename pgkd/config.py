"""The run's config: the role and kind blocks composed into one tree, loaded from YAML (ray_configs/) with
`--set dotted.key=value` overrides. Each block lives beside what it configures; errors name file, line and field."""
from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from pgkd.basics.dataset_config import DatasetConfig
from pgkd.basics.errors import InputError
from pgkd.basics.settings import Settings, check_safe_name
from pgkd.basics.storage import check_uri, is_uri
from pgkd.basics.yaml_lines import DuplicateKey, TooLarge, load_with_lines, nearest_line
from pgkd.bus.config import RedisConfig
from pgkd.cluster.config import RayConfig
from pgkd.tracking.config import TrackingConfig
from pgkd.evaluator.config import EvaluatorConfig, LoopConfig
from pgkd.student.base import STUDENT_KINDS
from pgkd.teacher.backends.base import TEACHER_BACKENDS
from pgkd.student.config import StudentConfig
from pgkd.teacher.config import TeacherConfig, teacher_settings


FAMILIES = {family.tag: family for family in (STUDENT_KINDS, TEACHER_BACKENDS)}  # for error messages


class RunConfig(Settings):
    name: str = "pgkd"
    runs_dir: Path | str = Field(Path("runs"), description="a local folder, or a URI pyarrow.fs reaches "
                                 "(s3://bucket/prefix?endpoint_override=host:port&scheme=http&region=...)")
    dataset: DatasetConfig
    teacher: TeacherConfig = Field(default_factory=teacher_settings)
    students: list[StudentConfig] = Field(default_factory=lambda: [STUDENT_KINDS.default_settings()], min_length=1)
    evaluator: EvaluatorConfig = Field(default_factory=lambda: EvaluatorConfig())
    loop: LoopConfig = Field(default_factory=lambda: LoopConfig())
    redis: RedisConfig = Field(default_factory=lambda: RedisConfig())
    ray: RayConfig = Field(default_factory=lambda: RayConfig())
    tracking: TrackingConfig = Field(default_factory=lambda: TrackingConfig())

    @field_validator("name")
    @classmethod
    def _name_is_safe(cls, value: str) -> str:
        return check_safe_name(value)

    @field_validator("runs_dir", mode="before")
    @classmethod
    def _runs_dir_is_a_folder_or_a_uri(cls, value) -> Path | str:
        if is_uri(str(value)):
            return check_uri(str(value))  # StorageError is a ValueError: named as runs_dir
        value = Path(value)
        if value.exists() and not value.is_dir():
            raise ValueError(f"'{value}' exists and is not a folder")
        return value


    @model_validator(mode="after")
    def _tracking_store_every_machine_reaches(self) -> "RunConfig":
        if self.tracking.enabled and self.tracking.uri is None and is_uri(str(self.runs_dir)):
            raise ValueError("tracking.uri is needed when runs_dir is object storage: the default SQLite store "
                             "lives in a local runs folder; give an MLflow server every machine reaches")
        return self

    @model_validator(mode="after")
    def _unique_student_names(self) -> "RunConfig":
        names = [s.name for s in self.students]
        if len(set(names)) != len(names):
            raise ValueError(f"student names must be unique, got {names}")
        return self

    def blocks(self) -> list[tuple[tuple, Settings]]:
        """(location, block) of every block that may hold paths."""
        return [(("dataset",), self.dataset), (("teacher",), self.teacher),
                *((("students", i), s) for i, s in enumerate(self.students))]

    def resolve_paths(self, base: Path) -> "RunConfig":
        """Relative paths are relative to the config file's folder."""
        for _, block in self.blocks():
            block.resolve_paths(base)
        return self


def parse_override(text: str) -> tuple[list, object]:
    """'teacher.replicas=2' -> (['teacher', 'replicas'], 2); the value is parsed as YAML."""
    if "=" not in text:
        raise InputError("expected dotted.key=value", field=text)
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise InputError(f"value is not valid YAML: {str(exc).splitlines()[0]}", field=key.strip()) from exc
    return parse_key(key), value


def parse_key(key: str) -> list:
    """'students.0.alpha' -> ['students', 0, 'alpha']."""
    path = [int(p) if p.isdigit() else p for p in key.strip().split(".")]
    if any(p == "" for p in path):
        raise InputError("empty part in the dotted key", field=key)
    return path


def overrides_as_pairs(overrides: list[str] | dict | None) -> list[tuple[str, list, object]]:
    """(as given, key path, value) from --set strings (values read as YAML) or a dict (values taken as they are:
    {"loop.time_budget_s": 120, "students.0.kind": "ngram"})."""
    if isinstance(overrides, dict):
        return [(f"{key}={value!r}", parse_key(str(key)), value) for key, value in overrides.items()]
    return [(text, *parse_override(text)) for text in overrides or ()]


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


def load_config(path: str | Path, overrides: list[str] | dict | None = ()) -> RunConfig:
    """Load and validate a run config, with overrides as --set strings or a dict of dotted keys; errors name the
    file, line and field."""
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
    for override, keys, value in overrides_as_pairs(overrides):
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
        loc, message = readable_location(first)
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise InputError(message + more, file=file, line=nearest_line(lines or {}, loc),
                         field=".".join(str(p) for p in loc)) from exc


def readable_location(error: dict) -> tuple[tuple, str]:
    """An error's field path without the union's member marks ('kind=ngram'), and its message in words: a key of
    another kind is 'not a setting of kind ngram (it is one of graph)'; an unknown kind is located at its tag."""
    loc, message = [], error["msg"]
    for part in error["loc"]:
        if isinstance(part, str) and "=" in part:
            tag, name = part.split("=", 1)
            if error["type"] == "extra_forbidden":
                owners = FAMILIES[tag].owners(str(error["loc"][-1]))
                where = f"it is one of {tag} {', '.join(owners)}" if owners else "no such setting"
                message = f"not a setting of {tag} '{name}' ({where})"
            continue
        loc.append(part)
    if error["type"] == "unknown_kind":
        loc.append(error["ctx"]["tag"])
    return tuple(loc), message


def check_paths(config: RunConfig, file: str = "<config>", lines: dict | None = None) -> None:
    """Model and template paths that do not exist are refused now, not a minute later inside an actor."""
    for where, block in config.blocks():
        for inside, message in block.path_problems():
            loc = where + inside
            raise InputError(message, file=file, line=nearest_line(lines or {}, loc), field=".".join(map(str, loc)))


def dump_config(config: RunConfig) -> dict:
    return config.model_dump(mode="json")
