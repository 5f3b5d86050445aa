"""The students block of a run: one entry per student pool, each the settings block of its kind (the
`StudentSettings` subclass in pgkd/student/kinds/<kind>.py), chosen by its `kind` field (encoder when absent).
A key of another kind is refused as "not a setting of kind '<kind>'"."""
from __future__ import annotations

from pgkd.student.base import STUDENT_KINDS, StudentSettings

StudentConfig = STUDENT_KINDS.union()


def student_settings(**fields) -> StudentSettings:
    """A student's settings block from keyword fields, validated as a config entry is (kind encoder unless named):
    `student_settings(kind="ngram", epochs=40)`."""
    return STUDENT_KINDS.parse(fields)
