"""Ray's token authentication for the local cluster `pgkd run` starts. Ray 2.60 turns it on for a new local
cluster unless RAY_AUTH_MODE says otherwise, and keeps the token in ~/.ray/auth_token (or RAY_AUTH_TOKEN_PATH):
the dashboard's API, the job API and every Ray RPC then need it. pgkd keeps it on, makes the token file
owner-only (Ray writes it with the umask's bits, world-readable under the usual 022), and says on the terminal
where the token is, or that authentication is off."""
from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("pgkd.driver")


def token_path() -> Path:
    return Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")


def auth_mode() -> str:
    return (os.environ.get("RAY_AUTH_MODE") or "token").lower()


def guard_token() -> str:
    """After ray.init started a local cluster: the token file made owner-only; returns a few words for the
    dashboard line."""
    if auth_mode() != "token":
        return (f"Ray authentication is OFF (RAY_AUTH_MODE={os.environ.get('RAY_AUTH_MODE')}): anyone who reaches "
                f"this machine's Ray ports can run code as you")
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "Ray token authentication on (token from RAY_AUTH_TOKEN)"
    path = token_path()
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            path.chmod(0o600)
            log.info("made Ray's token file %s owner-only (it was %o)", path, stat.S_IMODE(mode))
    except OSError as exc:  # no token file: Ray found the token elsewhere, or none is needed
        log.info("Ray's token file %s: %s", path, exc)
    return f"Ray token authentication on (the dashboard asks for the token in {path})"
