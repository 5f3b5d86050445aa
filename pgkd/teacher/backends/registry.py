"""Teacher backends by name: the table of "module:Class" entries in basics/registries.py, imported on first use, so the interface
(`teacher/backends/base.py`) knows no implementation and naming a backend does not import vLLM."""
from __future__ import annotations

from importlib import import_module

from pgkd.basics.registries import BACKENDS
from pgkd.teacher.backends.base import Capabilities, TeacherBackend
from pgkd.teacher.model_store import chat_template_file


def backend_class(name: str):
    if name not in BACKENDS:
        raise ValueError(f"unknown teacher backend '{name}' (known: {sorted(BACKENDS)})")
    module, cls = BACKENDS[name].split(":")
    return getattr(import_module(module), cls)


def make_backend(name: str, **kwargs) -> TeacherBackend:
    return backend_class(name)(**kwargs)


def backend_options(config, replica: int, kv_block_size: int | None = None) -> dict:
    """The keyword arguments a TeacherConfig gives its backend (replicas sample with different seeds);
    kv_block_size is the engine's KV-cache block size, which placement decides per device."""
    if config.backend == "openai":
        return {"model": config.model, **config.http.model_dump()}
    return {"model": config.model, "dtype": config.dtype, "max_model_len": config.max_model_len,
            "kv_cache_gib": config.kv_cache_gib, "enforce_eager": config.enforce_eager, "seed": config.seed + replica,
            "block_size": kv_block_size, "label_scoring": config.label_scoring,
            "chat_template": chat_template_file(config.model, config.chat_template)}


def probe_backend(config) -> Capabilities | None:
    """Try a remote backend once before a run starts anything (InputError when it cannot serve) and say what it
    can do; a local engine has nothing to try (None)."""
    if config.backend == "openai":
        from pgkd.teacher.backends.openai_probe import probe

        options = backend_options(config, 0)
        return probe(options["base_url"], options["served_model"] or options["model"], options["api_key_env"],
                     options["timeout_s"])
    return None
