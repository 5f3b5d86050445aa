"""pgkd: Performance-Guided Knowledge Distillation of an LLM teacher into small text classifiers, on Ray.

The one import name of the project; its layers are subpackages (pgkd.basics, pgkd.bus, pgkd.teacher,
pgkd.student, pgkd.evaluator, pgkd.actors, pgkd.cluster) and the modules at this level are the top. The names
below load on first use, so importing any layer does not import the top:

    from pgkd import load_student
    load_student("runs/RUN_ID/best_student").predict(["I lost my card"])
"""
from __future__ import annotations

from importlib import import_module

_LAZY = {"load_student": "pgkd.student.registry", "load_config": "pgkd.config"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pgkd' has no attribute '{name}'")


__all__ = sorted(_LAZY)
