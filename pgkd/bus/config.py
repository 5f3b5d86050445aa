"""The redis block of a run: which Redis carries the bus, and how long every process rides out its outages."""
from __future__ import annotations

import os
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from pgkd.basics.errors import InputError
from pgkd.basics.settings import Settings, check_url


def check_redis_url(url: str) -> str:
    check_url(url, ("redis", "rediss", "unix"), "redis://[:password@]host:port/db")
    db = urlsplit(url).path.strip("/")
    if urlsplit(url).scheme != "unix" and db and not db.isdigit():
        raise ValueError(f"the database after the port must be a number, got '{db}'")
    return url


class RedisConfig(Settings):
    url: str | None = Field(None, description="absent: start an embedded redis-server on 127.0.0.1")
    retry_seconds: float = Field(120, gt=0, description="how long every process retries a Redis that went away "
                                 "(restart, failover, network blip) before giving up")
    archive_every_s: float = Field(5.0, ge=0, description="how often the driver moves example batches every "
                                   "student has trained on from Redis to runs/<id>/data/ (0: never; Redis then "
                                   "holds the whole run)")
    driver_lease_s: float = Field(15, gt=0, description="how long a driver's lease on its run lives in Redis "
                                  "unless renewed (every third of it): another driver may take the run over after "
                                  "that, from any machine")
    startup_timeout_s: float = Field(10, gt=0, description="how long the driver tries to reach Redis at start "
                                     "before it refuses to start")

    @field_validator("url")
    @classmethod
    def _is_redis_url(cls, value: str | None) -> str | None:
        return None if value is None else check_redis_url(value)


def redis_url_from_env(config: RedisConfig) -> str | None:
    """The configured Redis, else PGKD_REDIS_URL, else None (the driver starts an embedded one)."""
    if config.url:
        return config.url
    url = os.environ.get("PGKD_REDIS_URL") or None
    if url is not None:
        try:
            check_redis_url(url)
        except ValueError as exc:
            raise InputError(str(exc), field="PGKD_REDIS_URL (environment)") from None
    return url
