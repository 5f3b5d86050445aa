"""How a teacher is spoken to: the prompt format (completion | chat) and whether generation replies are held to
a JSON schema, from the config and what the backend can do. What the config asked and the backend could not
give is a note, said once at start and kept in the audit and the report."""
from __future__ import annotations

from dataclasses import dataclass, field

from pgkd.teacher.backends.base import Capabilities


@dataclass
class TeacherFormat:
    prompt_format: str  # completion | chat
    structured: bool
    notes: list[str] = field(default_factory=list)


def resolve_format(config, capabilities: Capabilities | None) -> TeacherFormat:
    caps = capabilities or Capabilities()
    reasons = "; ".join(caps.notes) or "the backend has no chat"
    notes = []
    chosen = config.prompt_format
    if chosen == "auto":
        chosen = "chat" if caps.chat_default else "completion"
    elif chosen == "chat" and not caps.chat:
        notes.append(f"teacher.prompt_format is chat, but {reasons}: the completion format is used instead")
        chosen = "completion"
    structured = config.structured == "on" or (config.structured == "auto" and chosen == "chat")
    if structured and not caps.json_schema:
        if config.structured == "on":
            notes.append("teacher.structured is on, but the backend cannot hold replies to a JSON schema: "
                         "one text per request, parsed from plain text")
        structured = False
    return TeacherFormat(chosen, structured, notes)
