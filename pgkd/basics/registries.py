"""The names pgkd knows, as plain tables: teacher backends and student kinds ("module:Class" strings).

They live here, in the bottom layer, so the config can refuse an unknown name at load time without importing
any implementation; teacher/backends/registry.py and student/registry.py import the classes from these tables.
"""
from __future__ import annotations

BACKENDS = {
    "vllm": "pgkd.teacher.backends.vllm_engine:VLLMEngineBackend",  # the engine in this process
    "openai": "pgkd.teacher.backends.openai_http:OpenAIHTTPBackend",  # any OpenAI-compatible /v1/completions endpoint
}

TRAINABLE_KINDS = {
    "encoder": "pgkd.student.encoder:EncoderStudent",
    "ngram": "pgkd.student.ngram:NgramStudent",
    "graph": "pgkd.student.graph:GraphStudent",
}
EXPORTED = "pgkd.student.export:ExportedStudent"  # an exported folder: inference only, its kind is "<base>-<format>"
EXPORT_FORMATS = ("onnx", "torchscript")
STUDENT_KINDS = {**TRAINABLE_KINDS,
                 **{f"{base}-{fmt}": EXPORTED for base in TRAINABLE_KINDS for fmt in EXPORT_FORMATS}}

EMBEDDED_TEACHERS = ("embedded:gemma3-270m",)
EMBEDDED_ENCODERS = ("embedded:all-MiniLM-L6-v2",)
