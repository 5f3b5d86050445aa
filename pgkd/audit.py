"""`pgkd audit CONFIG`: the teacher audit on its own, in this process (no Ray, no Redis): what a run would find
and decide at its start, printed, then exit."""
from __future__ import annotations

import time

from pgkd.config import RunConfig
from pgkd.basics.dataset import Label
from pgkd.bus.messages import Example, TeacherAudit
from pgkd.cluster.placement import cpu_device, engine_dtype, vllm_block_size
from pgkd.driver import prepare_inputs
from pgkd.report import audit_line


def audit_teacher(config: RunConfig, progress=print) -> TeacherAudit:
    from pgkd.student.registry import make_student
    from pgkd.teacher.audit import decide, with_student
    from pgkd.teacher.factory import make_teacher

    t = config.teacher
    if t.backend == "simulated" or not t.replicas:
        raise SystemExit("pgkd audit: a simulated teacher (or none) has nothing to audit")
    config = config.model_copy(update={"teacher": t.model_copy(update={"audit": True})})
    data, inputs = prepare_inputs(config)
    labels = [label["name"] for label in inputs.labels]
    progress(f"seeds-only student ({config.students[0].name}) on {len(inputs.seeds)} seeds ...")
    student = make_student(labels, config.students[0], cpu_device())
    student.fit([Example(text=r["text"], label=r["label"], source="seed") for r in inputs.seeds], config.students[0])
    probabilities = student.predict_proba([r["text"] for r in inputs.audit])
    if t.backend == "vllm":
        t = t.model_copy(update={"dtype": engine_dtype(t.dtype, t.gpus_per_replica)})
    progress(f"teacher {t.model} ({t.backend}{', ' + t.dtype if t.backend == 'vllm' else ''}): starting ...")
    started = time.time()
    teacher = make_teacher(t, [Label(**label) for label in inputs.labels], inputs.seeds, inputs.protected_texts,
                           "audit", inputs.task, 0, vllm_block_size())
    progress(f"engine ready after {time.time() - started:.0f} s; labelling {len(inputs.audit)} audit texts ...")
    try:
        audit = teacher.audit(inputs.audit)
    finally:
        teacher.close()
    audit = with_student(audit, f"{config.students[0].name} (seeds only, trained here)", probabilities,
                         student.labels, inputs.audit, labels, t)
    return decide(audit, t)


def print_audit(audit: TeacherAudit, progress=print) -> None:
    progress(audit_line(audit.model_dump()) + f" ({audit.seconds:.0f} s)")
    progress("what a run would decide:")
    for decision in audit.decisions:
        progress(f"  {decision}")
    progress("reliability (confidence bin: labels, mean confidence, accuracy):")
    for row in audit.reliability:
        progress(f"  {row['bin']}: {row['count']:4d}  {row['confidence']:.3f}  {row['accuracy']:.3f}")
