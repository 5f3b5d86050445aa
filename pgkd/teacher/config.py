"""The teacher block of a run: the settings of one registered backend, chosen by its `backend` field (vllm when
absent). Each block lives beside its backend in teacher/backends/; what they share is in teacher/settings.py."""
from __future__ import annotations

from pgkd.teacher.backends.base import TEACHER_BACKENDS, TeacherKind
from pgkd.teacher.settings import TeacherSettings

TeacherConfig = TEACHER_BACKENDS.union()


def teacher_settings(**fields) -> TeacherSettings:
    """A teacher block from keyword fields, as a config file gives them (`backend` picks the block; vllm unset)."""
    return TEACHER_BACKENDS.parse(fields)


def teacher_kind(settings: TeacherSettings) -> type[TeacherKind]:
    """The registered class of the block's backend, which says what a run must prepare for it."""
    return TEACHER_BACKENDS.implementation(settings.backend)
