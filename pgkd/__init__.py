"""pgkd: Performance-Guided Knowledge Distillation of an LLM teacher into small text classifiers, on Ray.

The one import name of the project; its layers are subpackages (pgkd.basics, pgkd.bus, pgkd.teacher,
pgkd.student, pgkd.evaluator, pgkd.actors, pgkd.cluster, pgkd.tracking) and the modules at this level are the
top. The Python API (pgkd/api.py) loads on first use, so importing any layer does not import the top:

    import pgkd
    report = pgkd.run("ray_configs/demo.yaml", overrides={"loop.time_budget_s": 120})
    pgkd.load_student(report["best_student"]["path"]).predict(["I lost my card"])
"""
from __future__ import annotations

from importlib import import_module

_LAZY = {"load_student": "pgkd.student.registry", "load_config": "pgkd.config", "InputError": "pgkd.basics.errors",
         **{name: "pgkd.api" for name in ("run", "demo", "resume", "status", "stop")}}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pgkd' has no attribute '{name}'")


__all__ = sorted(_LAZY)
