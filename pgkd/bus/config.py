"""The redis block of a run: which Redis carries the bus, and how long every process rides out its outages."""
from __future__ import annotations

import os
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import Field, field_validator, model_validator

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

    password_env: str | None = Field(None, description="environment variable holding the Redis password (a "
                                     "Kubernetes Secret, a VM's environment), so it never sits in a YAML file; "
                                     "put into `url` (or PGKD_REDIS_URL) when the driver connects")

    @field_validator("url")
    @classmethod
    def _is_redis_url(cls, value: str | None) -> str | None:
        return None if value is None else check_redis_url(value)

    @model_validator(mode="after")
    def _one_place_for_the_password(self) -> "RedisConfig":
        if self.password_env and self.url and urlsplit(self.url).password:
            raise ValueError("redis.url holds a password and redis.password_env names one too: keep one (the "
                             "environment variable keeps it out of the file)")
        return self


def redis_url_from_env(config: RedisConfig) -> str | None:
    """The configured Redis, else PGKD_REDIS_URL, else None (the driver starts an embedded one); with
    redis.password_env, that variable's value as the URL's password."""
    url = config.url or os.environ.get("PGKD_REDIS_URL") or None
    if url is not None and not config.url:
        try:
            check_redis_url(url)
        except ValueError as exc:
            raise InputError(str(exc), field="PGKD_REDIS_URL (environment)") from None
    if config.password_env:
        if url is None:
            raise InputError("names a password but there is no Redis URL to use it with (the embedded Redis makes "
                             "its own): set redis.url or PGKD_REDIS_URL", field="redis.password_env")
        url = with_password(url, os.environ.get(config.password_env) or "", config.password_env)
    return url


def with_password(url: str, password: str, variable: str) -> str:
    if not password:
        raise InputError(f"the environment variable {variable} is not set or empty", field="redis.password_env")
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"{quote(parts.username or '', safe='')}:{quote(password, safe='')}@{host}",
                       parts.path, parts.query, parts.fragment))
