"""Builds teacher prompts from a class task and the seed demos. Only the classes a task names go in a prompt."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from basics.dataset import Label
from bus.messages import HardNegative

TEMPLATES = Path(__file__).parent / "templates"


@dataclass
class ClassTask:
    """What to write for one class in one batch."""

    label: str
    count: int
    hard_negatives: list[HardNegative] = field(default_factory=list)
    contrast: list[str] = field(default_factory=list)  # labels most confused with this one


def load_template(name: str, folder: Path | None = None) -> str:
    return ((folder or TEMPLATES) / f"{name}.txt").read_text()


def bullet(texts: list[str]) -> str:
    return "".join(f"- {one_line(t)}\n" for t in texts)


def one_line(text: str) -> str:
    return " ".join(text.split())


class PromptBuilder:
    def __init__(self, labels: list[Label], demos: dict[str, list[str]], task: str, templates: Path | None = None):
        self.labels = {label.name: label for label in labels}
        self.demos = demos
        self.task = task
        self.generate_template = load_template("generate", templates)
        self.classify_template = load_template("classify", templates)
        self.paraphrase_template = load_template("paraphrase", templates)

    def generation_prompt(self, task: ClassTask, n_demos: int) -> str:
        label = self.labels[task.label]
        return self.generate_template.format(
            task=self.task,
            label=label.display,
            description=f" ({label.description})" if label.description else "",
            demos=bullet(self.demos.get(task.label, [])[:n_demos]).rstrip("\n"),
            hard_negatives=self._hard_negative_block(task),
            contrast=self._contrast_block(task),
        ).rstrip("\n")

    def paraphrase_prompt(self, label_name: str, text: str) -> str:
        label = self.labels[label_name]
        return self.paraphrase_template.format(
            task=self.task, label=label.display, text=one_line(text),
            description=f" ({label.description})" if label.description else "").rstrip("\n")

    def _hard_negative_block(self, task: ClassTask) -> str:
        """Misclassified validation texts of this class, as plain bullets under a header naming the mix-up."""
        quoted = [h for h in task.hard_negatives if h.predicted in self.labels]
        if not quoted:
            return ""
        wrong = ", ".join(dict.fromkeys(f'"{self.labels[h.predicted].display}"' for h in quoted))
        header = f'\nAlso "{self.labels[task.label].display}", though a classifier mistook them for {wrong}:\n'
        return header + bullet([h.text for h in quoted]).rstrip("\n")

    def _contrast_block(self, task: ClassTask) -> str:
        blocks = []
        for other in task.contrast:
            examples = self.demos.get(other, [])[:2]
            if examples:
                blocks.append(f'\nNot "{self.labels[task.label].display}" but "{self.labels[other].display}":\n'
                              + bullet(examples).rstrip("\n"))
        return "".join(blocks)

    def classify_prefix(self, text: str, candidates: list[str]) -> str:
        """Few-shot prefix ending in 'Label:'; each candidate gets one demo so none is unseen."""
        demos = "".join(
            f"Message: {one_line(self.demos[c][0])}\nLabel: {self.labels[c].display}\n"
            for c in candidates if self.demos.get(c)
        )
        return self.classify_template.format(task=self.task, demos=demos.rstrip("\n"), text=one_line(text)).rstrip("\n")

    def label_continuation(self, label: str) -> str:
        return " " + self.labels[label].display
