"""The teacher's batch: plan from the newest report, generate, parse, filter, soft-label. No Ray here."""
from __future__ import annotations

import random
import time
from dataclasses import dataclass

from pgkd.basics.dataset import Label
from pgkd.bus.messages import EvalReport, Example, TeacherAudit
from pgkd.teacher.audit import LabelPolicy, audit_candidates, summarize
from pgkd.teacher.backends.base import Completion, SamplingSpec, TeacherBackend
from pgkd.teacher.filters import NoveltyFilter
from pgkd.teacher.formats import resolve_format
from pgkd.teacher.labeler import UNSCORABLE, Scores, SoftLabeler
from pgkd.teacher.parsing import parse_json_reply, parse_reply
from pgkd.teacher.planner import plan_for
from pgkd.teacher.prompts import ClassTask, PromptBuilder, examples_schema
from pgkd.teacher.seam import BatchStats, BatchTeacher, PoolText
from pgkd.teacher.settings import LLMTeacherSettings


AUDIT_FIRST_CHUNK = 8  # a first chunk that measures the engine's pace
AUDIT_CHUNK = 32  # audit texts per engine call after it: batched enough for the engine, checked often enough


@dataclass
class Draft:
    text: str
    task: ClassTask
    source: str = "generated"  # or "augmented": a reworded seed


class Teacher(BatchTeacher):
    """The LLM teacher: it prompts its backend, parses and filters the replies and labels them with the backend's
    probabilities."""

    def __init__(self, backend: TeacherBackend, labels: list[Label], seeds: list[dict], protected_texts: list[str],
                 config: LLMTeacherSettings, name: str, task: str, seed: int = 0):
        self.backend, self.config, self.name = backend, config, name
        self.label_names = [label.name for label in labels]
        self.rng = random.Random(seed)
        self.demos = demos_by_label(seeds, self.rng)
        self.format = resolve_format(config, backend.capabilities)
        self.prompts = PromptBuilder(labels, self.demos, task, config.templates_dir, self.format.prompt_format)
        self.novelty = NoveltyFilter([s["text"] for s in seeds], protected_texts, config.near_duplicate_threshold)
        self.labeler = SoftLabeler(backend, self.prompts, self.label_names, config.soft_label_candidates, self.rng)
        self.batches = 0
        self.policy = LabelPolicy.from_settings(config)

    def audit(self, rows: list[dict], budget_s: float | None = None) -> TeacherAudit:
        """Label audit texts of known label among as many candidates as the teacher's checks use (teacher/audit.py),
        in chunks, in order, until the next chunk would not fit in budget_s (the first chunk always runs)."""
        started = time.monotonic()
        sets = audit_candidates(rows, self.label_names, self.config)
        probs: list[dict | None] = []
        while len(probs) < len(rows):
            chunk = AUDIT_CHUNK if probs else min(AUDIT_CHUNK, AUDIT_FIRST_CHUNK)
            spent = time.monotonic() - started
            if probs and budget_s is not None and spent + spent / len(probs) * chunk > budget_s:
                break
            batch = slice(len(probs), len(probs) + chunk)
            scores = self.labeler.score([row["text"] for row in rows[batch]], sets[batch])
            probs += [p if isinstance(p, dict) else None for p in scores]
        golds = [row["label"] for row in rows[:len(probs)]]
        tops = [max(p, key=p.get) if p else None for p in probs]
        audit = summarize(golds, tops, [p[t] if p else None for p, t in zip(probs, tops)],
                          max(map(len, sets), default=0), self.config.target_precision)
        return audit.model_copy(update={"seconds": round(time.monotonic() - started, 2),
                                        "prompt_format": self.format.prompt_format,
                                        "structured": self.structured, "decisions": list(self.format.notes)})

    @property
    def structured(self) -> bool:
        """Structured generation, while the backend still holds replies to a schema (an endpoint may stop)."""
        return self.format.structured and self.backend.capabilities.json_schema

    def describe(self) -> list[str]:
        return [f"prompt format {self.format.prompt_format}, structured generation {self.structured}"]

    def notes(self) -> list[str]:
        return list(self.format.notes)

    @property
    def model_name(self) -> str:
        return self.backend.model_name

    def close(self) -> None:
        self.backend.close()

    @property
    def writes_unprompted(self) -> bool:
        return self.config.generate or self.config.augmentation

    def write_batch(self, report: EvalReport | None, batch: int | None = None,
                    pool: list[PoolText] = ()) -> tuple[list[Example], BatchStats]:
        """Replicas sharing one report draw different batch numbers, so they never write the same request twice."""
        started, stats = time.monotonic(), BatchStats()
        c = self.config
        number = self.batches if batch is None else batch
        plan_rng = random.Random(f"{c.seed}:{number}")
        plan = plan_for(c, self.label_names, report, number, plan_rng)
        drafts = self._generate(plan, stats, plan_rng)
        stats.generate_seconds = time.monotonic() - started
        examples = self._label(drafts, stats, report)
        examples = self._label_pool(list(pool), stats, report) + examples
        stats.kept = len(examples)  # what the batch publishes, pool labels included: the archive counts the same
        stats.label_seconds = time.monotonic() - started - stats.generate_seconds
        stats.busy_seconds = time.monotonic() - started
        self.batches += 1
        return examples, stats

    def _generate(self, plan: list[ClassTask], stats: BatchStats, rng: random.Random) -> list[Draft]:
        """The batch's requests: new texts per planned class (mode `generate`; structured, several per request as
        JSON) and rewordings of its seeds (mode `augmentation`), one backend call per reply shape."""
        requests = []  # (task, source, prompt, count); the prefix cache makes repeated prompts cheap
        if self.config.generate:
            for task in plan:
                requests += self._generation_requests(task)
        if self.config.augmentation:
            for task in plan:
                seeds = self.demos.get(task.label, [])
                for text in rng.sample(seeds, min(len(seeds), self.config.augment_per_class)):
                    requests.append((task, "augmented", self.prompts.paraphrase_prompt(task.label, text), None))
        drafts = []
        for count in dict.fromkeys(count for *_, count in requests):
            shaped = [r for r in requests if r[3] == count]
            completions = self.backend.generate([prompt for _, _, prompt, _ in shaped], self._spec(count))
            for (task, source, _, _), completion in zip(shaped, completions):
                drafts += self._read(completion, task, source, count, stats)
        return drafts

    def _generation_requests(self, task: ClassTask) -> list[tuple]:
        if not self.structured:
            return [(task, "generated", self.prompts.generation_prompt(task, self.config.demos_per_class), None)] \
                * task.count
        per = self.config.examples_per_request
        counts = [per] * (task.count // per) + ([task.count % per] if task.count % per else [])
        return [(task, "generated", self.prompts.generation_prompt(task, self.config.demos_per_class, n), n)
                for n in counts]

    def _spec(self, count: int | None) -> SamplingSpec:
        """One text per reply (cut at its first line), or `count` texts as JSON held to a schema."""
        c = self.config
        if count is None:
            stop = ("\n",) if self.format.prompt_format == "completion" else ()
            return SamplingSpec(n=1, temperature=c.temperature, top_p=c.top_p, max_tokens=c.max_new_tokens, stop=stop)
        return SamplingSpec(n=1, temperature=c.temperature, top_p=c.top_p, stop=(),
                            max_tokens=count * (c.max_new_tokens + 6) + 16, json_schema=examples_schema(count))

    def _read(self, completion: Completion, task: ClassTask, source: str, count: int | None,
              stats: BatchStats) -> list[Draft]:
        if completion.failed:
            stats.failed_requests += 1
            return []
        stats.prompt_tokens += completion.prompt_tokens
        stats.completion_tokens += completion.completion_tokens
        drafts = []
        for raw in completion.texts or [None]:
            if count is None:
                stats.generated += 1
                stats.augmented += source == "augmented"
                drafts.extend(self._accept(raw, task, source, stats))
                continue
            parsed = parse_json_reply(raw, completion.structured)
            if parsed.reason:  # the whole reply is lost, counted as the texts it was asked for
                stats.generated += count
                stats.dropped[parsed.reason] += count
            for text in parsed.texts:
                stats.generated += 1
                drafts.extend(self._accept(text, task, source, stats))
        return drafts

    def _accept(self, raw: str | None, task: ClassTask, source: str, stats: BatchStats) -> list[Draft]:
        parsed = parse_reply(raw, self.config.min_words, self.config.max_words)
        reason = parsed.reason or self.novelty.check(parsed.text)
        if reason:
            stats.dropped[reason] += 1
            return []
        return [Draft(parsed.text, task, source)]

    def _label_pool(self, pool: list[PoolText], stats: BatchStats, report: EvalReport | None) -> list[Example]:
        """Label pool texts by the teacher's top label among the student's guesses (plus random candidates);
        a top label below min_confidence is dropped and counted as pool_low_confidence."""
        if not pool:
            return []
        stats.pool_offered += len(pool)
        sets = [self.labeler.candidates(p.guesses[0], p.guesses[1:]) for p in pool]
        examples = []
        for item, probs in zip(pool, self.labeler.score([p.text for p in pool], sets)):
            if not isinstance(probs, dict):  # the reason it has none: unscored, unscorable
                stats.dropped[f"pool_{probs}"] += 1
                continue
            label = max(probs, key=probs.get)
            if probs[label] < self.policy.threshold(label):
                stats.dropped["pool_low_confidence"] += 1
                continue
            soft = kd_target(probs, label, item.guesses) if self.policy.soft_labels else None
            examples.append(Example(text=item.text, label=label, source="pool", candidate_probs=probs, soft_label=soft,
                                    teacher=f"{self.name}:{self.backend.model_name}",
                                    report_version=report.key if report else None))
        stats.pool_labelled += len(examples)
        return examples

    def _label(self, drafts: list[Draft], stats: BatchStats, report: EvalReport | None) -> list[Example]:
        if not drafts:
            return []
        # One candidate set per class task: its content-free calibration is then scored once.
        per_task = {id(d.task): self.labeler.candidates(d.task.label, d.task.contrast) for d in drafts}
        sets = [per_task[id(d.task)] for d in drafts]
        soft = self.labeler.score([d.text for d in drafts], sets)
        version = report.key if report else None
        examples = []
        for draft, scores in zip(drafts, soft):
            label = self._checked_label(draft.task.label, scores, stats)
            probs = scores if isinstance(scores, dict) else None  # unscored yet kept: label_check off
            if label is not None:
                examples.append(Example(text=draft.text, label=label, source=draft.source,
                                        soft_label=kd_target(probs, label, draft.task.contrast)
                                        if self.policy.soft_labels else None,
                                        candidate_probs=probs, teacher=f"{self.name}:{self.backend.model_name}",
                                        report_version=version, intended_label=draft.task.label))
        return examples

    def _checked_label(self, intended: str, probs: Scores, stats: BatchStats) -> str | None:
        """The label consistency check: the teacher's own top label must be the one it was asked to write."""
        if probs == UNSCORABLE:  # never kept, even unchecked: its scores are not numbers
            stats.dropped[UNSCORABLE] += 1
            return None
        if not isinstance(probs, dict):
            stats.dropped[probs] += 1
            return None if self.config.label_check != "off" else intended
        top = max(probs, key=probs.get)
        if self.config.label_check == "off":
            return intended
        if top == intended and probs[intended] < self.policy.threshold(intended):
            stats.dropped["low_confidence"] += 1
            return None
        if top == intended:
            return intended
        if self.config.label_check == "relabel":
            stats.relabelled += 1
            return top
        stats.dropped["label_mismatch"] += 1
        return None


def kd_target(probs: dict[str, float] | None, label: str, related: list[str]) -> dict[str, float] | None:
    """The soft label for distillation: the teacher's probabilities over the label and its confusions only.
    Mass on the random candidates (there only to test the label) is noise a student should not learn:
    measured on banking77, keeping it cut validation macro-F1 from 0.83 to 0.78."""
    if not probs:
        return None
    kept = {k: v for k, v in probs.items() if k == label or k in related}
    total = sum(kept.values())
    return {k: v / total for k, v in kept.items()} if total > 0 else None


def demos_by_label(seeds: list[dict], rng: random.Random) -> dict[str, list[str]]:
    demos: dict[str, list[str]] = {}
    for row in seeds:
        demos.setdefault(row["label"], []).append(row["text"])
    for texts in demos.values():
        rng.shuffle(texts)
    return demos
