"""A scripted stand-in for the LLM in unit tests of teacher logic (the real engine is in the integration test)."""
from __future__ import annotations

from pgkd.teacher.backends.base import Capabilities, Completion, SamplingSpec, scored_by_continuation


class ScriptedBackend:
    model_name = "scripted"

    def __init__(self, replies: list[str | None], label_bias: dict[str, float] | None = None,
                 prefers: dict[str, str] | None = None, capabilities: Capabilities | None = None,
                 broken: dict[str, float] | None = None):
        self.capabilities = capabilities or Capabilities()  # completion format, no schemas, unless given
        self.specs: list[SamplingSpec] = []
        self.replies = list(replies)
        self.label_bias = label_bias or {}  # a constant per-label bias, as a small base model has
        self.prefers = prefers or {}  # text substring -> the label the "model" believes
        self.broken = broken or {}  # text substring -> what every label scores there (NaN, -inf: logits gone bad)
        self.generate_calls = 0
        self.prompts: list[str] = []
        self.score_calls = 0

    def generate(self, prompts, spec: SamplingSpec):
        self.generate_calls += 1
        self.prompts.extend(prompts)
        self.specs.append(spec)
        out = []
        for _ in prompts:
            reply = self.replies.pop(0) if self.replies else None
            out.append(Completion(texts=[] if reply is None else [reply], prompt_tokens=10,
                                  completion_tokens=0 if reply is None else len(reply.split()),
                                  structured=spec.json_schema is not None and self.capabilities.json_schema))
        return out

    def choice_logprobs(self, prompts, choices):
        """Chat prompts are scored by their user message's text, as completion prompts are."""
        return scored_by_continuation(self, [p if isinstance(p, str) else p[-1]["content"] for p in prompts], choices)

    def continuation_logprobs(self, prefixes, continuations):
        self.score_calls += 1
        scores = []
        for prefix, cont in zip(prefixes, continuations):
            label = cont.strip()
            text = prefix.rsplit("Message:", 1)[-1]
            believed = next((lab for key, lab in self.prefers.items() if key in text), None)
            bad = next((value for key, value in self.broken.items() if key in text), None)
            score = self.label_bias.get(label, 0.0) + (3.0 if believed == label else 0.0) - 5.0
            scores.append(score if bad is None else bad)
        return scores

    def close(self):
        pass
