"""A student folder from anywhere is data: `pgkd predict` / `load_student` never read or run anything outside it
(pgkd/student/saved.py states the rule). Weights holding a pickle payload, a student.json naming a path outside
the folder, a symlink out of it, an encoder named by path: each is refused with `pgkd: error:` naming the file,
and nothing of it runs."""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pytest
import torch

from pgkd.basics.errors import InputError
from pgkd.bus.messages import Example
from pgkd.cli import main
from pgkd.student.config import student_settings
from pgkd.student.export import export_student
from pgkd.student.kinds.encoder import resolve_encoder
from pgkd.student.registry import load_student, make_student

LABELS = ["card", "transfer"]
TRAIN = [("where is my card", "card"), ("my card is lost", "card"), ("send money to mom", "transfer"),
         ("transfer cash abroad", "transfer")]
WEIGHTS = {"ngram": "ngram.pt", "fasttext": "net.pt", "graph": "graph.pt", "encoder": "head.pt"}
SMALL = {"ngram": {"buckets": 64}, "fasttext": {"buckets": 64, "dim": 4}, "graph": {"dim": 4}, "encoder": {}}


class Payload:
    """Unpickling this runs a shell command that leaves a marker file: what a hostile weights file would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def saved(tmp_path: Path, kind: str, name: str = "student") -> Path:
    config = student_settings(kind=kind, epochs=3, **SMALL[kind])
    student = make_student(LABELS, config, "cpu")
    student.fit([Example(text=t, label=l, source="seed") for t, l in TRAIN], config)
    return student.save(tmp_path / name)


def refused(folder: Path, capsys, *words: str) -> str:
    capsys.readouterr()  # what making the student printed (transformers' progress bars)
    assert main(["predict", str(folder), "where is my card"]) == 2
    err = capsys.readouterr().err.splitlines()[-1]  # an encoder prints progress bars before its head is read
    assert err.startswith("pgkd: error: ") and all(w in err for w in words), err
    return err


@pytest.mark.parametrize("kind", list(WEIGHTS))
def test_weights_holding_a_pickle_payload_are_refused_and_never_run(kind, tmp_path, capsys, monkeypatch):
    # this variable turns weights-only loading off wherever a call does not ask for it explicitly
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    folder = saved(tmp_path, kind)
    marker = tmp_path / "payload-ran"
    torch.save({"weight": Payload(marker)}, folder / WEIGHTS[kind])
    refused(folder, capsys, str(folder / WEIGHTS[kind]), "pickled objects other than tensors", "posix.system")
    assert not marker.exists()


def test_a_vocabulary_outside_the_folder_is_refused(tmp_path, capsys):
    folder = saved(tmp_path, "graph")
    meta = json.loads((folder / "student.json").read_text())
    shutil.copy(folder / meta["vocab_file"], tmp_path / "vocab.json")
    for name in (str(tmp_path / "vocab.json"), "../vocab.json"):
        (folder / "student.json").write_text(json.dumps({**meta, "vocab_file": name}))
        refused(folder, capsys, "student.json: field 'vocab_file'", "outside the student folder")


def test_an_exported_model_file_outside_the_folder_is_refused(tmp_path, capsys):
    out = export_student(saved(tmp_path, "ngram"), tmp_path / "export", "onnx", "cpu")
    shutil.move(out / "model.onnx", tmp_path / "model.onnx")
    meta = json.loads((out / "student.json").read_text())
    (out / "student.json").write_text(json.dumps({**meta, "model_file": "../model.onnx"}))
    refused(out, capsys, "field 'model_file'", "outside the student folder")


@pytest.mark.parametrize("what", ["file", "folder"])
def test_a_symlink_out_of_the_folder_is_refused(what, tmp_path, capsys):
    folder = saved(tmp_path, "ngram")
    if what == "file":  # the weights themselves, a valid file elsewhere
        shutil.move(folder / "ngram.pt", tmp_path / "elsewhere.pt")
        (folder / "ngram.pt").symlink_to(tmp_path / "elsewhere.pt")
    else:  # a subfolder a library would open wholesale
        (folder / "tokenizer").symlink_to(tmp_path, target_is_directory=True)
    refused(folder, capsys, "symlink", "outside the student folder")


def test_a_symlink_inside_the_folder_is_fine(tmp_path, capsys):
    folder = saved(tmp_path, "ngram")
    shutil.move(folder / "ngram.pt", folder / "weights.bin")
    (folder / "ngram.pt").symlink_to("weights.bin")
    assert main(["predict", str(folder), "where is my card"]) == 0


def test_a_frozen_encoder_named_by_path_is_refused(tmp_path, capsys):
    folder = saved(tmp_path, "encoder")
    meta = json.loads((folder / "student.json").read_text())
    assert meta["encoder"] == "embedded:all-MiniLM-L6-v2" and not (folder / "encoder").exists()
    (folder / "student.json").write_text(json.dumps({**meta, "encoder": resolve_encoder(meta["encoder"])}))
    refused(folder, capsys, "field 'encoder'", "neither a known embedded encoder nor a hub id")


def test_encoder_names_a_saved_student_may_use(tmp_path, monkeypatch):
    from pgkd.student.kinds.encoder import saved_encoder

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    assert saved_encoder("embedded:all-MiniLM-L6-v2", tmp_path) == resolve_encoder("embedded:all-MiniLM-L6-v2")
    (tmp_path / "org" / "model").mkdir(parents=True)  # a folder that looks like a hub id is never read
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="not in this machine's Hugging Face cache"):
        saved_encoder("org/model", tmp_path)
    for spec in ("/abs/encoder", "../encoder", "./encoder", "embedded:other", "org/../x", 3):
        with pytest.raises(InputError, match="neither a known embedded encoder nor a hub id"):
            saved_encoder(spec, tmp_path)


def test_a_frozen_local_folder_encoder_ships_inside_the_checkpoint(tmp_path):
    """A run whose encoder is a folder on this machine keeps its checkpoints loadable under the rule."""
    local = tmp_path / "my-encoder"
    shutil.copytree(resolve_encoder("embedded:all-MiniLM-L6-v2"), local)
    config = student_settings(kind="encoder", model=str(local), epochs=3)
    student = make_student(LABELS, config, "cpu")
    student.fit([Example(text=t, label=l, source="seed") for t, l in TRAIN], config)
    folder = student.save(tmp_path / "v0000")
    shutil.rmtree(local)  # the checkpoint does not need it any more
    meta = json.loads((folder / "student.json").read_text())
    assert meta["encoder_dir"] == "encoder" and (folder / "encoder" / "config.json").is_file()
    loaded = load_student(folder, "cpu")
    assert loaded.predict_proba(["where is my card"]) == pytest.approx(student.predict_proba(["where is my card"]),
                                                                        abs=1e-5)


def test_loading_torchscript_says_it_runs_code(tmp_path, caplog):
    out = export_student(saved(tmp_path, "ngram"), tmp_path / "export", "torchscript", "cpu")
    with caplog.at_level(logging.WARNING, logger="pgkd.student.exported"):
        load_student(out, "cpu")
    assert any("TorchScript" in r.message and "runs the code" in r.message for r in caplog.records)
