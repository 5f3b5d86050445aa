"""The cached conversion of the embedded teacher: used when whole, converted again when missing or damaged."""
import json

import torch
from safetensors.torch import save_file

import pgkd.teacher.model_store as store


def converted_folder(path):
    path.mkdir(parents=True)
    save_file({"w": torch.zeros(4, 4)}, str(path / "model.safetensors"))
    (path / "config.json").write_text(json.dumps({"model_type": "gemma3_text"}))
    sizes = {p.name: p.stat().st_size for p in path.iterdir()}
    (path / store.DONE_MARKER).write_text(json.dumps({"gguf": "x.gguf", "sizes": sizes}))
    return path


def test_a_whole_conversion_has_no_problem_and_each_damage_is_named(tmp_path):
    folder = converted_folder(tmp_path / "m")
    assert store.conversion_problem(folder) is None
    assert store.conversion_problem(tmp_path / "absent") == "not converted yet"

    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[:-10])  # truncated
    assert "model.safetensors" in store.conversion_problem(folder)
    (folder / store.DONE_MARKER).write_text("x.gguf")  # an old marker without sizes: the header check still runs
    assert "truncated" in store.conversion_problem(folder)
    weights.write_bytes(data)
    assert store.conversion_problem(folder) is None
    (folder / "config.json").write_text("{not json")
    assert store.conversion_problem(folder) == "config.json is not valid JSON"
    (folder / store.DONE_MARKER).unlink()
    assert store.conversion_problem(folder) == "no completion marker"


def test_convert_gguf_rebuilds_a_damaged_cache_and_reuses_a_whole_one(tmp_path, monkeypatch):
    calls = []

    def fake_convert(gguf, target):
        calls.append(target)
        import shutil
        shutil.rmtree(target, ignore_errors=True)
        converted_folder(target)

    monkeypatch.setattr(store, "_convert", fake_convert)
    target = tmp_path / "models" / "m-bf16"
    assert store.convert_gguf(tmp_path / "x.gguf", target) == target and len(calls) == 1
    store.convert_gguf(tmp_path / "x.gguf", target)
    assert len(calls) == 1  # whole: reused
    (target / "model.safetensors").write_bytes(b"\x00" * 12)
    store.convert_gguf(tmp_path / "x.gguf", target)
    assert len(calls) == 2 and store.conversion_problem(target) is None
