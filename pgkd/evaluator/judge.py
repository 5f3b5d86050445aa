"""The evaluator's two decisions, each made in one place: which scored version is the run's best student (the one
`pgkd` exports: pgkd/evaluator/selection.py) and whether the run stops (pgkd/evaluator/stopping.py). Ray-free; the
evaluator actor feeds it what it scored and publishes what it decides."""
from __future__ import annotations

from pgkd.bus.messages import EvalReport, SelectionScore
from pgkd.evaluator.config import LoopConfig
from pgkd.evaluator.selection import BestChoice, Candidate, Choice
from pgkd.evaluator.stopping import RunStopping


class Judge:
    def __init__(self, loop: LoopConfig, labels: list[str], students: list[str], selection_gold: list[str]):
        """With selection texts (held out from steering) they choose the best, and a later version must beat the
        seeds-only one by `loop.selection_z` standard errors; without them the highest steering score wins."""
        self.loop = loop
        self.with_selection = bool(selection_gold)
        self.choice = BestChoice(selection_gold, labels, loop.selection_z if selection_gold else 0.0)
        self.stopping = RunStopping(loop.patience, loop.min_delta, loop.max_versions, students)
        self.best_by_student: dict[str, float] = {}

    def record(self, report: EvalReport, selected: SelectionScore | None) -> None:
        """One scored version. With selection texts, patience and the best count the selection score, never the
        steering one the teacher has seen."""
        score = selected.macro_f1 if selected is not None else report.macro_f1
        if selected is not None or not self.with_selection:  # a candidate needs the texts that choose
            predictions = selected.predictions if selected is not None else []
            self.choice.add(Candidate(report.key, report.version, score, predictions))
        self.best_by_student[report.student] = max(score, self.best_by_student.get(report.student, 0.0))
        self.stopping.update(report.student, score)

    def best(self) -> Choice | None:
        """The run's best student so far: the version that `pgkd` exports."""
        return self.choice.choose()

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
