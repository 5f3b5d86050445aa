"""What the teacher's work cost: throughput and dollars from configured prices."""
from __future__ import annotations

from pgkd.teacher.settings import TeacherSettings


def teacher_accounting(totals: dict[str, float], config: TeacherSettings) -> dict[str, float | None]:
    busy = totals.get("busy_seconds", 0.0)
    kept, generated = totals.get("kept", 0.0), totals.get("generated", 0.0)
    cost = (busy / 3600 * config.price_per_hour
            + totals.get("prompt_tokens", 0.0) / 1e6 * config.price_per_million_prompt_tokens
            + totals.get("completion_tokens", 0.0) / 1e6 * config.price_per_million_completion_tokens)
    return {
        # of the texts it wrote, the share kept (kept also counts labelled pool texts, which it did not write)
        "kept_ratio": (kept - totals.get("pool_labelled", 0.0)) / generated if generated else None,
        "generated_per_busy_second": generated / busy if busy else None,
        "kept_per_busy_second": kept / busy if busy else None,
        "completion_tokens_per_busy_second": totals.get("completion_tokens", 0.0) / busy if busy else None,
        # busy over the wall time between batch ends: what the engine idled while waiting (Redis, backpressure)
        "engine_busy_share": busy / totals["wall_seconds"] if totals.get("wall_seconds") else None,
        "kept_per_wall_second": kept / totals["wall_seconds"] if totals.get("wall_seconds") else None,
        "cost_usd": cost,
        "cost_usd_per_1k_kept": cost / kept * 1000 if kept else None,
    }
