from __future__ import annotations

import json
import secrets
import threading
import time
from types import SimpleNamespace

import dramatiq
import pytest
import redis
from django.db import transaction

from hubsite import jobs
from hubsite.jobs import (
    LIGHT_MAX_RETRIES,
    LIGHT_QUEUE,
    LIGHT_TIME_LIMIT_MS,
    PeriodicJobs,
    light_actor,
    register_periodic,
    send_on_commit,
)
from hubsite.tasks import ping, ping_key
from tests.helpers import WorkerFactory, wait_for
from tests.hubsite.periodic_probe import probe_key
from training import sessions
from training.engine.actors import TRAINING_TIME_LIMIT_MS, export_model
from training.exports import EXPORT_MODEL_ACTOR


def queued_ping_tokens(redis_client: redis.Redis) -> list[str]:
    broker = dramatiq.get_broker()
    namespace = broker.namespace  # type: ignore[attr-defined]
    raw = redis_client.hvals(f"{namespace}:{LIGHT_QUEUE}.msgs")
    return [json.loads(body)["args"][0] for body in raw]


@pytest.mark.django_db(transaction=True)
def test_a_job_sent_on_commit_runs_only_if_the_transaction_commits(
    redis_client: redis.Redis, start_worker: WorkerFactory
) -> None:
    rolled_back, committed = secrets.token_hex(8), secrets.token_hex(8)

    def send_then_fail() -> None:
        with transaction.atomic():
            send_on_commit(ping, rolled_back)
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        send_then_fail()
    with transaction.atomic():
        send_on_commit(ping, committed)
        assert queued_ping_tokens(redis_client) == []  # nothing leaves before the commit

    assert queued_ping_tokens(redis_client) == [committed]

    start_worker("default")
    wait_for(lambda: redis_client.get(ping_key(committed)))
    assert redis_client.get(ping_key(rolled_back)) is None


def test_light_actors_state_queue_time_limit_and_retries() -> None:
    @light_actor()
    def sample() -> None:
        """A throwaway actor to read the options from."""

    assert sample.queue_name == LIGHT_QUEUE
    assert sample.options["time_limit"] == LIGHT_TIME_LIMIT_MS
    assert sample.options["max_retries"] == LIGHT_MAX_RETRIES
    assert ping.options["max_retries"] == 0


def test_training_is_sent_by_actor_name_and_runs_with_the_actors_options(redis_client: redis.Redis) -> None:
    broker = dramatiq.get_broker()
    sessions.enqueue_training(42, "train.probe")
    [raw] = redis_client.hvals(f"{broker.namespace}:train.probe.msgs")  # type: ignore[attr-defined]
    assert isinstance(raw, bytes)
    message = dramatiq.Message.decode(raw)
    assert (message.queue_name, message.actor_name, message.args) == (
        "train.probe",
        sessions.TRAIN_SESSION_ACTOR,
        (42,),
    )
    assert set(message.options) == {"redis_message_id"}  # nothing overrides the actor's own options
    actor = broker.get_actor(message.actor_name)
    assert (actor.options["time_limit"], actor.options["max_retries"]) == (TRAINING_TIME_LIMIT_MS, 0)


def test_exports_are_sent_by_a_name_the_export_actor_answers_to() -> None:
    actor = dramatiq.get_broker().get_actor(EXPORT_MODEL_ACTOR)
    assert actor is export_model
    assert actor.queue_name == LIGHT_QUEUE


@pytest.fixture
def no_periodic_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty registry, so a middleware booted in the test runs only the test's jobs."""
    monkeypatch.setattr(jobs, "_periodic_jobs", {})


def periodic_threads() -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.startswith("periodic-")]


def test_a_periodic_job_runs_in_its_own_thread_until_the_worker_shuts_down(no_periodic_jobs: None) -> None:
    runs: list[str] = []
    register_periodic("tests.counter", lambda: runs.append(threading.current_thread().name), every=lambda: 0.05)
    middleware, light_worker = PeriodicJobs(), SimpleNamespace(consumer_whitelist={LIGHT_QUEUE})
    middleware.after_worker_boot(dramatiq.get_broker(), light_worker)
    wait_for(lambda: len(runs) >= 3)
    assert set(runs) == {"periodic-tests.counter"}

    middleware.before_worker_shutdown(dramatiq.get_broker(), light_worker)
    wait_for(lambda: not periodic_threads())


def test_a_job_registered_not_to_run_at_boot_waits_one_interval(no_periodic_jobs: None) -> None:
    runs: list[str] = []
    register_periodic("tests.at-boot", lambda: runs.append("at boot"), every=lambda: 60)
    register_periodic("tests.later", lambda: runs.append("later"), every=lambda: 60, at_boot=False)
    middleware, light_worker = PeriodicJobs(), SimpleNamespace(consumer_whitelist={LIGHT_QUEUE})
    middleware.after_worker_boot(dramatiq.get_broker(), light_worker)
    wait_for(lambda: runs)
    time.sleep(0.3)
    middleware.before_worker_shutdown(dramatiq.get_broker(), light_worker)
    assert runs == ["at boot"]
    wait_for(lambda: not periodic_threads())


def test_a_worker_without_the_light_queue_runs_no_periodic_job(no_periodic_jobs: None) -> None:
    register_periodic("tests.never", lambda: pytest.fail("ran on a training worker"), every=lambda: 0.05)
    PeriodicJobs().after_worker_boot(dramatiq.get_broker(), SimpleNamespace(consumer_whitelist={"train.cpu"}))
    assert periodic_threads() == []


def test_a_light_worker_runs_a_registered_job_again_after_it_failed(
    redis_client: redis.Redis, start_worker: WorkerFactory
) -> None:
    start_worker("default", extra_env={"DJANGO_SETTINGS_MODULE": "tests.hubsite.periodic_probe_settings"})
    wait_for(lambda: int(redis_client.get(probe_key()) or 0) >= 3)  # the first run raised
