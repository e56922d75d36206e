"""Helpers for tests that run real processes: the project folder, the test database as
a URL for a worker, fast worker settings, and waiting for a condition."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings

BASE_DIR = Path(settings.BASE_DIR)
# Workers in these tests beat every second, and a silent one is reaped after 5 s.
FAST_WORKER_ENV = {
    "TRAINING_HEARTBEAT_INTERVAL_SECONDS": "1",
    "TRAINING_HEARTBEAT_STALE_SECONDS": "5",
    "WORKER_PRESENCE_INTERVAL_SECONDS": "1",
}

WorkerFactory = Callable[..., Any]  # the start_worker fixture


def database_url_for_subprocess() -> str:
    """The test database (pytest-django renamed it) as a URL for worker processes."""
    db = settings.DATABASES["default"]
    assert "postgresql" in db["ENGINE"], "worker subprocess tests need PostgreSQL"
    return f"postgres://{db['USER']}:{db.get('PASSWORD') or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def wait_for(predicate: Callable[[], Any], *, timeout: float = 30, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")
