"""The frozen encoder's runtimes: ONNX Runtime gives the top-1 torch gives, a bad cached graph is made again, and
'auto' falls back to torch where ONNX Runtime is missing or cannot serve."""
import builtins
import json
from pathlib import Path

import numpy as np
import pytest

from pgkd.bus.messages import Example
from pgkd.student.kinds.encoder import EncoderSettings, EncoderStudent
from pgkd.student.runtimes.base import length_batches, resolve
from pgkd.student.runtimes.onnx_runtime import OnnxRuntime
from pgkd.student.runtimes.torch_runtime import TorchRuntime

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo_bank"


def rows(split):
    return [json.loads(line) for line in (DEMO / f"{split}.jsonl").read_text().splitlines() if line.strip()]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PGKD_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "onnx-encoders"


def test_onnx_agrees_with_torch_on_the_top_label(cache):
    """The agreement the default rests on: the same head over both runtimes' vectors picks the same label on at
    least 99.5% of texts (here every text of the demo set, a head trained on its seeds)."""
    train, texts = rows("train"), [r["text"] for split in ("validation", "test") for r in rows(split)]
    labels = sorted({r["label"] for r in train})
    in_torch = EncoderStudent(labels, EncoderSettings(runtime="torch"), "cpu")
    in_onnx = EncoderStudent(labels, EncoderSettings(runtime="onnx"), "cpu")
    assert isinstance(in_torch.runtime, TorchRuntime) and isinstance(in_onnx.runtime, OnnxRuntime)
    in_torch.fit([Example(text=r["text"], label=r["label"], source="seed") for r in train],
                 EncoderSettings(runtime="torch", epochs=30))
    in_onnx.head.load_state_dict(in_torch.head.state_dict())
    a, b = in_torch.embed(texts).numpy(), in_onnx.embed(texts).numpy()
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-4)
    assert (a * b).sum(1).min() > 0.9999
    same = (in_torch.predict_proba(texts).argmax(1) == in_onnx.predict_proba(texts).argmax(1)).mean()
    assert same >= 0.995, same
    assert len(list(cache.glob("*.onnx"))) == 1


def test_a_torn_cached_graph_is_exported_again(cache):
    EncoderStudent(["a", "b"], EncoderSettings(runtime="onnx"), "cpu")
    (graph,) = cache.glob("*.onnx")
    graph.write_bytes(graph.read_bytes()[:1000])  # a write cut short
    student = EncoderStudent(["a", "b"], EncoderSettings(runtime="onnx"), "cpu")
    assert graph.stat().st_size > 1000
    assert student.embed(["where is my card"]).shape == (1, 384)


def test_int8_runs_and_keeps_unit_vectors(cache):
    student = EncoderStudent(["a", "b"], EncoderSettings(runtime="onnx-int8"), "cpu")
    vectors = student.embed(["where is my card", "send 50 dollars to my sister before Friday"]).numpy()
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    assert any(p.name.endswith("-int8.onnx") for p in cache.glob("*.onnx"))


def test_auto_is_onnx_on_cpu_and_torch_elsewhere(monkeypatch):
    assert resolve("auto", "cpu", finetune=False) == "onnx"
    assert resolve("auto", "cuda", finetune=False) == "torch"
    assert resolve("auto", "cpu", finetune=True) == "torch"  # a fine-tuned encoder trains through torch
    assert resolve("onnx-int8", "cpu", finetune=False) == "onnx-int8"
    real_import = builtins.__import__

    def no_onnxruntime(name, *args, **kwargs):
        if name == "onnxruntime":
            raise ImportError("not installed")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnxruntime)
    assert resolve("auto", "cpu", finetune=False) == "torch"


def test_length_batches_put_rows_back_in_order():
    texts = ["ccc", "a", "bbbbb", "dd", ""]
    out = length_batches(texts, 2, lambda batch: np.array([[len(t)] for t in batch], dtype=np.float32))
    assert out[:, 0].tolist() == [3, 1, 5, 2, 0]


def test_a_saved_student_keeps_its_runtime(tmp_path, cache):
    from pgkd.student.registry import load_student

    student = EncoderStudent(["a", "b"], EncoderSettings(runtime="torch"), "cpu")
    assert isinstance(load_student(student.save(tmp_path / "s"), "cpu").runtime, TorchRuntime)


def test_auto_falls_back_to_torch_when_onnx_cannot_serve(cache, monkeypatch):
    import pgkd.student.runtimes.onnx_runtime as onnx_runtime

    def broken(*args, **kwargs):
        raise RuntimeError("exporter failed")

    monkeypatch.setattr(onnx_runtime, "export_graph", broken)
    assert isinstance(EncoderStudent(["a", "b"], EncoderSettings(runtime="auto"), "cpu").runtime, TorchRuntime)
    with pytest.raises(RuntimeError, match="exporter failed"):
        EncoderStudent(["a", "b"], EncoderSettings(runtime="onnx"), "cpu")
