"""Errors that name where bad input came from, so a user can fix it without reading code."""


class InputError(ValueError):
    """Bad user input, refused before any actor starts."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None, field: str | None = None):
        self.file, self.line, self.field = file, line, field
        where = ":".join(str(p) for p in (file, line) if p is not None)
        parts = [where] if where else []
        if field:
            parts.append(f"field '{field}'")
        parts.append(message)
        super().__init__(": ".join(parts))


class BusUnavailable(RuntimeError):
    """Redis could not be reached after retries."""
