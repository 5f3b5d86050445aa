"""One scoring round as a Ray Data pipeline: shards are read by tasks (map_batches, one shard each), scored by an
actor pool that loads the checkpoint once per actor (map_batches), and each batch leaves only its candidates and
one summary row, so the pool never gathers anywhere. Shards are read by pgkd rather than `read_json`, since a
single malformed line fails a whole `read_json`, and a bad row here must be counted, named by file and line, and
skipped."""
from __future__ import annotations

import json

import numpy as np
import ray

from pgkd.student.base import StudentSettings
from pgkd.basics.pool_files import PoolShard, read_shard
from pgkd.cluster.placement import scoring_options, torch_device

BATCH_ROWS = 1024  # rows one scoring call gets; it keeps a few dozen of them
READ_CPUS = 0.25  # reading a shard is light next to scoring it
READ_TASKS = 2  # shards read at once: enough to keep the scorers fed; each reading process holds one batch at a time
BLOCK_BYTES = 128 << 10  # about 1,000 short texts
PROBLEMS_PER_BATCH = 20  # bad rows named per batch (all are counted)
COLUMNS = ("id", "text", "score", "probs", "top", "scored", "bad", "skipped", "problems")


def read_shards(shards: dict[str, np.ndarray], skip_ids: frozenset[str]):
    """Rows of the shards in this batch as column batches of BATCH_ROWS: whole columns, never row dicts, which
    cost Ray Data far more per row than reading them."""
    columns: dict[str, list[str]] = {"id": [], "text": [], "bad": []}
    for shard in shards["shard"]:
        for row in read_shard(PoolShard(**json.loads(shard)), skip_ids):
            for name in columns:
                columns[name].append(row[name])
            if len(columns["id"]) == BATCH_ROWS:
                yield {name: np.array(values, dtype=object) for name, values in columns.items()}
                columns = {name: [] for name in columns}
    if columns["id"]:
        yield {name: np.array(values, dtype=object) for name, values in columns.items()}


class ScoreBatch:
    """A Ray Data actor: loads the checkpoint once, then turns each batch into its candidates plus a summary row."""

    def __init__(self, path: str, gpus: float, k: int, strategy: str, balanced: bool, seed: int):
        from pgkd.student.registry import load_student

        self.student = load_student(path, torch_device(gpus))
        self.k, self.strategy, self.balanced, self.seed = k, strategy, balanced, seed

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from pgkd.student.pool_scoring import batch_candidates

        bad = [str(b) for b in batch["bad"] if b]
        good = [i for i, key in enumerate(batch["id"]) if key]
        ids, texts = [str(batch["id"][i]) for i in good], [str(batch["text"][i]) for i in good]
        probs = self.student.predict_proba(texts) if texts else np.zeros((0, len(self.student.labels)))
        self.student.drop_cache()  # a frozen encoder would keep every pool text's embedding
        found = batch_candidates(probs, ids, texts, self.student.labels, self.k, self.strategy, self.balanced,
                                 self.seed)
        rows = [(c.id, c.text, c.score, json.dumps(c.probs), json.dumps(c.top_labels), 0, 0, 0, "") for c in found]
        rows.append(("", "", 0.0, "", "", len(texts), len(bad), len(batch["id"]) - len(good) - len(bad),
                     json.dumps(bad[:PROBLEMS_PER_BATCH])))
        return {name: np.array(values) for name, values in zip(COLUMNS, zip(*rows))}


def scoring_round(shards: list[PoolShard], checkpoint_path: str, student: StudentSettings, k: int, seed: int,
                  skip_ids: frozenset[str]):
    """The round's output batches as they come (numpy dicts of COLUMNS)."""
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the scorer reports progress through the bus; bars would fill its log
    # Blocks of about one batch: a scoring task sends its candidates as soon as a block is done, so the scorer
    # sees progress and a stop within one batch, not once per shard (Ray Data's 128 MiB blocks hold a whole shard).
    ctx.target_max_block_size = BLOCK_BYTES
    dataset = ray.data.from_items([{"shard": json.dumps(s.as_dict())} for s in shards], override_num_blocks=len(shards))
    dataset = dataset.map_batches(read_shards, batch_size=1, batch_format="numpy", fn_kwargs={"skip_ids": skip_ids},
                                  num_cpus=READ_CPUS, compute=ray.data.TaskPoolStrategy(size=READ_TASKS))
    scorers = ray.data.ActorPoolStrategy(size=student.pool_scorers)
    dataset = dataset.map_batches(
        ScoreBatch, batch_size=BATCH_ROWS, batch_format="numpy", compute=scorers,
        fn_constructor_kwargs={"path": checkpoint_path, "gpus": student.gpus, "k": k,
                               "strategy": student.pool_strategy, "balanced": student.pool_balanced, "seed": seed},
        **scoring_options(student.threads, student.gpus))
    yield from dataset.iter_batches(batch_size=None, batch_format="numpy")


def candidates_of(batch: dict[str, np.ndarray]) -> list:
    """The candidate rows of an output batch, as the round's merge takes them."""
    from pgkd.student.pool_scoring import Candidate

    return [Candidate(float(score), str(key), str(text), json.loads(probs), json.loads(top))
            for key, text, score, probs, top in zip(batch["id"], batch["text"], batch["score"], batch["probs"],
                                                    batch["top"]) if key]


def summaries_of(batch: dict[str, np.ndarray]) -> list[tuple[int, int, int, str]]:
    """(scored, bad, skipped, named bad rows as JSON) of each scoring call in an output batch."""
    return [(int(scored), int(bad), int(skipped), str(problems))
            for key, scored, bad, skipped, problems in zip(batch["id"], batch["scored"], batch["bad"],
                                                          batch["skipped"], batch["problems"]) if not key]
