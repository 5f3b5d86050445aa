"""The contract of an encoder runtime: texts in, unit-norm pooled vectors out, in the order given.

A frozen encoder student embeds every text it trains on, is scored on, and every pool text it scores through one
runtime, so the vectors of one student always come from the same numeric path. Runtimes batch texts of similar
length together (`length_batches`): padding a 10-token text to the 64 tokens of its batch's longest costs more
than the sort.

A runtime is one file in this package that registers itself (`@register("onnx")`); `make_runtime` finds it.
"""
from __future__ import annotations

import importlib
import pkgutil
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable

import numpy as np

RUNTIMES: dict[str, type["EncoderRuntime"]] = {}
ONNX_PROVIDER = "CPUExecutionProvider"  # the ONNX Runtime provider the onnx runtimes use


class EncoderRuntime(ABC):
    """Built from an encoder folder, its pooling and max length; `encode` is all a student calls."""

    def __init__(self, encoder_dir: str, tokenizer, pooling: str, max_length: int):
        self.encoder_dir, self.tokenizer = encoder_dir, tokenizer
        self.cls, self.max_length = pooling == "cls", max_length

    @abstractmethod
    def encode_batch(self, texts: list[str]) -> np.ndarray:
        """One batch: float32 rows of unit norm, one per text, in order."""

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        return length_batches(texts, batch_size, self.encode_batch)


def length_batches(texts: list[str], batch_size: int, encode: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """encode() over batches of texts sorted by length, the rows put back in the caller's order."""
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = None
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        vectors = encode([texts[i] for i in rows])
        if out is None:
            out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
        out[rows] = vectors
    return out


def register(name: str):
    def decorate(cls):
        RUNTIMES[name] = cls
        cls.runtime_name = name
        return cls
    return decorate


def make_runtime(name: str, encoder_dir: str, encoder, tokenizer, pooling: str, max_length: int) -> EncoderRuntime:
    """The runtime `name` (see `resolve`) for an encoder already loaded in torch (`encoder`)."""
    _discover()
    if name not in RUNTIMES:
        raise ValueError(f"unknown encoder runtime '{name}' (known: {sorted(RUNTIMES)})")
    return RUNTIMES[name].build(encoder_dir, encoder, tokenizer, pooling, max_length)


def _discover() -> None:
    """Import every runtime module of this package once: each registers itself."""
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        importlib.import_module(f"{__package__}.{module.name}")


def resolve(name: str, device_type: str, finetune: bool) -> str:
    """'auto': ONNX Runtime for a frozen encoder on a CPU where it is installed (fp32: the same top-1 as torch),
    torch otherwise (a GPU, a fine-tuned encoder, which trains through torch, or no onnxruntime)."""
    if name != "auto":
        return name
    if finetune or not ONNX_PROVIDER.lower().startswith(device_type):  # the onnx runtime runs on this one only
        return "torch"
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return "torch"
    return "onnx"
