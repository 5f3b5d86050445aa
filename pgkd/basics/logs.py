"""Logging shared by the driver and the actors."""
from __future__ import annotations

import logging

CHATTY = ("httpx", "httpcore")  # an INFO line per HTTP request (the endpoint probe's too) is not pgkd's to show


def quiet_http_clients() -> None:
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.WARNING)
