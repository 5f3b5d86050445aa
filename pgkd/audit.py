"""`pgkd audit CONFIG`: the teacher audit on its own, in this process (no Ray, no Redis): what a run would find
and decide at its start, printed, then exit."""
from __future__ import annotations

import time

from pgkd.config import RunConfig
from pgkd.basics.dataset import Label
from pgkd.bus.messages import Example, TeacherAudit
from pgkd.cluster.placement import cpu_device, engine_on_this_node, vllm_block_size
from pgkd.driver import prepare_inputs
from pgkd.report import audit_line
from pgkd.teacher.config import teacher_kind


def audit_teacher(config: RunConfig, progress=print) -> TeacherAudit:
    from pgkd.student.registry import make_student
    from pgkd.teacher.audit import SeedsOnly, audit_budget, run_audit
    from pgkd.teacher.factory import TeacherJob, make_teacher

    t = config.teacher
    if not teacher_kind(t).audits or not t.replicas:
        raise SystemExit(f"pgkd audit: nothing to audit (teacher.backend '{t.backend}' is not audited, or "
                         f"teacher.replicas is 0)")
    config = config.model_copy(update={"teacher": t.model_copy(update={"audit": True})})
    data, inputs = prepare_inputs(config)
    labels = [label["name"] for label in inputs.labels]
    progress(f"seeds-only student ({config.students[0].name}) on {len(inputs.seeds)} seeds ...")
    student = make_student(labels, config.students[0], cpu_device())
    student.fit([Example(text=r["text"], label=r["label"], source="seed") for r in inputs.seeds], config.students[0])
    seeds_only = SeedsOnly(f"{config.students[0].name} (seeds only, trained here)", student.labels,
                           student.predict_proba([r["text"] for r in inputs.audit]))
    t = config.teacher
    t = engine_on_this_node(t)
    progress(f"teacher {t.model} ({', '.join(filter(None, (t.backend, t.in_process_dtype())))}): starting ...")
    started = time.time()
    teacher = make_teacher(t, TeacherJob([Label(**label) for label in inputs.labels], inputs.seeds,
                                         inputs.protected_texts, "audit", inputs.task, 0, vllm_block_size()))
    progress(f"engine ready after {time.time() - started:.0f} s; labelling {len(inputs.audit)} audit texts ...")
    try:
        return run_audit(teacher, inputs.audit, t, lambda _wait: seeds_only,
                         audit_budget(t.audit_budget_s, config.loop.time_budget_s))
    finally:
        teacher.close()


def print_audit(audit: TeacherAudit, progress=print) -> None:
    progress(audit_line(audit.model_dump()) + f" ({audit.seconds:.0f} s)")
    progress("what a run would decide:")
    for decision in audit.decisions:
        progress(f"  {decision}")
    progress("reliability (confidence bin: labels, mean confidence, accuracy):")
    for row in audit.reliability:
        progress(f"  {row['bin']}: {row['count']:4d}  {row['confidence']:.3f}  {row['accuracy']:.3f}")
