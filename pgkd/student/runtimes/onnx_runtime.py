"""The frozen encoder in ONNX Runtime on CPU: about 2x torch at equal batching on this machine's MiniLM, with
the same vectors (cosine >= 0.99999). "onnx-int8" quantizes the weights (per channel, dynamic): about 2x faster
again, but it moves vectors enough to change a 77-class head's top-1 on a few percent of texts, so it is a choice,
never the default (bench/README.md, "Pool scoring").

The graph is exported once per encoder, pooling, length and quantization into pgkd's cache (atomically: a process
that finds it half-written never sees it), and shared by every process on the machine."""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from pgkd.basics.atomic_files import fsync_folder
from pgkd.basics.models import cache_root
from pgkd.student.runtimes.base import ONNX_PROVIDER, EncoderRuntime, register
from pgkd.student.runtimes.torch_runtime import pool_hidden

log = logging.getLogger(__name__)
# Tracing records one path: the sample must pad (different lengths), or the mask path is traced away
TRACE_TEXTS = ["where is my card", "", "I sent money to my friend yesterday but it has not arrived yet, why?"]
FORMAT_VERSION = "1"  # bump when the exported graph changes


class PooledEncoder(torch.nn.Module):
    def __init__(self, encoder: torch.nn.Module, cls: bool):
        super().__init__()
        self.encoder, self.cls = encoder, cls

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return pool_hidden(hidden, attention_mask, self.cls)


@register("onnx")
class OnnxRuntime(EncoderRuntime):
    quantize = False

    def __init__(self, encoder_dir: str, tokenizer, pooling: str, max_length: int, graph: Path):
        import onnxruntime as ort

        super().__init__(encoder_dir, tokenizer, pooling, max_length)
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()  # the actor's thread budget, as torch has it
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(graph), options, providers=[ONNX_PROVIDER])

    @classmethod
    def build(cls, encoder_dir, encoder, tokenizer, pooling, max_length) -> "OnnxRuntime":
        """The session over the cached graph; one that ONNX Runtime cannot load (a torn write, a foreign file) is
        exported again, never trusted. Loading is the check: no second parse of the file on every student load."""
        path = graph_path(encoder_dir, pooling, max_length, cls.quantize)
        if path.is_file():
            try:
                return cls(encoder_dir, tokenizer, pooling, max_length, path)
            except Exception:  # ONNX Runtime raises its own kinds for a file it cannot read
                log.warning("the cached ONNX encoder %s does not load; exporting it again", path)
        export_graph(path, encoder, tokenizer, pooling, cls.quantize)
        return cls(encoder_dir, tokenizer, pooling, max_length, path)

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="np")
        feeds = {name: batch[name].astype(np.int64) for name in ("input_ids", "attention_mask")}
        return self.session.run(None, feeds)[0].astype(np.float32, copy=False)


@register("onnx-int8")
class OnnxInt8Runtime(OnnxRuntime):
    quantize = True


def graph_key(encoder_dir: str, pooling: str, max_length: int, quantize: bool) -> str:
    """Names the exported graph by what it is made of: the encoder's weights files (path, size, mtime), pooling,
    length, quantization and the versions that shape the export."""
    import onnxruntime

    files = sorted(p for p in Path(encoder_dir).rglob("*") if p.is_file())
    stamp = [f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files]
    parts = [*stamp, pooling, str(max_length), str(quantize), torch.__version__, onnxruntime.__version__,
             FORMAT_VERSION]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]


def graph_path(encoder_dir: str, pooling: str, max_length: int, quantize: bool) -> Path:
    name = f"{graph_key(encoder_dir, pooling, max_length, quantize)}{'-int8' if quantize else ''}.onnx"
    return cache_root() / "onnx-encoders" / name


def export_graph(path: Path, encoder, tokenizer, pooling: str, quantize: bool) -> None:
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".export-") as work:
        fp32 = Path(work) / "encoder.onnx"
        _export(encoder, tokenizer, pooling, fp32)
        made = fp32
        if quantize:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            made = Path(work) / "encoder-int8.onnx"
            quantize_dynamic(str(fp32), str(made), weight_type=QuantType.QInt8, per_channel=True)
        with open(made, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(made, path)  # whole or absent: concurrent exporters each rename a complete file
    fsync_folder(folder)
    log.info("exported the frozen encoder to ONNX%s: %s", " (int8)" if quantize else "", path)


def _export(encoder, tokenizer, pooling: str, path: Path) -> None:
    module = PooledEncoder(encoder, pooling == "cls").eval()
    sample = tokenizer(TRACE_TEXTS, padding=True, return_tensors="pt")
    dynamic = {name: {0: "batch", 1: "tokens"} for name in ("input_ids", "attention_mask")}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings: the agreement test is the check
        torch.onnx.export(module, (sample["input_ids"], sample["attention_mask"]), str(path), dynamo=False,
                          opset_version=18, input_names=["input_ids", "attention_mask"], output_names=["vectors"],
                          dynamic_axes={**dynamic, "vectors": {0: "batch"}})
