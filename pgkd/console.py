"""What reaches the terminal during a run: pgkd's own lines and its progress bar, nothing else.

Ray (its Python loggers, its C++ core worker), Python warnings and any library that prints to stderr write to file
descriptor 2; while a run lives that descriptor points at runs/<id>/logs/driver.log. pgkd's log records keep the
terminal through a handler on a copy of the original descriptor. The actors send their own output (vLLM's included)
to one file per actor (actors/common.py). With --verbose nothing is redirected and Ray streams the actors' lines.
"""
from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path

OWN_PACKAGES = frozenset({"pgkd", "basics", "bus", "teacher", "student", "evaluator", "actors", "cluster"})
_terminal = None  # the stream pgkd's lines go to while stderr is redirected


def terminal():
    """Where pgkd's own lines and the progress bar go: the real terminal, also while stderr is redirected."""
    return _terminal or sys.stderr


class OwnLines(logging.Filter):
    """Records of pgkd's own packages only (a library's records go to the log file)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.split(".", 1)[0] in OWN_PACKAGES


@contextmanager
def quiet_terminal(log_file: Path, verbose: bool = False, stdout_too: bool = False):
    """Send everything written to stderr (and with stdout_too, to stdout: an engine in this process prints its
    lines there) into log_file while the block runs; pgkd's records still reach the terminal (through a copy of
    its descriptor, `terminal()`), and every record also goes to the file."""
    global _terminal
    if verbose:
        yield
        return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    fds = (1, 2) if stdout_too else (2,)
    saved = {fd: os.dup(fd) for fd in fds}
    _terminal = os.fdopen(os.dup(2), "w", buffering=1)
    target = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    for fd in fds:
        os.dup2(target, fd)
    os.close(target)
    root = logging.getLogger()
    moved = [h for h in root.handlers if isinstance(h, logging.StreamHandler) and h.stream is sys.stderr]
    for handler in moved:
        handler.setStream(_terminal)
        handler.addFilter(OwnLines())
    to_file = logging.FileHandler(log_file)
    to_file.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    root.addHandler(to_file)
    try:
        yield
    finally:
        root.removeHandler(to_file)
        to_file.close()
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        for handler in moved:
            handler.setStream(sys.stderr)
            handler.removeFilter(handler.filters[-1])
        _terminal.close()
        _terminal = None
