"""Builds teacher prompts from a class task and the seed demos. Only the classes a task names go in a prompt.

Two formats, one template set each (teacher/templates/completion, teacher/templates/chat): a completion prompt is
text the model continues; a chat prompt is one user message, which the backend renders with the model's chat
template. Labelling asks for one label among candidates: the answers scored are " label" after "Label:" in the
completion format and "label" as the assistant's whole reply in the chat format.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from pgkd.basics.dataset import Label
from pgkd.bus.messages import HardNegative
from pgkd.teacher.backends.base import Prompt

TEMPLATES = Path(__file__).parent / "templates"
FORMATS = ("completion", "chat")
TEMPLATE_NAMES = ("generate", "generate_json", "classify", "paraphrase")


@dataclass
class ClassTask:
    """What to write for one class in one batch."""

    label: str
    count: int
    hard_negatives: list[HardNegative] = field(default_factory=list)
    contrast: list[str] = field(default_factory=list)  # labels most confused with this one


def template_path(name: str, prompt_format: str = "completion", folder: Path | None = None) -> Path:
    """A user's folder first (its `<format>/` subfolder; for the completion format also its top level, where
    template sets lived before chat), then pgkd's own set for the format."""
    places = []
    if folder is not None:
        places.append(folder / prompt_format)
        if prompt_format == "completion":
            places.append(folder)
    places.append(TEMPLATES / prompt_format)
    return next((place / f"{name}.txt" for place in places if (place / f"{name}.txt").is_file()), places[-1])


def load_template(name: str, folder: Path | None = None, prompt_format: str = "completion") -> str:
    return template_path(name, prompt_format, folder).read_text()


def examples_schema(count: int) -> dict:
    """The JSON schema of a structured generation reply: {"examples": [count strings]}."""
    return {"type": "object", "additionalProperties": False, "required": ["examples"],
            "properties": {"examples": {"type": "array", "minItems": count, "maxItems": count,
                                        "items": {"type": "string", "minLength": 1}}}}


def bullet(texts: list[str]) -> str:
    return "".join(f"- {one_line(t)}\n" for t in texts)


def one_line(text: str) -> str:
    return " ".join(text.split())


class PromptBuilder:
    def __init__(self, labels: list[Label], demos: dict[str, list[str]], task: str, templates: Path | None = None,
                 prompt_format: str = "completion"):
        if prompt_format not in FORMATS:
            raise ValueError(f"unknown prompt format '{prompt_format}' (known: {FORMATS})")
        self.labels = {label.name: label for label in labels}
        self.demos = demos
        self.task = task
        self.format = prompt_format
        self.templates = {name: load_template(name, templates, prompt_format) for name in TEMPLATE_NAMES}

    def _as_prompt(self, text: str) -> Prompt:
        text = text.rstrip("\n")
        return [{"role": "user", "content": text}] if self.format == "chat" else text

    def generation_prompt(self, task: ClassTask, n_demos: int, count: int | None = None) -> Prompt:
        """A prompt for one new text of the task's class; with count, for that many as a JSON reply."""
        label = self.labels[task.label]
        demos = self.demos.get(task.label, [])[:n_demos]
        template = self.templates["generate" if count is None else "generate_json"]
        return self._as_prompt(template.format(
            task=self.task,
            label=label.display,
            description=f" ({label.description})" if label.description else "",
            demos=bullet(demos).rstrip("\n"),
            demos_json=json.dumps({"examples": [one_line(t) for t in demos]}, ensure_ascii=False),
            count=count or 1,
            hard_negatives=self._hard_negative_block(task),
            contrast=self._contrast_block(task),
        ))

    def paraphrase_prompt(self, label_name: str, text: str) -> Prompt:
        label = self.labels[label_name]
        return self._as_prompt(self.templates["paraphrase"].format(
            task=self.task, label=label.display, text=one_line(text),
            description=f" ({label.description})" if label.description else ""))

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

    def classify_prompt(self, text: str, candidates: list[str]) -> Prompt:
        """Few-shot labelling prompt (completion: ending in 'Label:'); each candidate gets one demo so none is
        unseen."""
        demos = "".join(
            f"Message: {one_line(self.demos[c][0])}\nLabel: {self.labels[c].display}\n"
            for c in candidates if self.demos.get(c)
        )
        choices = ", ".join(f'"{self.labels[c].display}"' for c in candidates)
        return self._as_prompt(self.templates["classify"].format(task=self.task, demos=demos.rstrip("\n"),
                                                                 text=one_line(text), choices=choices))

    def label_answer(self, label: str) -> str:
        """The answer that names a label: its continuation after 'Label:', or the whole chat reply."""
        display = self.labels[label].display
        return display if self.format == "chat" else " " + display
