"""The example kind of the README ("Adding a student kind"): trains on a tiny made-up set, predicts texts it has not
seen, and a saved folder predicts as the student did."""
import numpy as np

from pgkd.bus.messages import Example
from pgkd.student.config import student_settings
from pgkd.student.registry import load_student, make_student

TRAIN = {"weather": ["will it rain today", "sunny and warm tomorrow", "snow expected tonight", "is it cold outside"],
         "music": ["play some jazz", "next song please", "turn the music up", "play my rock playlist"]}


def test_fasttext_trains_predicts_and_round_trips(tmp_path):
    settings = student_settings(kind="fasttext", epochs=30)
    student = make_student(sorted(TRAIN), settings, "cpu")
    student.fit([Example(text=t, label=label, source="seed") for label, texts in TRAIN.items() for t in texts],
                settings)
    texts = ["rain or snow today", "play a song"]
    assert [label for label, _ in student.predict(texts)] == ["weather", "music"]
    loaded = load_student(student.save(tmp_path / "fasttext"))
    assert loaded.kind == "fasttext" and np.allclose(loaded.predict_proba(texts), student.predict_proba(texts))
