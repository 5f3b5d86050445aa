"""The teacher audit: how well the teacher labels texts whose labels are known, before it is trusted with any.

The teacher labels a stratified sample of steering validation texts among the same number of candidate labels its
own checks use (the gold label and random others; every label when there are that few), exactly as it scores its
generated and pool texts. From its calibrated top probabilities the audit gives accuracy, macro-F1, per-class F1,
expected calibration error, a reliability table, and the lowest confidence whose labels reach a target precision:
the run's min_confidence unless the user set one.

`run_audit` is the one place the run's labelling policy is decided from that (a run's auditing replica and `pgkd
audit` both call it); every replica's teacher holds the decision as a `LabelPolicy`.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from pgkd.bus.messages import TeacherAudit

BINS = 10
MIN_KEPT = 5  # a threshold must keep at least this many audit labels: fewer is no evidence of precision
DEFAULT_MIN_CONFIDENCE = 0.8  # without an audit (turned off, or a simulated teacher)
SAFEST_CONFIDENCE = 0.95  # a replica writing before the run's audit is decided keeps only its surest labels
MAX_KD_ALPHA = 0.5  # the KD weight for a perfectly calibrated teacher; the hard label keeps at least half
AUDITOR = 0  # the replica that audits, once per run; the others wait for its decision on the bus
DEFAULT_BUDGET_S = 60.0  # the audit's cost at most, or BUDGET_SHARE of the run's time budget if that is more
BUDGET_SHARE = 0.05
LABELLING_SHARE = 0.8  # of the budget, for the teacher's labels; the rest for the seeds-only student's


@dataclass(frozen=True)
class LabelPolicy:
    """What a teacher's labels must reach and where they go: the run's decision, held by each replica's teacher
    as its own state (never written back into its settings)."""

    min_confidence: float
    pool_labelling: bool  # the actor claims pool texts for this teacher only while it is on
    soft_labels: bool = True
    label_thresholds: dict[str, float] = field(default_factory=dict)  # per label given, where the audit saw it

    def threshold(self, label: str) -> float:
        """The confidence a label of this kind needs: the audit's own for it where it measured one."""
        return self.label_thresholds.get(label, self.min_confidence)

    @classmethod
    def from_settings(cls, settings) -> "LabelPolicy":
        """Before (or without) an audit: the configured min_confidence (DEFAULT_MIN_CONFIDENCE unset)."""
        return cls(effective_min_confidence(settings.min_confidence), settings.pool_labelling)

    def before_audit(self) -> "LabelPolicy":
        """While another replica audits: write, but keep only labels of at least SAFEST_CONFIDENCE, hard labels
        only, and no pool texts (whether the teacher may label them is the audit's to say)."""
        return replace(self, min_confidence=max(self.min_confidence, SAFEST_CONFIDENCE), pool_labelling=False,
                       soft_labels=False)

    def following(self, audit: TeacherAudit) -> "LabelPolicy":
        """The decision a published audit carries (decide). It can turn pool labelling off, never on: a run
        resumed with pool labelling off keeps it off under an audit decided before."""
        return replace(self, min_confidence=audit.min_confidence, soft_labels=audit.soft_labels,
                       pool_labelling=self.pool_labelling and audit.pool_labelling,
                       label_thresholds={label: t["threshold"] for label, t in audit.label_thresholds.items()})


@dataclass(frozen=True)
class SeedsOnly:
    """A student trained on the seeds alone and its probabilities on the audit texts. Its caller finds it (a
    run's checkpoint, or one trained by `pgkd audit`): the teacher role never loads a student."""

    name: str
    labels: list[str]
    probabilities: Any  # one row per audit text, one column per label in `labels`


def audit_budget(configured: float | None, time_budget_s: float | None) -> float:
    """What the audit may cost: the configured teacher.audit_budget_s, else DEFAULT_BUDGET_S or BUDGET_SHARE of
    the run's time budget, whichever is more."""
    if configured is not None:
        return configured
    return max(DEFAULT_BUDGET_S, BUDGET_SHARE * (time_budget_s or 0.0))


def run_audit(teacher, rows: list[dict], settings, seeds_only: Callable[[float], SeedsOnly | None],
              budget_s: float) -> TeacherAudit:
    """The one place the run's labelling policy is decided, for a run's auditing replica and `pgkd audit` alike:
    the teacher labels the audit texts it can within LABELLING_SHARE of the budget (rows come ordered so that any
    prefix covers the labels evenly: audit_sample), the seeds-only student (where there is one by the end of the
    budget) is scored on the same texts and candidates, and decide() sets thresholds and policy. The result is
    published as it is; every replica's teacher follows it (LabelPolicy.following)."""
    started = time.monotonic()
    audit = teacher.audit(rows, LABELLING_SHARE * budget_s)
    covered = rows[:audit.texts + audit.unscored]
    student = seeds_only(max(0.0, budget_s - (time.monotonic() - started)))  # its v0 trained meanwhile
    if student is not None:
        audit = with_student(audit, student.name, student.probabilities[:len(covered)], student.labels, covered,
                             teacher.label_names, settings)
    audit = audit.model_copy(update={"budget_s": round(budget_s, 1), "offered": len(rows),
                                     "labels_total": len(teacher.label_names),
                                     "labels_covered": len({row["label"] for row in covered})})
    return decide(audit, settings)


def kd_alpha(ece: float, soft_labels: bool, max_ece: float) -> float:
    """The students' KD weight from the teacher's calibration: MAX_KD_ALPHA at ECE 0, falling linearly to 0 at
    the bound above which soft labels are off, so a barely trusted teacher's probabilities barely count."""
    if not soft_labels or max_ece <= 0:
        return 0.0
    return round(MAX_KD_ALPHA * max(0.0, 1.0 - ece / max_ece), 3)


def effective_min_confidence(configured: float | None) -> float:
    return DEFAULT_MIN_CONFIDENCE if configured is None else configured


def coverage_line(audit: TeacherAudit) -> str | None:
    """What a budget-bounded audit covered and what that means for the thresholds; None when it covered all."""
    if audit.offered is None or audit.texts + audit.unscored >= audit.offered:
        return None
    return (f"the audit labelled {audit.texts + audit.unscored} of its {audit.offered} texts ({audit.labels_covered}"
            f" of {audit.labels_total} labels) within its budget of {audit.budget_s:g} s "
            "(teacher.audit_budget_s): min_confidence rests on those labels alone, and a label the teacher gave "
            f"fewer than {MIN_KEPT} times there has no threshold of its own")


def decide(audit: TeacherAudit, config) -> TeacherAudit:
    """The run's thresholds and policy from the audit and the teacher config (a value the user set wins)."""
    decisions = list(audit.decisions)  # what the teacher could not do as configured (teacher/formats.py)
    if coverage := coverage_line(audit):
        decisions.append(coverage)
    by_label = audit.label_thresholds if config.min_confidence is None and config.per_label_thresholds else {}
    if config.min_confidence is not None:
        chosen = config.min_confidence
        decisions.append(f"min_confidence {chosen:g}: set in the config")
    elif audit.threshold is not None:
        chosen = audit.threshold
        decisions.append(f"min_confidence {chosen:.3f}: the lowest confidence whose audit labels were right "
                         f"{audit.precision_at_threshold:.0%} of the time (target {audit.target_precision:.0%}); "
                         f"it keeps {audit.kept_share:.0%} of them")
    elif audit.best_threshold is not None:
        chosen = audit.best_threshold
        decisions.append(f"min_confidence {chosen:.3f}: no confidence reaches {audit.target_precision:.0%} "
                         f"precision on the audit; its most precise labels ({audit.best_precision:.0%}) start here")
    else:
        chosen = DEFAULT_MIN_CONFIDENCE
        decisions.append(f"min_confidence {chosen:g}: too few audit labels to choose one (the default)")
    pool, soft = config.pool_labelling, True
    worse = audit.student_accuracy is not None and audit.accuracy < audit.student_accuracy
    kept = kept_precision(audit, chosen)
    if worse and config.protect_student:
        compared = (f"the teacher labels worse than the seeds-only student ({audit.accuracy:.2f} vs "
                    f"{audit.student_accuracy:.2f} accuracy on the same {audit.texts} texts and candidates)")
        soft = False
        if kept is not None and kept > audit.student_accuracy:  # only its labels above min_confidence are used
            decisions.append(f"{compared}, but its labels at or above min_confidence were right {kept:.0%} of the "
                             "time: pool labelling stays on, with those labels only; soft labels off "
                             "(teacher.protect_student=false overrides)")
        else:
            pool = False
            decisions.append(f"{compared}, and its labels at or above min_confidence are no better: pool labelling "
                             "and soft labels off; its own texts still pass min_confidence "
                             "(teacher.protect_student=false overrides)")
    elif worse:
        decisions.append("the teacher labels worse than the seeds-only student, but teacher.protect_student is off")
    if soft and audit.ece > config.max_soft_label_ece:
        soft = False
        decisions.append(f"soft labels off: the teacher's calibration error {audit.ece:.3f} is above "
                         f"teacher.max_soft_label_ece {config.max_soft_label_ece:g}; students learn its hard labels")
    if by_label:
        decisions.append("per label the teacher gives, its own min_confidence where the audit saw it at least "
                         f"{MIN_KEPT} times: " + ", ".join(f"{label} {t['threshold']:.3f} ({t['precision']:.0%} of "
                                                          f"{t['labels']})" for label, t in by_label.items()))
    alpha = kd_alpha(audit.ece, soft, config.max_soft_label_ece)
    if soft:
        decisions.append(f"KD alpha {alpha:g} for students that set none: {MAX_KD_ALPHA:g} x (1 - ECE {audit.ece:.3f} "
                         f"/ {config.max_soft_label_ece:g})")
    return audit.model_copy(update={"min_confidence": chosen, "pool_labelling": pool, "soft_labels": soft,
                                    "kd_alpha": alpha, "label_thresholds": by_label, "decisions": decisions})


def kept_precision(audit: TeacherAudit, min_confidence: float) -> float | None:
    """How often the audit labels the run keeps (those at or above min_confidence) were right, where the audit
    measured it: at the threshold it chose itself. None for a threshold the user set."""
    if audit.threshold is not None and min_confidence == audit.threshold:
        return audit.precision_at_threshold
    if audit.best_threshold is not None and min_confidence == audit.best_threshold:
        return audit.best_precision
    return None


def audit_candidates(rows: list[dict], label_names: list[str], config) -> list[list[str]]:
    """The candidate labels of each audit text: the same for the teacher and the student it is compared with."""
    return candidate_sets([row["label"] for row in rows], label_names, config.soft_label_candidates, config.seed)


def with_student(audit: TeacherAudit, student: str, probabilities, student_labels: list[str], rows: list[dict],
                 label_names: list[str], config) -> TeacherAudit:
    """The audit with a seeds-only student's accuracy and macro-F1 on the same texts and candidates."""
    golds = [row["label"] for row in rows]
    accuracy, macro_f1 = student_scores(probabilities, student_labels, golds,
                                        audit_candidates(rows, label_names, config))
    return audit.model_copy(update={"student": student, "student_accuracy": accuracy, "student_macro_f1": macro_f1})


def student_scores(probabilities, label_names: list[str], golds: list[str],
                   sets: list[list[str]]) -> tuple[float, float]:
    """Accuracy and macro-F1 of a student's probabilities restricted to the audit's candidates per text."""
    index = {name: i for i, name in enumerate(label_names)}
    predictions = [max(cands, key=lambda name: row[index[name]]) for row, cands in zip(probabilities, sets)]
    per_class = f1_per_class(golds, predictions, sorted(set(golds)))
    return (sum(p == g for p, g in zip(predictions, golds)) / len(golds) if golds else 0.0,
            sum(per_class.values()) / len(per_class) if per_class else 0.0)


def audit_sample(rows: list[dict], per_class: int, cap: int, seed: int) -> list[dict]:
    """Up to per_class texts of each label, at most cap in all, drawn the same way for every replica, in rounds
    of one text per label (the labels in a shuffled order), so that any prefix a budget cuts the audit to covers
    the labels evenly."""
    rng = random.Random(f"audit:{seed}")
    by_label: dict[str, list[dict]] = {}
    for row in rows:
        by_label.setdefault(row["label"], []).append(row)
    drawn = {label: rng.sample(by_label[label], min(per_class, len(by_label[label]))) for label in sorted(by_label)}
    order = sorted(drawn)
    rng.shuffle(order)
    chosen = [drawn[label][i] for i in range(per_class) for label in order if i < len(drawn[label])]
    return chosen[:cap]


def candidate_sets(golds: list[str], label_names: list[str], n: int, seed: int) -> list[list[str]]:
    """For each text its gold label and n - 1 random others (every label where there are no more than n)."""
    rng = random.Random(f"audit-candidates:{seed}")
    sets = []
    for gold in golds:
        others = [name for name in label_names if name != gold]
        sets.append(sorted([gold] + rng.sample(others, min(len(others), n - 1))))
    return sets


def summarize(golds: list[str], predictions: list[str | None], confidences: list[float | None], candidates: int,
              target_precision: float) -> TeacherAudit:
    """The audit's figures from the teacher's top label and its probability per text (None: not scored)."""
    scored = [(g, p, c) for g, p, c in zip(golds, predictions, confidences) if p is not None and c is not None]
    correct = [p == g for g, p, _ in scored]
    confs = [c for _, _, c in scored]
    per_class = f1_per_class([g for g, _, _ in scored], [p for _, p, _ in scored], sorted(set(golds)))
    threshold, precision, kept = precision_threshold(confs, correct, target_precision)
    best = precision_threshold(confs, correct, 0.0, most_precise=True)
    by_label = label_thresholds([p for _, p, _ in scored], confs, correct, target_precision)
    return TeacherAudit(label_thresholds=by_label, texts=len(scored), candidates=candidates,
                        accuracy=sum(correct) / len(scored) if scored else 0.0,
                        macro_f1=sum(per_class.values()) / len(per_class) if per_class else 0.0,
                        ece=expected_calibration_error(confs, correct), target_precision=target_precision,
                        threshold=threshold, precision_at_threshold=precision, kept_share=kept,
                        best_threshold=best[0], best_precision=best[1], per_class_f1=per_class,
                        reliability=reliability_table(confs, correct), unscored=len(golds) - len(scored))


def label_thresholds(predictions: list[str], confidences: list[float], correct: list[bool],
                     target: float) -> dict[str, dict]:
    """Per label the teacher gave: the lowest confidence at which its labels of that kind were right `target` of
    the time (else where its most precise ones start), for labels given at least MIN_KEPT times. A teacher that
    pours one class's texts into another (ag_news: Business read as World) is held to a higher bar there."""
    chosen = {}
    for label in sorted(set(predictions)):
        rows = [(c, ok) for p, c, ok in zip(predictions, confidences, correct) if p == label]
        confs, oks = [c for c, _ in rows], [ok for _, ok in rows]
        threshold, precision, _ = precision_threshold(confs, oks, target)
        if threshold is None:
            threshold, precision, _ = precision_threshold(confs, oks, 0.0, most_precise=True)
        if threshold is not None:
            chosen[label] = {"threshold": threshold, "precision": precision, "labels": len(rows)}
    return chosen


def f1_per_class(golds: list[str], predictions: list[str], labels: list[str]) -> dict[str, float]:
    scores = {}
    for label in labels:
        tp = sum(g == label and p == label for g, p in zip(golds, predictions))
        predicted = sum(p == label for p in predictions)
        actual = sum(g == label for g in golds)
        scores[label] = 2 * tp / (predicted + actual) if predicted + actual else 0.0
    return scores


def _bin(confidence: float) -> int:
    return min(BINS - 1, int(confidence * BINS))


def reliability_table(confidences: list[float], correct: list[bool]) -> list[dict]:
    """Per confidence bin (tenths): how many labels, their mean confidence, and how many were right."""
    rows = []
    for b in range(BINS):
        members = [(c, ok) for c, ok in zip(confidences, correct) if _bin(c) == b]
        if members:
            rows.append({"bin": f"{b / BINS:.1f}-{(b + 1) / BINS:.1f}", "count": len(members),
                         "confidence": sum(c for c, _ in members) / len(members),
                         "accuracy": sum(ok for _, ok in members) / len(members)})
    return rows


def expected_calibration_error(confidences: list[float], correct: list[bool]) -> float:
    """Mean |accuracy - confidence| over the bins, weighted by how many labels each bin holds."""
    if not confidences:
        return 0.0
    return sum(row["count"] * abs(row["accuracy"] - row["confidence"])
               for row in reliability_table(confidences, correct)) / len(confidences)


def precision_threshold(confidences: list[float], correct: list[bool], target: float,
                        most_precise: bool = False) -> tuple[float | None, float | None, float]:
    """The lowest confidence t such that the labels at or above t are right at least `target` of the time (and
    there are at least MIN_KEPT of them), with that precision and the share of labels it keeps; most_precise:
    instead the t of the highest such precision (the lowest t among equals)."""
    ranked = sorted(zip(confidences, correct), key=lambda pair: -pair[0])
    best = (None, None, 0.0)
    right = 0
    for kept, (confidence, ok) in enumerate(ranked, 1):
        right += ok
        last_of_tie = kept == len(ranked) or ranked[kept][0] < confidence
        if not (last_of_tie and kept >= MIN_KEPT):
            continue
        precision = right / kept
        if most_precise and (best[1] is None or precision >= best[1]) or not most_precise and precision >= target:
            best = (confidence, precision, kept / len(ranked))
    return best
