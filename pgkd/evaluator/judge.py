"""The evaluator's two decisions, each made in one place: which scored version is the run's best student (the one
`pgkd` exports: pgkd/evaluator/selection.py) and whether the run stops (pgkd/evaluator/stopping.py). Ray-free; the
evaluator actor feeds it what it scored and publishes what it decides."""
from __future__ import annotations

from pgkd.bus.messages import EvalReport, SelectionScore
from pgkd.evaluator.config import LoopConfig
from pgkd.evaluator.metrics import macro_f1
from pgkd.evaluator.selection import BestChoice, Candidate, Choice
from pgkd.evaluator.stopping import RunStopping


class Judge:
    def __init__(self, loop: LoopConfig, labels: list[str], students: list[str], selection_gold: list[str],
                 steering_gold: list[str] = ()):
        """With selection texts (held out from steering) a later version must beat the seeds-only one by
        `loop.selection_z` standard errors on the texts `loop.selection_texts` names; without them the highest
        steering score wins."""
        self.loop, self.labels = loop, labels
        self.with_selection = bool(selection_gold)
        self.selection_gold, self.steering_gold = list(selection_gold), list(steering_gold)
        self.scored: dict[str, tuple[EvalReport, SelectionScore | None]] = {}
        self.stopping = RunStopping(loop.patience, loop.min_delta, loop.max_versions, students)
        self.best_by_student: dict[str, float] = {}
        self._choice: BestChoice | None = None
        self._candidates: dict[tuple[str, bool], Candidate] = {}  # (version key, all of validation?) -> scored

    def record(self, report: EvalReport, selected: SelectionScore | None) -> None:
        """One scored version. With selection texts, patience and the best count the held-out score, never the
        steering one the teacher has seen."""
        score = selected.macro_f1 if selected is not None else report.macro_f1
        if selected is not None or not self.with_selection:  # a candidate needs the texts that choose
            self.scored[report.key] = (report, selected)
            self._choice = None
        self.best_by_student[report.student] = max(score, self.best_by_student.get(report.student, 0.0))
        self.stopping.update(report.student, score)

    def best(self) -> Choice | None:
        """The run's best student so far: the version that `pgkd` exports."""
        return self._current_choice().choose()

    def rule(self) -> str:
        """The export rule in words, as the report prints it."""
        if not self.with_selection:
            return "the highest steering macro-F1 (no held-out texts)"
        who = ("each student's newest version" if self.loop.selection_challengers == "newest"
               else "any later version, best first")
        return f"{who} against seeds-only on {self._texts_deciding()}, beyond {self.loop.selection_z:g} paired SE"

    def _texts_deciding(self) -> str:
        n = len(self._current_choice().gold)
        return f"all {n} validation texts" if n > len(self.selection_gold) else f"the {n} held-out texts"

    def _current_choice(self) -> BestChoice:
        """Rebuilt after each recorded version (whether all of validation can decide depends on every one)."""
        if self._choice is None:
            self._choice = self._build_choice()
        return self._choice

    def _build_choice(self) -> BestChoice:
        if not self.with_selection:
            choice = BestChoice([], self.labels, 0.0)
            for report, _ in self.scored.values():
                choice.add(Candidate(report.key, report.version, report.macro_f1, []))
            return choice
        # all of validation when every version carries its steering predictions (a run resumed from before they
        # were published has only the held-out half for its old versions: then all are compared on that half)
        both = bool(self.loop.selection_texts == "validation" and self.steering_gold and all(
            len(s.steering_predictions) == len(self.steering_gold) for _, s in self.scored.values()))
        gold = self.steering_gold + self.selection_gold if both else self.selection_gold
        choice = BestChoice(gold, self.labels, self.loop.selection_z, challengers=self.loop.selection_challengers)
        for report, selected in self.scored.values():
            choice.add(self._candidate(report, selected, both, gold))
        return choice

    def _candidate(self, report: EvalReport, selected: SelectionScore, both: bool, gold: list[str]) -> Candidate:
        """A version as the choice sees it, scored once per set of deciding texts (not again at each rebuild)."""
        key = (report.key, both)
        if key not in self._candidates:
            predictions = selected.steering_predictions + selected.predictions if both else selected.predictions
            self._candidates[key] = Candidate(report.key, report.version, macro_f1(gold, predictions, self.labels),
                                              predictions)
        return self._candidates[key]

    def stop(self) -> tuple[str, str] | None:
        """(reason, detail) when the run should stop, else None."""
        reason = self.stopping.reason()
        if reason == "patience":
            best = self.best()
            return reason, (f"no student gained {self.loop.min_delta} macro-F1 in its last {self.loop.patience} "
                            f"versions; best {best.best.key if best else '-'}")
        if reason == "max_versions":
            return reason, f"{self.stopping.seen} versions scored"
        return None
