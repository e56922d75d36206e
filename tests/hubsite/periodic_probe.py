"""A test-only app whose periodic job counts its runs in Redis and fails the first
one. Workers load it through ``tests.hubsite.periodic_probe_settings``."""

from __future__ import annotations

import redis
from django.apps import AppConfig
from django.conf import settings

from hubsite.jobs import register_periodic

PROBE_INTERVAL_SECONDS = 0.2


def probe_key() -> str:
    return f"{settings.DRAMATIQ_NAMESPACE}:periodic-probe-runs"


def flaky_probe() -> None:
    runs = redis.Redis.from_url(settings.REDIS_URL).incr(probe_key())
    if runs == 1:
        raise RuntimeError("the probe's first run fails")


class PeriodicProbeConfig(AppConfig):
    name = "tests.hubsite.periodic_probe"

    def ready(self) -> None:
        register_periodic("tests.flaky_probe", flaky_probe, every=lambda: PROBE_INTERVAL_SECONDS)
