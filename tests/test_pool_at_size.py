"""The pool as files of any size (issue 14): stable ids, shards that cover every line once, bad rows counted and
named, each strategy's choice when a pool is scored batch by batch, the rotation of shards over rounds, and one
round on Ray Data with a real saved student."""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pgkd.config import RunConfig
from pgkd.basics.errors import InputError
from pgkd.basics.pool_files import plan_shards, pool_files, read_shard, text_id
from pgkd.driver import prepare_inputs
from pgkd.student.active import most_uncertain
from pgkd.student.pool_rounds import RoundTally, exhausted, next_shards, round_due
from pgkd.student.pool_scoring import RoundCandidates, batch_candidates

LABELS = ["a", "b", "c"]


def write_jsonl(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_ids_are_stable_hashes_of_the_normalized_text():
    assert text_id("Where is my card?") == text_id("  where IS my card ") != text_id("where is my cash")
    assert len(text_id("x")) == 16


def test_shards_cover_every_line_once_and_bad_rows_are_named_by_file_and_line(tmp_path):
    lines = [json.dumps({"text": f"text number {i}"}) for i in range(10)]
    lines[3] = "{not json"
    lines[6] = json.dumps({"text": ""})
    lines[8] = ""  # a blank line: skipped, not bad
    path = write_jsonl(tmp_path / "pool.jsonl", lines)
    shards = plan_shards(pool_files([path]), rows=4)
    assert [(s.first_line, s.rows) for s in shards] == [(1, 4), (5, 4), (9, 2)]
    rows = [row for shard in shards for row in read_shard(shard)]
    good = [r["text"] for r in rows if r["id"]]
    assert good == [f"text number {i}" for i in (0, 1, 2, 4, 5, 7, 9)]
    assert [r["bad"] for r in rows if r["bad"]] == [f"{path}:4: not valid JSON: Expecting property name enclosed "
                                                    f"in double quotes", f"{path}:7: text is missing or empty"]


def test_protected_texts_are_left_out_without_counting_as_bad(tmp_path):
    path = write_jsonl(tmp_path / "pool.jsonl", [json.dumps({"text": t}) for t in ("keep me", "A seed text!")])
    rows = list(read_shard(plan_shards([path], 10)[0], frozenset({text_id("a seed text")})))
    assert [(r["text"], bool(r["id"]), r["bad"]) for r in rows] == [("keep me", True, ""), ("A seed text!", False, "")]


def test_parquet_pools_shard_by_row_groups_and_count_null_texts(tmp_path):
    path = tmp_path / "pool.parquet"
    table = pa.table({"text": [f"row {i}" if i != 2 else None for i in range(7)], "other": list(range(7))})
    pq.write_table(table, path, row_group_size=3)
    shards = plan_shards(pool_files([tmp_path]), rows=3)
    assert [(s.start, s.end, s.first_line, s.rows) for s in shards] == [(0, 1, 1, 3), (1, 2, 4, 3), (2, 3, 7, 1)]
    rows = [row for shard in shards for row in read_shard(shard)]
    assert [r["text"] for r in rows if r["id"]] == ["row 0", "row 1", "row 3", "row 4", "row 5", "row 6"]
    assert [r["bad"] for r in rows if r["bad"]] == [f"{path}:3: text is missing or empty"]
    pq.write_table(pa.table({"body": ["x"]}), tmp_path / "wrong.parquet")
    with pytest.raises(InputError, match="no 'text' column"):
        plan_shards([tmp_path / "wrong.parquet"], 3)


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.jsonl", "pool file or folder not found"),
    (lambda d: write_jsonl(d / "pool.csv", ["text"]), "unknown pool file type '.csv'"),
    (lambda d: (d / "empty_dir").mkdir() or d / "empty_dir", "folder holds no .jsonl or .parquet file"),
    (lambda d: write_jsonl(d / "blank.jsonl", ["", "  "]), "the pool is empty"),
])
def test_a_missing_unknown_or_empty_pool_is_refused_at_config_load(tiny_dataset, tmp_path, make, message):
    config = RunConfig.model_validate({"dataset": {"path": str(tiny_dataset), "pool": str(make(tmp_path))},
                                       "teacher": {"pool_labelling": True}})
    with pytest.raises(InputError, match=message) as caught:
        prepare_inputs(config)
    assert caught.value.field == "dataset.pool"


def test_pool_files_and_pool_from_train_are_one_or_the_other(tiny_dataset):
    with pytest.raises(ValueError, match="dataset.pool or dataset.pool_from_train"):
        RunConfig.model_validate({"dataset": {"path": str(tiny_dataset), "pool": "x.jsonl", "pool_from_train": True}})


def test_a_pool_folder_becomes_shards_and_protected_ids_for_the_scorer(tiny_dataset, tmp_path):
    folder = tmp_path / "pool"
    folder.mkdir()
    write_jsonl(folder / "b.jsonl", [json.dumps({"text": f"pool text {i}"}) for i in range(5)])
    write_jsonl(folder / "a.jsonl", [json.dumps({"text": "card still not here"})])  # a validation text
    config = RunConfig.model_validate({"dataset": {"path": str(tiny_dataset), "pool": str(folder),
                                                   "pool_shard_rows": 2}, "teacher": {"pool_labelling": True}})
    _, inputs = prepare_inputs(config)
    assert [p.rsplit("/", 1)[1] for p in inputs.pool_files] == ["a.jsonl", "b.jsonl"]
    assert len(inputs.pool_shards) == 4 and inputs.pool == []  # nothing of the pool is held
    assert text_id("card still not here") in inputs.protected_ids


def fixed_pool(n=60, seed=3):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet([0.6, 0.6, 0.6], size=n)
    return [f"id{i}" for i in range(n)], [f"text {i}" for i in range(n)], probs


def scored_in_batches(ids, texts, probs, k, strategy, balanced=False, batch=7, labelled=frozenset()):
    round_ = RoundCandidates(k, strategy, balanced, set(labelled))
    for start in range(0, len(ids), batch):
        part = slice(start, start + batch)
        round_.add(batch_candidates(probs[part], ids[part], texts[part], LABELS, k, strategy, balanced, seed=1))
    return round_


@pytest.mark.parametrize("strategy", ["margin", "entropy", "diverse_margin"])
def test_scoring_in_batches_picks_what_scoring_the_whole_pool_picks(strategy):
    ids, texts, probs = fixed_pool()
    picked = [c.id for c in scored_in_batches(ids, texts, probs, 5, strategy).pick(5, strategy, seed=1)]
    whole = most_uncertain(probs, LABELS, 5, strategy, seed=1)
    assert sorted(picked) == sorted(ids[i] for i, _, _ in whole)


def test_random_draws_are_fixed_by_text_id_and_seed_whatever_the_batches():
    ids, texts, probs = fixed_pool()
    one = [c.id for c in scored_in_batches(ids, texts, probs, 6, "random", batch=5).pick(6, "random", 1)]
    other = [c.id for c in scored_in_batches(ids, texts, probs, 6, "random", batch=13).pick(6, "random", 1)]
    assert one == other and len(set(one)) == 6


def test_balanced_selection_takes_each_predicted_class_in_turn():
    """A pool where class a dominates the uncertain rows: plain margin offers only a-rows, balanced one of each."""
    ids = [f"id{i}" for i in range(12)]
    probs = np.array([[0.5, 0.49, 0.01]] * 9 + [[0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.05, 0.9, 0.05]])
    plain = scored_in_batches(ids, ids, probs, 3, "margin").pick(3, "margin", 1)
    balanced = scored_in_batches(ids, ids, probs, 3, "margin", balanced=True).pick(3, "margin", 1)
    assert {c.top_labels[0] for c in plain} == {"a"}
    assert sorted(c.top_labels[0] for c in balanced) == ["a", "b", "c"]
    assert {c.id for c in balanced} >= {"id9", "id10"} or {c.id for c in balanced} >= {"id10", "id11"}


def test_labelled_and_repeated_texts_are_never_candidates():
    ids, texts, probs = fixed_pool(20)
    best = [c.id for c in scored_in_batches(ids, texts, probs, 3, "margin").pick(3, "margin", 1)]
    again = scored_in_batches(ids + ids, texts + texts, np.vstack([probs, probs]), 3, "margin", labelled={best[0]})
    picked = [c.id for c in again.pick(3, "margin", 1)]
    assert best[0] not in picked and len(set(picked)) == 3


def test_rounds_rotate_through_a_large_pool_and_take_a_small_one_whole():
    assert next_shards(3, 0, 5) == ([0, 1, 2], 0)
    assert next_shards(10, 0, 4) == ([0, 1, 2, 3], 4)
    assert next_shards(10, 8, 4) == ([8, 9, 0, 1], 2)
    assert round_due(None, None, 0) is None
    assert round_due("s@v1", None, 5).startswith("new best")
    assert round_due("s@v1", "s@v1", 5) is None and round_due("s@v1", "s@v1", 0).startswith("the teachers took")
    assert round_due("s@v1", "s@v1", 0, exhausted=True) is None and round_due("s@v2", "s@v1", 0, True)
    assert not exhausted(0, 2, 5) and not exhausted(2, 2, 5) and exhausted(3, 2, 5) and exhausted(1, 5, 5)


def test_a_round_tally_counts_summaries_and_returns_the_named_rows():
    tally = RoundTally()
    assert tally.add_summary(100, 2, 1, json.dumps(["f:3: bad", "f:9: bad"])) == ["f:3: bad", "f:9: bad"]
    tally.add_summary(50, 0, 0, "[]")
    assert (tally.scored, tally.bad, tally.skipped, len(tally.problems)) == (150, 2, 1, 2)


@pytest.fixture(scope="module")
def local_ray():
    import os

    import ray

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray.init(address="local", num_cpus=3, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_a_round_on_ray_data_scores_every_good_row_and_offers_what_the_whole_pool_would(tmp_path, local_ray):
    """Three shards, a malformed line and a protected text: the round's summaries count each, and its candidates
    are the ones the same checkpoint picks when it scores the pool's good texts at once."""
    from pgkd.actors.pool_data import candidates_of, scoring_round, summaries_of
    from pgkd.student.config import student_settings
    from pgkd.bus.messages import Example
    from pgkd.student.registry import load_student, make_student

    config = student_settings(name="ngram", kind="ngram", epochs=30, pool_queries=4, pool_strategy="margin")
    student = make_student(LABELS, config, "cpu")
    student.fit([Example(text=t, label=l, source="seed") for t, l in
                 [("apples and pears", "a"), ("buses and trains", "b"), ("cats and dogs", "c")] * 3], config)
    folder = student.save(tmp_path / "student")
    texts = [f"{x} and {y} number {i}" for i, (x, y) in
             enumerate([("apples", "trains"), ("cats", "pears"), ("dogs", "buses"), ("apples", "cats")] * 6)]
    lines = [json.dumps({"text": t}) for t in texts] + ["{broken", json.dumps({"text": "cats and dogs"})]
    shards = plan_shards([write_jsonl(tmp_path / "pool.jsonl", lines)], rows=10)
    round_ = RoundCandidates(4, "margin", False, set())
    tally = RoundTally()
    for batch in scoring_round(shards, str(folder), config, 4, 0, frozenset({text_id("cats and dogs")})):
        round_.add(candidates_of(batch))
        for row in summaries_of(batch):
            tally.add_summary(*row)
    assert (tally.scored, tally.bad, tally.skipped) == (24, 1, 1)
    assert tally.problems[0].endswith(":25: not valid JSON: Expecting property name enclosed in double quotes")
    probs = load_student(folder, "cpu").predict_proba(texts)
    whole = sorted(u for _, u, _ in most_uncertain(probs, LABELS, 4, "margin"))  # texts of one pattern tie
    assert sorted(c.score for c in round_.pick(4, "margin", 0)) == pytest.approx(whole)


def test_a_scoring_batch_returns_its_candidates_and_one_summary_and_keeps_no_embeddings():
    """ScoreBatch without Ray: bad and protected rows are counted, not scored; a student that caches embeddings
    (the frozen encoder) is told to forget them, so an actor scoring a million texts holds none of them."""
    from pgkd.actors.pool_data import ScoreBatch

    class Student:
        labels, dropped = LABELS, 0

        def predict_proba(self, texts):
            return np.array([[0.5, 0.4, 0.1] if "unsure" in t else [0.9, 0.05, 0.05] for t in texts])

        def drop_cache(self):
            self.dropped += 1

    scorer = ScoreBatch.__new__(ScoreBatch)
    scorer.student, scorer.k, scorer.strategy, scorer.balanced, scorer.seed = Student(), 1, "margin", False, 0
    batch = {"id": np.array(["i1", "i2", "", ""], dtype=object), "text": np.array(["sure", "unsure", "", ""]),
             "bad": np.array(["", "", "f:3: not valid JSON", ""], dtype=object)}
    out = scorer(batch)
    assert list(out["id"]) == ["i2", ""] and list(out["text"])[0] == "unsure"
    assert (out["scored"][-1], out["bad"][-1], out["skipped"][-1]) == (2, 1, 1)
    assert json.loads(out["problems"][-1]) == ["f:3: not valid JSON"] and scorer.student.dropped == 1
