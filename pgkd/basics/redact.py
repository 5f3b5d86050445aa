"""Secrets never reach a file, a log or a report: a URL loses its user, password and token-like query values
(`redis://:pw@host`, `http://user:pw@gateway/v1?api_key=...`), and a config is redacted whole before it is saved."""
from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SECRET_QUERY = re.compile(r"key|token|secret|pass|sig|auth|credential", re.IGNORECASE)
HIDDEN = "***"


def redact(url: str) -> str:
    """The URL with credentials replaced by ***, safe for logs and reports; anything unparsable is hidden whole."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return HIDDEN
    netloc = parts.netloc
    if not netloc and not parts.query:  # sqlite:///path, file:///path: nothing to hide, and urlunsplit drops '//'
        return url
    if parts.username is not None or parts.password is not None:
        netloc = f"{HIDDEN}@{parts.hostname or ''}" + (f":{port}" if port else "")
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, HIDDEN if SECRET_QUERY.search(k) else v) for k, v in pairs], safe="*:/")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_urls(value):
    """A copy of a JSON-like value (a dumped config) with every URL in it redacted."""
    if isinstance(value, dict):
        return {key: redact_urls(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_urls(item) for item in value]
    if isinstance(value, str) and "://" in value:
        return redact(value)
    return value
