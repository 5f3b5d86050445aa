"""The ngram, graph and fasttext students (train, KD, save/load, unseen words) and exports of every kind to
onnx/torchscript."""
import json

import numpy as np
import pytest
import torch

from pgkd.student.config import student_settings
from pgkd.bus.messages import Example
from pgkd.student.export import export_student
from pgkd.student.registry import load_student, make_student

LABELS = ["card", "transfer", "balance"]
PHRASES = {
    "card": ["where is my new card", "my card has not arrived", "card delivery is late", "I lost my card",
             "when will the card come", "my card was stolen", "order a new debit card", "the card is blocked"],
    "transfer": ["send money to my friend", "how do I transfer cash", "wire funds to my mom", "transfer money abroad",
                 "send cash to another account", "make a bank transfer", "pay my rent by transfer",
                 "move money to savings"],
    "balance": ["what is my balance", "how much money do I have", "check my account balance", "show my balance",
                "balance of my savings", "how much is left in my account", "what is left on my balance",
                "current balance please"],
}
TRAIN = [(text, label) for label, texts in PHRASES.items() for text in texts]
HELD_OUT = [("has my new card shipped yet", "card"), ("transfer 20 dollars to John", "transfer"),
            ("tell me my balance today", "balance"), ("send some money to my brother", "transfer")]
AMBIGUOUS = "I need help with my account"


def examples(rows, source="seed"):
    return [Example(text=t, label=l, source=source) for t, l in rows]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one thread is faster and does not fight other processes for the 2 cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


CONFIGS = {
    "ngram": student_settings(kind="ngram", epochs=40),
    "graph": student_settings(kind="graph", epochs=60),
    "graph-gin": student_settings(kind="graph", layer="gin", epochs=60),
    "fasttext": student_settings(kind="fasttext", epochs=40),
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One trained and saved student per config, shared by the tests below."""
    out = {}
    for name, config in CONFIGS.items():
        student = make_student(LABELS, config, "cpu")
        student.fit(examples(TRAIN), config)
        out[name] = (student, student.save(tmp_path_factory.mktemp(name)))
    return out


@pytest.mark.parametrize("name", list(CONFIGS))
def test_trains_predicts_and_round_trips(trained, name):
    student, folder = trained[name]
    texts = [t for t, _ in HELD_OUT]
    assert [label for label, _ in student.predict(texts)] == [label for _, label in HELD_OUT]
    loaded = load_student(folder)
    assert loaded.labels == LABELS
    assert np.allclose(loaded.predict_proba(texts), student.predict_proba(texts), atol=1e-6)


@pytest.mark.parametrize("kind", ["ngram", "graph", "fasttext"])
def test_soft_labels_pull_the_student(kind):
    soft = [Example(text=AMBIGUOUS, label="card", source="generated",
                    soft_label={"card": 0.05, "transfer": 0.9, "balance": 0.05})]
    hard = [Example(text=AMBIGUOUS, label="card", source="generated")]
    kd = student_settings(kind=kind, epochs=40, alpha=1.0, temperature=1.0)
    p = {}
    for name, extra in (("soft", soft), ("hard", hard)):
        student = make_student(LABELS, kd, "cpu")
        student.fit(examples(TRAIN) + extra * 5, kd)
        p[name] = student.predict_proba([AMBIGUOUS])[0, LABELS.index("transfer")]
    assert p["soft"] > p["hard"] + 0.3


def test_ngram_hash_is_fixed_across_processes():
    from pgkd.student.kinds.ngram import HashedNgrams, bucket

    assert bucket("w1:card", 2**18) == 571  # crc32: a salted hash() would differ per process
    features = HashedNgrams(2**18, word_n=2, char_n=3)
    assert "w2:my card" in features.grams("My card!") and "c:<ca" in features.grams("card")
    ids, weights = features.encode("card card")
    assert len(ids) == 1 + 1 + 4 and abs(float((weights**2).sum()) - 1) < 1e-6  # card, card card, <ca car ard rd>
    assert len(features.encode("")[0]) == 0


def test_graph_classifies_unseen_words(trained):
    student, folder = trained["graph"]
    probs = student.predict_proba(["zorblax quuxify frobnicate", "", "my card glimmered sideways"])
    assert probs.shape == (3, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert student.predict(["my card glimmered sideways"])[0][0] == "card"
    graph = student.features.graph("zorblax my zorblax card")  # distinct words are nodes; unknown ones read <unk>
    assert graph.x.tolist()[0] == 0 and graph.num_nodes == 3
    assert graph.edge_index.shape[1] == 6 and graph.edge_weight.tolist().count(2.0) == 2  # zorblax-my twice
    assert load_student(folder).features.vocab.words == student.features.vocab.words


def test_graph_vocabulary_is_frozen_after_the_first_fit():
    config = student_settings(kind="graph", epochs=2)
    student = make_student(LABELS, config, "cpu")
    student.fit(examples(TRAIN), config)
    words = list(student.features.vocab.words)
    student.fit(examples(TRAIN + [("brand new words entirely", "card")]), config)
    assert student.features.vocab.words == words and "brand" not in student.features.vocab.ids


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    config = student_settings(epochs=40)
    student = make_student(LABELS, config, "cpu")
    student.fit(examples(TRAIN), config)
    return student, student.save(tmp_path_factory.mktemp("encoder"))


@pytest.mark.parametrize("fmt", ["hf", "onnx", "torchscript"])
@pytest.mark.parametrize("name", ["encoder", "ngram", "graph", "graph-gin", "fasttext"])
def test_exports_predict_as_the_original(request, tmp_path, name, fmt):
    fixture = request.getfixturevalue("encoder" if name == "encoder" else "trained")
    student, folder = fixture if name == "encoder" else fixture[name]
    exported = load_student(export_student(folder, tmp_path / fmt, fmt))
    meta = json.loads((tmp_path / fmt / "student.json").read_text())
    if fmt != "hf":
        assert meta["format"] == fmt and meta["kind"] == f"{student.kind}-{fmt}" and exported.kind == meta["kind"]
    texts = [t for t, _ in HELD_OUT] + ["", "zorblax", " ".join(["card"] * 40)]
    assert exported.labels == LABELS
    assert [label for label, _ in exported.predict(texts)] == [label for label, _ in student.predict(texts)]
    assert np.allclose(exported.predict_proba(texts), student.predict_proba(texts), atol=1e-4)
    if fmt != "hf":
        with pytest.raises(NotImplementedError, match="inference-only"):
            exported.fit(examples(TRAIN), CONFIGS["ngram"])


def test_unknown_export_format_is_refused(trained, tmp_path):
    with pytest.raises(ValueError, match="unknown export format"):
        export_student(trained["ngram"][1], tmp_path / "x", "tflite")


def test_cli_export(trained, tmp_path, capsys):
    import shutil

    from pgkd.cli import main

    shutil.copytree(trained["ngram"][1], tmp_path / "run-1" / "best_student")
    assert main(["export", "run-1", "--format", "onnx", "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out.strip()
    assert out == str(tmp_path / "run-1" / "export-onnx")
    assert load_student(out).predict(["send money to my friend"])[0][0] == "transfer"
    assert main(["export", "run-2", "--format", "onnx", "--runs-dir", str(tmp_path)]) == 2  # no such run
