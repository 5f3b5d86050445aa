"""What a run starts from, prepared and checked before anything starts: the dataset, the seeds, the steering and
selection halves of validation, the teacher audit's texts, the simulated teacher's reservoir and the unlabelled
pool. Every problem is an InputError naming file, line and field."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from pgkd.basics.dataset import dedupe_texts, load_dataset, overlap, rows_not_taken, sample_per_class, split_per_class
from pgkd.basics.errors import InputError
from pgkd.basics.pool_files import plan_shards, pool_files, text_id
from pgkd.cluster.cpu import cpu_info, dtype_refusal
from pgkd.config import RunConfig
from pgkd.place import RunPlace
from pgkd.teacher.audit import audit_sample
from pgkd.teacher.config import teacher_kind

log = logging.getLogger("pgkd.driver")
DEFAULT_AUDIT_PER_CLASS = 5


def prepare_inputs(config: RunConfig):
    """Load and check the dataset; choose the seeds. Raises InputError naming file, line and field."""
    from pgkd.launch import RunInputs

    check_engine_dtype(config)
    data = load_dataset(config.dataset.path)
    seeds = dedupe_texts(sample_per_class(data.train, config.dataset.seeds_per_class, config.dataset.sample_seed))
    missing = sorted(set(data.label_names) - {row["label"] for row in seeds})
    if missing:
        raise InputError(f"labels with no train example to seed from: {missing[:10]}",
                         file=str(Path(config.dataset.path) / "train.jsonl"))
    shared = overlap(seeds, data.validation + data.test)
    if shared:
        log.warning("%d of %d seed texts are also validation or test texts (%s): scores will read high",
                    shared, len(seeds), Path(config.dataset.path) / "train.jsonl")
    validation = sample_per_class(data.validation, _per_class_cap(config, data), config.dataset.sample_seed)
    steering, selection = split_per_class(validation, config.dataset.selection_share, config.dataset.sample_seed)
    protected = [row["text"] for row in data.validation + data.test]
    pool = choose_pool(config, data, seeds, protected) if in_memory_pool(config) else []
    reservoir = choose_reservoir(config, data, seeds, protected) if teacher_kind(config.teacher).needs_reservoir else []
    inputs = RunInputs(labels=[{"name": l.name, "description": l.description} for l in data.labels], seeds=seeds,
                       validation=steering, selection=selection, protected_texts=protected,
                       task=config.dataset.task, pool=[row["text"] for row in pool],
                       pool_gold=[row.get("label") for row in pool], reservoir=reservoir,
                       audit=choose_audit(config, steering, data),
                       protected_ids=sorted({text_id(t) for t in protected + [row["text"] for row in seeds]}))
    if config.teacher.pool_labelling and config.dataset.pool:
        files = pool_files(config.dataset.pool)  # missing, unknown or empty files are refused here
        inputs.pool_files = [str(f) for f in files]
        inputs.pool_shards = [s.as_dict() for s in plan_shards(files, config.dataset.pool_shard_rows)]
    return data, inputs


def in_memory_pool(config: RunConfig) -> bool:
    """unlabeled.jsonl or pool_from_train: read whole, capped at max_pool, written to the run folder (prepare_pool)."""
    return config.teacher.pool_labelling and not config.dataset.pool


def prepare_pool(config: RunConfig, inputs, run_dir: Path, place: RunPlace | None = None) -> None:
    """An in-memory pool becomes the run folder's pool.jsonl, scored like any pool file; in run storage by URI,
    the scorers on other nodes read it from there."""
    if not inputs.pool:
        return
    path = run_dir / "pool.jsonl"
    path.write_text("".join(json.dumps({"text": text}) + "\n" for text in inputs.pool))
    shards = [s.as_dict() for s in plan_shards([path.resolve()], config.dataset.pool_shard_rows)]
    where = str(path.resolve())
    if place is not None and place.remote:
        place.publish(path.name)
        where = place.stored(path.name)
        shards = [shard | {"file": where} for shard in shards]
    inputs.pool_files, inputs.pool_shards = [where], shards


def check_engine_dtype(config: RunConfig) -> None:
    """A CPU teacher engine on this machine (a local cluster) in a dtype its CPU cannot run is refused now, not
    minutes later inside the engine. On a joined cluster each teacher checks its own node when it starts."""
    t = config.teacher
    dtype = t.in_process_dtype()
    if dtype is None or not t.replicas or t.gpus_per_replica or ray_address(config) != "local":
        return
    refusal = dtype_refusal(dtype, cpu_info())
    if refusal:
        raise InputError(refusal, field="teacher.dtype")


def choose_audit(config: RunConfig, steering: list[dict], data) -> list[dict]:
    """The teacher audit's texts: audit_per_class steering texts of each class (never a selection text). A
    steering part too small for it is refused now, with the numbers."""
    t = config.teacher
    if not t.audited or not t.replicas:
        return []
    counts = {label.name: 0 for label in data.labels}
    for row in steering:
        counts[row["label"]] += 1
    per_class = t.audit_per_class or max(1, min(DEFAULT_AUDIT_PER_CLASS, *counts.values()))
    short = {label: n for label, n in counts.items() if n < per_class}
    if short:
        shown = ", ".join(f"'{label}' {n}" for label, n in list(short.items())[:5])
        raise InputError(f"the teacher audit needs teacher.audit_per_class={per_class} steering validation "
                         f"texts per class, and {len(short)} of {len(counts)} classes have fewer ({shown}; the "
                         f"steering part is the validation texts kept by dataset.max_validation="
                         f"{config.dataset.max_validation} minus the dataset.selection_share="
                         f"{config.dataset.selection_share:g} held out). Lower teacher.audit_per_class, raise "
                         f"dataset.max_validation, or set teacher.audit: false",
                         file=str(Path(config.dataset.path) / "validation.jsonl"), field="teacher.audit_per_class")
    return audit_sample(steering, per_class, t.audit_max, config.dataset.sample_seed)


def choose_reservoir(config: RunConfig, data, seeds: list[dict], protected: list[str]) -> list[dict]:
    """The hidden texts of a teacher kind that needs_reservoir (the simulated one): the labelled train texts the
    seeds did not take (never a validation or test text). Students see them only through that teacher."""
    rows = rows_not_taken(data.train, [row["text"] for row in seeds] + protected)
    if not rows:
        raise InputError(f"teacher.backend '{config.teacher.backend}' needs labelled train texts left after "
                         f"seeding, and dataset.seeds_per_class={config.dataset.seeds_per_class} took them all",
                         file=str(Path(config.dataset.path) / "train.jsonl"), field="teacher.backend")
    return rows


def choose_pool(config: RunConfig, data, seeds: list[dict], protected: list[str]) -> list[dict]:
    """The unlabelled pool: unlabeled.jsonl, or the train texts left after seeding (labels kept aside only to
    score the teacher's pool labels in the report). Never a seed, validation or test text; capped at random."""
    import random

    rows = rows_not_taken(data.train if config.dataset.pool_from_train else data.unlabeled,
                          [row["text"] for row in seeds] + protected)
    cap = config.dataset.max_pool
    if cap is not None and len(rows) > cap:
        rows = random.Random(config.dataset.sample_seed).sample(rows, cap)
    if not rows:
        source = "train.jsonl" if config.dataset.pool_from_train else "unlabeled.jsonl"
        raise InputError("teacher.pool_labelling is on but the pool is empty", file=str(Path(config.dataset.path) / source))
    return rows


def _per_class_cap(config: RunConfig, data) -> int | None:
    cap = config.dataset.max_validation
    return None if cap is None else max(1, cap // len(data.labels))


def ray_address(config: RunConfig) -> str:
    """Where the driver's ray.init goes: ray.address; else, under `ray job submit`, the job's cluster (its
    supervisor sets RAY_ADDRESS to the GCS address); else "local", a new local cluster, even where a `ray start`
    cluster runs on this machine (a bare ray.init() would join that one). An http:// RAY_ADDRESS is a dashboard
    URL for the jobs CLI, not a cluster to join."""
    if config.ray.address:
        return config.ray.address
    env = os.environ.get("RAY_ADDRESS", "")
    if env and not env.startswith(("http://", "https://")):
        return env
    return "local"
