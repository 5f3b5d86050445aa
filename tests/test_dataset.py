import json

import pytest

from pgkd.basics.dataset import dedupe_texts, load_dataset, sample_per_class
from pgkd.basics.errors import InputError


def test_loads_a_folder(tiny_dataset):
    data = load_dataset(tiny_dataset)
    assert data.label_names == ["card", "transfer"]
    assert len(data.train) == 4 and data.unlabeled == []


def test_unknown_label_names_file_line_field(tiny_dataset):
    with (tiny_dataset / "validation.jsonl").open("a") as f:
        f.write(json.dumps({"text": "hello", "label": "weather"}) + "\n")
    with pytest.raises(InputError) as err:
        load_dataset(tiny_dataset)
    assert err.value.file.endswith("validation.jsonl") and err.value.line == 3 and err.value.field == "label"
    assert "weather" in str(err.value)


def test_empty_text_refused(tiny_dataset):
    (tiny_dataset / "test.jsonl").write_text('{"text": "ok", "label": "card"}\n{"text": "  ", "label": "card"}\n')
    with pytest.raises(InputError) as err:
        load_dataset(tiny_dataset)
    assert err.value.line == 2 and err.value.field == "text"


def test_bad_json_and_missing_split(tiny_dataset):
    (tiny_dataset / "train.jsonl").write_text('{"text": "ok", "label": "card"}\n{oops\n')
    with pytest.raises(InputError) as err:
        load_dataset(tiny_dataset)
    assert err.value.line == 2
    (tiny_dataset / "train.jsonl").unlink()
    with pytest.raises(InputError, match="missing split file train.jsonl"):
        load_dataset(tiny_dataset)


def test_labels_with_descriptions_and_pool(tiny_dataset):
    (tiny_dataset / "labels.json").write_text(json.dumps([{"name": "card", "description": "card delivery"},
                                                          {"name": "transfer"}]))
    (tiny_dataset / "unlabeled.jsonl").write_text('{"text": "a pool text"}\n')
    data = load_dataset(tiny_dataset)
    assert data.labels[0].description == "card delivery" and data.unlabeled[0]["label"] is None


def test_duplicate_labels_refused(tiny_dataset):
    (tiny_dataset / "labels.json").write_text('["card", "card", "transfer"]')
    with pytest.raises(InputError, match="duplicate"):
        load_dataset(tiny_dataset)


def test_sample_per_class_is_reproducible_and_bounded():
    rows = [{"text": f"t{i}", "label": "ab"[i % 2]} for i in range(20)]
    first = sample_per_class(rows, 3, seed=1)
    assert first == sample_per_class(rows, 3, seed=1)
    assert sorted(r["label"] for r in first) == ["a"] * 3 + ["b"] * 3
    assert len(sample_per_class(rows, None, 0)) == 20


def test_dedupe_ignores_case_and_punctuation():
    rows = [{"text": "Hello, world!", "label": "a"}, {"text": "hello world", "label": "a"}, {"text": "x", "label": "a"}]
    assert [r["text"] for r in dedupe_texts(rows)] == ["Hello, world!", "x"]
