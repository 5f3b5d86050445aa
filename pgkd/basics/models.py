"""Whether a model a config names can load here: an embedded name, a local folder (or .gguf file), or a hub id
that, with HF_HUB_OFFLINE set, must already be in the Hugging Face cache."""
from __future__ import annotations

import os
import re
from pathlib import Path


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


def cache_root() -> Path:
    """pgkd's own cache (converted teacher models, ONNX encoders, embeddings): $PGKD_CACHE or ~/.cache/pgkd."""
    return Path(os.environ.get("PGKD_CACHE", Path.home() / ".cache" / "pgkd"))


def hub_cached(repo_id: str) -> bool:
    hub = os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"
    return (Path(hub) / ("models--" + repo_id.replace("/", "--"))).is_dir()
