from __future__ import annotations

import json
import secrets

import dramatiq
import pytest
import redis
from django.db import transaction

from hubsite.jobs import LIGHT_MAX_RETRIES, LIGHT_QUEUE, LIGHT_TIME_LIMIT_MS, light_actor, send_on_commit
from hubsite.tasks import ping, ping_key
from tests.helpers import WorkerFactory, wait_for


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
