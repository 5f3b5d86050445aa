"""Log-probabilities that are not finite numbers (an engine whose logits went NaN, -inf from a token it could not
produce, finite values that overflow): the text is dropped as `unscorable`, never kept and never given a NaN soft
label; a content-free baseline is kept only from a whole, finite reply."""
import math
import random
from types import SimpleNamespace

import pytest

from pgkd.basics.dataset import Label
from pgkd.teacher.backends.vllm_engine import VLLMEngineBackend
from pgkd.teacher.config import teacher_settings
from pgkd.teacher.labeler import CONTENT_FREE, UNSCORABLE, UNSCORED, SoftLabeler
from pgkd.teacher.prompts import PromptBuilder
from pgkd.teacher.seam import PoolText
from pgkd.teacher.teacher import Teacher
from tests.scripted_backend import ScriptedBackend

LABELS = [Label("card_arrival", "card arrival"), Label("lost_card", "lost card"), Label("refund")]
NAMES = [label.name for label in LABELS]
SEEDS = [{"text": "where is my card", "label": "card_arrival"}, {"text": "i lost my card", "label": "lost_card"},
         {"text": "give my money back", "label": "refund"}]


def teacher(replies, broken, label_check="drop") -> Teacher:
    config = teacher_settings(classes_per_batch=1, examples_per_class=len(replies), min_words=2,
                              min_confidence=0.0, label_check=label_check)
    backend = ScriptedBackend(replies, prefers={"never came": "card arrival", "nowhere": "card arrival"},
                              broken=broken)
    return Teacher(backend, LABELS, SEEDS, [], config, "teacher-0", "Customer messages")


@pytest.mark.parametrize("bad", [math.nan, -math.inf, math.inf], ids=["nan", "-inf", "inf"])
@pytest.mark.parametrize("label_check", ["drop", "off"])
def test_a_text_with_non_finite_log_probabilities_is_dropped_as_unscorable(bad, label_check):
    t = teacher(["my card never came", "my card is nowhere to be seen"], {"nowhere": bad}, label_check)
    examples, stats = t.write_batch(None, batch=0)
    assert [e.text for e in examples] == ["my card never came"] and stats.kept == 1
    assert stats.dropped["unscorable"] == 1 and stats.as_counts()["dropped_unscorable"] == 1
    assert all(math.isfinite(p) for p in examples[0].soft_label.values())


def test_a_pool_text_with_non_finite_log_probabilities_is_dropped_as_pool_unscorable():
    t = teacher([None], {"nowhere": math.nan})
    t.config.generate = False
    pool = [PoolText("my card is nowhere to be seen", ["card_arrival", "lost_card"]),
            PoolText("my card never came to me", ["card_arrival", "refund"])]
    examples, stats = t.write_batch(None, 0, pool)
    assert [e.text for e in examples] == ["my card never came to me"]
    assert stats.dropped["pool_unscorable"] == 1 and stats.pool_labelled == 1


def test_scores_that_overflow_in_the_calibration_are_unscorable():
    backend = ScriptedBackend([], broken={"huge": -1.5e308, CONTENT_FREE: 1.5e308})  # each finite, the gap not
    labeler = SoftLabeler(backend, PromptBuilder(LABELS, {}, "x"), NAMES, 3, random.Random(0))
    assert labeler.score(["a huge message"], [sorted(NAMES)]) == [UNSCORABLE]


class BaselineScript(ScriptedBackend):
    """Its content-free (baseline) replies, in turn: each a value for every label, or None for a lost request."""

    def __init__(self, baselines):
        super().__init__([])
        self.baselines, self.asked = list(baselines), 0

    def choice_logprobs(self, prompts, choices):
        scores = super().choice_logprobs(prompts, choices)
        for index, prompt in enumerate(prompts):
            if prompt.rsplit("Message:", 1)[-1].split("\n")[0].strip() == CONTENT_FREE:
                self.asked += 1
                value = self.baselines.pop(0)
                scores[index] = None if value is None else {answer: value for answer in scores[index]}
        return scores


def test_a_baseline_is_never_kept_from_a_lost_or_non_finite_reply():
    backend = BaselineScript([None, -math.inf, math.nan, -2.0])
    labeler = SoftLabeler(backend, PromptBuilder(LABELS, {}, "x"), NAMES, 3, random.Random(0))
    cands = [sorted(NAMES)]
    assert labeler.score(["my card never came"], cands) == [UNSCORED]  # lost: no calibration to give
    assert labeler.score(["my card never came"], cands) == [UNSCORABLE]
    assert labeler.score(["my card never came"], cands) == [UNSCORABLE]
    assert not labeler._content_free and backend.asked == 3  # asked again each time, never kept
    probs = labeler.score(["my card never came"], cands)[0]
    assert isinstance(probs, dict) and sum(probs.values()) == pytest.approx(1.0)
    assert labeler._content_free[tuple(cands[0])] == {name: -2.0 for name in NAMES}
    labeler.score(["my card never came"], cands)
    assert backend.asked == 4  # a kept baseline is not asked again


def test_the_in_process_engine_passes_a_non_finite_logprob_on_and_the_labeler_drops_it():
    # vLLM's decode-step scoring sums the wanted tokens' logprobs (VLLMEngineBackend._sum): a NaN or -inf stays
    context = (1, 2, 3)
    for bad in (math.nan, -math.inf):
        total = VLLMEngineBackend._sum([(context, 7), (context + (7,), 8)],
                                       {context: {7: SimpleNamespace(logprob=-0.5)},
                                        context + (7,): {8: SimpleNamespace(logprob=bad)}})
        assert not math.isfinite(total)
        backend = ScriptedBackend([], broken={"lost": total})
        labeler = SoftLabeler(backend, PromptBuilder(LABELS, {}, "x"), NAMES, 3, random.Random(0))
        assert labeler.score(["my card is lost"], [sorted(NAMES)]) == [UNSCORABLE]
