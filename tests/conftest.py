from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.test import Client

from hubsite.models import User

BASE_DIR = Path(settings.BASE_DIR)
PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def user(db: None) -> User:
    return User.objects.create_user("owner@example.com", PASSWORD)


@pytest.fixture
def outsider(db: None) -> User:
    return User.objects.create_user("outsider@example.com", PASSWORD)


@pytest.fixture
def owner_client(client: Client, user: User) -> Client:
    client.force_login(user)
    return client


@pytest.fixture
def outsider_client(outsider: User) -> Client:
    other = Client()
    other.force_login(outsider)
    return other


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client
    for key in client.scan_iter(f"{settings.DRAMATIQ_NAMESPACE}*"):
        client.delete(key)


@pytest.fixture(autouse=True)
def _no_rate_limit_counts() -> None:
    """Each test starts with no sign-in attempts counted. Only the limiter's keys are
    deleted: clearing the cache would flush the whole Redis database, broker included."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    prefix = settings.CACHES[settings.RATELIMIT_USE_CACHE]["KEY_PREFIX"]
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    client.close()


def database_url_for_subprocess() -> str:
    """The test database (pytest-django renamed it) as a URL for worker processes."""
    db = settings.DATABASES["default"]
    assert "postgresql" in db["ENGINE"], "worker subprocess tests need PostgreSQL"
    return f"postgres://{db['USER']}:{db.get('PASSWORD') or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


WorkerFactory = Callable[..., Any]


@pytest.fixture
def start_worker(transactional_db: None) -> Iterator[WorkerFactory]:
    """Start real ``rundramatiq`` processes on the test database and broker."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(
        *queues: str, ready_timeout: float = 60, extra_env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        env = {**os.environ, "DATABASE_URL": database_url_for_subprocess(), **(extra_env or {})}
        log = open(Path(settings.DATA_DIR) / f"worker-{len(processes)}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "rundramatiq",
                "--processes",
                "1",
                "--threads",
                "1",
                "--queues",
                *(queues or ("default",)),
            ],
            cwd=BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        processes.append(process)
        _wait_until_ready(Path(log.name), process, ready_timeout)
        return process

    yield start
    for process in processes:
        _stop(process)


def _wait_until_ready(log: Path, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if b"is ready for action" in log.read_bytes():
            return
        if process.poll() is not None:
            raise RuntimeError(f"worker exited early:\n{log.read_text()}")
        time.sleep(0.1)
    raise RuntimeError(f"worker not ready in {timeout} s:\n{log.read_text()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_for(predicate: Callable[[], Any], *, timeout: float = 30, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")
