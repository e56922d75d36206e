"""Project-wide actors."""

from __future__ import annotations

import redis
from django.conf import settings

from hubsite.jobs import light_actor

PING_TTL_SECONDS = 300


def ping_key(token: str) -> str:
    return f"{settings.DRAMATIQ_NAMESPACE}:ping:{token}"


@light_actor(max_retries=0, time_limit_ms=10_000)
def ping(token: str) -> None:
    """Round trip through the broker: a worker that runs this stores ``token`` in
    Redis, which ``manage.py ping_worker`` (and the test suite) reads back."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.set(ping_key(token), "pong", ex=PING_TTL_SECONDS)
