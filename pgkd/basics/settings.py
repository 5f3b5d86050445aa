"""What every settings block of a run has in common: unknown keys are refused, assignments are validated, and a
block can resolve its relative paths and name paths that do not exist. The blocks themselves live with the role
or kind they configure (pgkd/teacher/config.py, pgkd/student/config.py, ...); pgkd/config.py composes them."""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    def resolve_paths(self, base: Path) -> None:
        """Make relative paths of this block relative to the config file's folder `base`; nothing by default."""

    def path_problems(self) -> list[tuple[tuple, str]]:
        """(field path inside this block, why) for every path or model this block names that cannot load, so it
        is refused at start instead of a minute later inside an actor; none by default."""
        return []


def check_safe_name(value: str) -> str:
    """A name that becomes a folder under runs/: letters, digits, '.', '-', '_'; no '..', no '/'."""
    if not SAFE_NAME.fullmatch(value) or ".." in value:
        raise ValueError(f"'{value}' is not a safe name: use letters, digits, '.', '-' and '_' (at most 100, "
                         f"starting with a letter or digit, no '..')")
    return value


def check_url(url: str, schemes: tuple[str, ...], example: str) -> str:
    """A URL with one of the schemes, a host and a numeric port (if any); the message never repeats it whole,
    since it may hold a password."""
    try:
        parts = urlsplit(url)
        parts.port  # raises on a port that is not a number in range
    except ValueError as exc:
        raise ValueError(f"malformed URL ({exc}); expected {example}") from None
    if parts.scheme not in schemes or (parts.scheme != "unix" and not parts.hostname):
        raise ValueError(f"malformed URL (scheme '{parts.scheme}', host '{parts.hostname or ''}'); expected {example}")
    return url


def relative_to(base: Path, path: Path | None, want_dir: bool) -> Path | None:
    """`path` read relative to the config's folder where that exists (a folder or a file, as wanted)."""
    if path is None or path.is_absolute():
        return path
    candidate = base / path
    return candidate.resolve() if (candidate.is_dir() if want_dir else candidate.is_file()) else path
