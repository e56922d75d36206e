"""Fixtures for every test: the cast of users and their clients, Redis, real worker
processes, a model to train and a live CPU worker's presence, and the Stripe emulator
(the billing and browser tests share it). Objects themselves come from factories.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from django.conf import settings
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper
from pytest_django.live_server_helper import LiveServer

from hubsite.models import User
from tests.billing.stripe.emulator import DEAD_URL, WEBHOOK_SECRET, Emulator
from tests.factories import ensure_instance_types, make_model, make_ready_dataset, make_staff, make_user
from tests.helpers import BASE_DIR, FAST_WORKER_ENV, WorkerFactory, database_url_for_subprocess, wait_for
from training.models import YoloModel
from training.presence import announce, live_queues

# --- plans -------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _plans_only_where_asked(request: pytest.FixtureRequest, settings: SettingsWrapper) -> None:
    """Plans are on in the product; tests of anything else run with them off (everyone
    may train, as a lab's site would), and ``@pytest.mark.plans`` turns them on."""
    settings.PLANS_ENABLED = request.node.get_closest_marker("plans") is not None


# --- users ---------------------------------------------------------------------------


@pytest.fixture
def user(db: None) -> User:
    return make_user("owner@example.com")


@pytest.fixture
def outsider(db: None) -> User:
    return make_user("outsider@example.com")


@pytest.fixture
def staff(db: None) -> User:
    return make_staff()


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
def staff_client(staff: User) -> Client:
    client = Client()
    client.force_login(staff)
    return client


# --- Redis -----------------------------------------------------------------------------


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    """The broker's Redis, without this project's keys before and after the test: an
    earlier test that did not ask for it may have left messages (a session that ends
    queues its evaluation)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    _delete_broker_keys(client)
    yield client
    _delete_broker_keys(client)


def _delete_broker_keys(client: redis.Redis) -> None:
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


# --- workers and training --------------------------------------------------------------


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


@pytest.fixture
def fast_workers(settings: Any) -> dict[str, str]:
    """Fast heartbeat and reaper settings, here and (the dict returned) for workers."""
    settings.TRAINING_HEARTBEAT_INTERVAL_SECONDS = 1
    settings.TRAINING_HEARTBEAT_STALE_SECONDS = 5
    settings.WORKER_PRESENCE_INTERVAL_SECONDS = 1
    return dict(FAST_WORKER_ENV)


@pytest.fixture
def cpu_worker(start_worker: WorkerFactory, fast_workers: dict[str, str]) -> object:
    """A real worker for the default queue and ``train.cpu``, live before the test runs."""
    process = start_worker("default", "train.cpu", extra_env=fast_workers)
    wait_for(lambda: "train.cpu" in live_queues(), timeout=20)
    return process


@pytest.fixture
def model(user: User, tmp_path: Path) -> YoloModel:
    """A 3-epoch model on a ready synthetic dataset, with the instance types seeded."""
    ensure_instance_types()
    return make_model(user, make_ready_dataset(user, tmp_path), epochs=3)


@pytest.fixture
def cpu_online(redis_client: Any, settings: Any) -> None:
    """A stand-in for a live CPU worker's presence. A worker announces itself for 3
    intervals; this one's must outlast a slow first request (importing ultralytics on
    a loaded machine took 25 s)."""
    settings.WORKER_PRESENCE_INTERVAL_SECONDS = 600
    announce({"train.cpu"}, "test-worker")


# --- the Stripe emulator ---------------------------------------------------------------


@pytest.fixture(scope="session")
def stripe_emulator_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base = os.environ.get("STRIPE_API_BASE", "")
    if base and os.environ.get("STRIPE_SECRET_KEY", "").startswith("sk_test_local"):
        yield base  # the one scripts/test started
        return
    data_dir = tmp_path_factory.mktemp("stripe-emulator")
    log = open(data_dir / "emulator.log", "wb")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.stripe_emulator", "--data-dir", str(data_dir), "--port", "0"],
        cwd=Path(settings.BASE_DIR),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url_file = data_dir / "url"
    deadline = time.monotonic() + 30
    while not url_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the Stripe emulator did not start:\n{(data_dir / 'emulator.log').read_text()}")
        time.sleep(0.1)
    base = url_file.read_text().strip()
    while True:  # the URL is written just before it listens
        try:
            requests.get(f"{base}/_config/checkout/pay/none", timeout=2)
            break
        except requests.ConnectionError:
            time.sleep(0.1)
    yield base
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=10)


@pytest.fixture
def stripe_emulator(stripe_emulator_base: str, settings: SettingsWrapper) -> Iterator[Emulator]:
    """Point the site at the emulator, with the tests' webhook secret; no webhook yet."""
    settings.STRIPE_API_BASE = stripe_emulator_base
    settings.STRIPE_SECRET_KEY = "sk_test_local_tests"
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    emulator = Emulator(stripe_emulator_base)
    emulator.register_webhook(DEAD_URL)
    yield emulator
    emulator.register_webhook(DEAD_URL)  # no stray deliveries to a server that is gone


@pytest.fixture
def stripe_live(stripe_emulator: Emulator, live_server: LiveServer, settings: SettingsWrapper) -> Emulator:
    """The emulator sending its webhooks to this test's live server."""
    settings.SITE_URL = live_server.url
    stripe_emulator.register_webhook(f"{live_server.url}/billing/stripe/webhook/")
    return stripe_emulator
