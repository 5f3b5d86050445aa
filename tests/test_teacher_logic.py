import random

import pytest

from pgkd.teacher.config import teacher_settings
from pgkd.basics.dataset import Label
from pgkd.bus.messages import EvalReport, HardNegative
from pgkd.teacher.filters import NoveltyFilter
from pgkd.teacher.labeler import SoftLabeler
from pgkd.teacher.parsing import parse_reply
from pgkd.teacher.planner import confused_with, plan_batch
from pgkd.teacher.prompts import ClassTask, PromptBuilder
from pgkd.teacher.teacher import Teacher
from tests.scripted_backend import ScriptedBackend

LABELS = [Label("card_arrival"), Label("lost_card", "card lost or stolen"), Label("top_up"), Label("refund")]
NAMES = [label.name for label in LABELS]
DEMOS = {"card_arrival": ["where is my card"], "lost_card": ["i lost my card"], "top_up": ["add money"],
         "refund": ["give my money back"]}
# every steered class drawn by weakness, every example a boundary case: the plan at its most steered
STEERED = {"steer_power": 2.0, "boundary_share": 1.0, "steer_share": 1.0, "steer_floor": 0.02, "steer_by": "f1"}


def report(f1: dict, pairs=(), hard=(), version=3) -> EvalReport:
    return EvalReport(student="s", version=version, examples_seen=1, generated_seen=0, teacher_generated=0,
                      accuracy=0.5, macro_f1=0.5, per_class_f1=f1, confusion_pairs=list(pairs),
                      hard_negatives=list(hard), eval_seconds=0.1)


# ---- parsing
def test_parse_reply_keeps_first_line_without_bullets_or_quotes():
    assert parse_reply(' "Where is my card?"\nmore', 2, 20).text == "Where is my card?"


def test_parse_reply_reasons():
    assert parse_reply("", 2, 20).reason == "empty"
    assert parse_reply("::::", 2, 20).reason == "no_letters"
    assert parse_reply("card", 2, 20).reason == "too_short"
    assert parse_reply("word " * 30, 2, 20).reason == "too_long"
    assert parse_reply(None, 2, 20).reason == "no_reply"


def test_novelty_filter_drops_duplicates_and_eval_leaks():
    f = NoveltyFilter(seen=["Where is my card?"], protected=["I lost it yesterday"])
    assert f.check("where is my card") == "duplicate"
    assert f.check("I lost it, yesterday!") == "leak_eval_text"
    assert f.check("A new text") is None
    assert f.check("a new text.") == "duplicate"


# ---- planning
def test_plan_without_report_visits_classes_round_robin():
    rng = random.Random(0)
    seen = [t.label for b in range(2) for t in plan_batch(NAMES, None, b, 2, 5, 3, True, True, rng, **STEERED)]
    assert seen == NAMES


def test_plan_favours_weak_classes():
    rng = random.Random(0)
    r = report({"card_arrival": 0.0, "lost_card": 1.0, "top_up": 1.0, "refund": 1.0})
    picks = [plan_batch(NAMES, r, b, 1, 5, 3, True, True, rng, **STEERED)[0].label for b in range(200)]
    assert picks.count("card_arrival") > 150


def test_plan_quotes_hard_negatives_of_the_class_and_names_confusions():
    hard = [HardNegative(text="card gone", label="lost_card", predicted="card_arrival", confidence=0.9),
            HardNegative(text="no money", label="top_up", predicted="refund", confidence=0.8)]
    r = report({"card_arrival": 1.0, "lost_card": 0.0, "top_up": 1.0, "refund": 1.0},
               pairs=[("lost_card", "card_arrival", 3), ("refund", "lost_card", 1)], hard=hard)
    task = plan_batch(NAMES, r, 0, 1, 5, 3, True, True, random.Random(0), **STEERED)[0]
    assert task.label == "lost_card"
    assert [h.text for h in task.hard_negatives] == ["card gone"]
    assert task.contrast == ["card_arrival", "refund"]
    assert plan_batch(NAMES, r, 0, 1, 5, 3, True, False, random.Random(0), **STEERED)[0].hard_negatives == []
    assert confused_with(r, "top_up", 2) == []


def test_plan_ignores_report_when_switched_off():
    r = report({"card_arrival": 0.0, "lost_card": 1.0, "top_up": 1.0, "refund": 1.0})
    tasks = plan_batch(NAMES, r, 1, 2, 5, 3, False, True, random.Random(0), **STEERED)
    assert [t.label for t in tasks] == ["top_up", "refund"] and not tasks[0].hard_negatives


# ---- prompts
def test_generation_prompt_names_only_planned_classes():
    builder = PromptBuilder(LABELS, DEMOS, "Customer messages")
    hard = [HardNegative(text="my card vanished", label="lost_card", predicted="card_arrival", confidence=0.9)]
    prompt = builder.generation_prompt(ClassTask("lost_card", 4, hard, ["card_arrival"]), n_demos=3)
    assert '"lost card" (card lost or stolen)' in prompt
    assert "- i lost my card" in prompt and "- my card vanished" in prompt
    assert 'mistook them for "card arrival"' in prompt and "- where is my card" in prompt
    assert "top up" not in prompt and "refund" not in prompt
    assert prompt.endswith("\n-")


# ---- soft labels
def test_soft_labels_are_calibrated_by_content_free_input():
    # The "model" is biased toward refund for every input, and believes "vanished" texts are lost_card.
    backend = ScriptedBackend([], label_bias={"refund": 4.0}, prefers={"vanished": "lost card"})
    builder = PromptBuilder(LABELS, DEMOS, "Customer messages")
    labeler = SoftLabeler(backend, builder, NAMES, 4, random.Random(0))
    probs = labeler.score(["my card vanished"], [sorted(NAMES)])[0]
    assert max(probs, key=probs.get) == "lost_card"
    assert abs(sum(probs.values()) - 1) < 1e-6
    assert backend.score_calls == 1  # content-free scoring rides in the same call


def test_candidates_include_intended_and_confusions():
    labeler = SoftLabeler(ScriptedBackend([]), PromptBuilder(LABELS, DEMOS, "x"), NAMES, 3, random.Random(0))
    cands = labeler.candidates("lost_card", ["card_arrival"])
    assert len(cands) == 3 and {"lost_card", "card_arrival"} <= set(cands)


# ---- a whole batch
def make_teacher(replies, prefers, label_check="drop"):
    config = teacher_settings(classes_per_batch=1, examples_per_class=len(replies), min_words=2,
                              label_check=label_check)
    seeds = [{"text": t, "label": label} for label, texts in DEMOS.items() for t in texts]
    backend = ScriptedBackend(replies, prefers=prefers)
    return Teacher(backend, LABELS, seeds, ["a validation text here"], config, "teacher-0", "Customer messages")


def test_batch_counts_every_drop_and_never_raises():
    replies = ["", "::::", "where is my card", "a validation text here", None, "my card never came",
               "i want a refund please"]
    teacher = make_teacher(replies, prefers={"never came": "card arrival", "refund please": "refund"})
    examples, stats = teacher.write_batch(None)
    assert stats.generated == 7
    assert [e.text for e in examples] == ["my card never came"]
    assert examples[0].source == "generated" and examples[0].soft_label["card_arrival"] > 0.5
    assert dict(stats.dropped) == {"empty": 1, "no_letters": 1, "duplicate": 1, "leak_eval_text": 1,
                                   "no_reply": 1, "label_mismatch": 1}
    assert stats.kept == 1 and stats.prompt_tokens == 70


def test_batch_relabels_when_configured():
    teacher = make_teacher(["i want a refund please"], prefers={"refund please": "refund"}, label_check="relabel")
    examples, stats = teacher.write_batch(None)
    assert examples[0].label == "refund" and examples[0].intended_label == "card_arrival" and stats.relabelled == 1


def test_low_confidence_is_dropped_and_counted():
    # The "model" believes the text is card_arrival, but only weakly: 1.0 nats above the others, p < 0.8.
    teacher = make_teacher(["my card never came"], prefers={"never came": "card arrival"})
    teacher.labeler.backend.prefers = {}
    teacher.labeler.backend.label_bias = {"card arrival": 1.0}
    examples, stats = teacher.write_batch(None)
    # the bias is calibrated away (the content-free input has it too), so the teacher is unsure
    assert examples == [] and stats.dropped["low_confidence"] == 1


def test_kd_target_keeps_label_and_confusions_only():
    from pgkd.teacher.teacher import kd_target

    probs = {"a": 0.6, "b": 0.2, "c": 0.15, "d": 0.05}
    target = kd_target(probs, "a", ["b"])
    assert target == pytest.approx({"a": 0.75, "b": 0.25})
    assert kd_target(None, "a", []) is None


def test_near_duplicates_of_seeds_and_eval_texts_are_dropped():
    f = NoveltyFilter(seen=["please send my new card to my home address"],
                      protected=["why was my card payment declined at the shop today"])
    assert f.check("please send my new card to my home address now") == "near_duplicate"
    assert f.check("why was my card payment declined at the shop") == "near_eval_text"
    assert f.check("how long does a bank transfer take") is None
    assert NoveltyFilter(["a b c d e"], [], near_threshold=1.0).check("a b c d e f") is None


def test_replicas_drawing_different_batch_numbers_write_different_classes():
    first, second = make_teacher(["a reply text"], {}), make_teacher(["a reply text"], {})
    first.write_batch(None, 0)
    second.write_batch(None, 1)
    asked = [t.labeler.backend.prompts[0] for t in (first, second)]
    assert '"card arrival"' in asked[0] and '"lost card"' in asked[1]


def test_accounting_prices_busy_time_and_tokens():
    from pgkd.teacher.accounting import teacher_accounting

    totals = {"busy_seconds": 1800.0, "kept": 50.0, "generated": 100.0, "prompt_tokens": 2e6, "completion_tokens": 1e6}
    config = teacher_settings(price_per_hour=2.0, price_per_million_prompt_tokens=0.5,
                              price_per_million_completion_tokens=1.5)
    acc = teacher_accounting(totals, config)
    assert acc["cost_usd"] == pytest.approx(1.0 + 1.0 + 1.5)
    assert acc["kept_ratio"] == 0.5 and acc["cost_usd_per_1k_kept"] == pytest.approx(70.0)
    with_pool = teacher_accounting(totals | {"kept": 80.0, "pool_labelled": 30.0}, config)
    assert with_pool["kept_ratio"] == 0.5  # of the texts it wrote; the 30 pool labels were not written


def test_a_report_older_than_one_already_used_is_stale():
    from pgkd.teacher.planner import is_newer

    used = {"s": 3}
    assert is_newer(report({}, version=3), used) and is_newer(report({}, version=4), used)
    assert not is_newer(report({}, version=2), used)
    assert is_newer(report({}, version=0), {})


def test_plan_splits_a_class_into_boundary_and_typical_examples_and_power_spreads_classes():
    hard = [HardNegative(text="card gone", label="lost_card", predicted="card_arrival", confidence=0.9)]
    r = report({"card_arrival": 1.0, "lost_card": 0.0, "top_up": 1.0, "refund": 1.0},
               pairs=[("lost_card", "card_arrival", 3)], hard=hard)
    tasks = plan_batch(NAMES, r, 0, 1, 5, 3, True, True, random.Random(0), **(STEERED | {"boundary_share": 0.4}))
    assert [(t.label, t.count, bool(t.contrast), bool(t.hard_negatives)) for t in tasks] == [
        ("lost_card", 2, True, True), ("lost_card", 3, False, False)]
    typical = plan_batch(NAMES, r, 0, 1, 5, 3, True, True, random.Random(0), **(STEERED | {"boundary_share": 0.0}))
    assert [(t.count, t.contrast) for t in typical] == [(5, [])]
    rng = random.Random(1)
    even = [plan_batch(NAMES, r, b, 1, 5, 3, True, True, rng, **(STEERED | {"steer_power": 0}))[0].label
            for b in range(400)]
    assert all(60 < even.count(label) < 140 for label in NAMES)  # power 0: every class alike


def test_until_distinct_cuts_each_prefix_at_the_token_that_separates_its_labels():
    from pgkd.teacher.backends.vllm_engine import until_distinct

    def steps(context, tokens):
        out, ctx = [], context
        for t in tokens:
            out.append((ctx, t))
            ctx = ctx + (t,)
        return out

    a, b = (1, 2), (7,)
    pairs = [steps(a, [10, 11, 12]), steps(a, [10, 13, 12]), steps(a, [20, 21]),  # a: separated at token 2
             steps(b, [30, 31]), steps(b, [40, 41]),  # b: first tokens differ
             steps(b + (0,), [5]), steps(b + (0,), [5, 6])]  # a label that is another's start keeps its tokens
    cut = until_distinct(pairs)
    assert [len(c) for c in cut] == [2, 2, 2, 1, 1, 1, 2]
    assert cut[0] == pairs[0][:2] and cut[3] == pairs[3][:1]
