"""A lost training worker: noticed from its process's presence within seconds,
never confused with a live worker in a long epoch, and counted against the
attempt limit only when it made no progress."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from django.utils import timezone

from billing.models import LedgerLine
from hubsite.models import User
from tests.factories import cpu_instance, fund, make_model, make_ready_dataset
from tests.helpers import WorkerFactory, wait_for
from training import sessions
from training.models import EpochRecord, TrainingSession, YoloModel
from training.presence import announce_alive, live_queues, new_worker_id, process_of

Status = TrainingSession.Status
BASE_DIR = Path(django_settings.BASE_DIR)


@pytest.fixture
def model(user: User, tmp_path: Path) -> YoloModel:
    fund(user, as_adjustment=True)
    return make_model(user, make_ready_dataset(user, tmp_path), epochs=10)


def claimed(model: YoloModel, worker_id: str) -> TrainingSession:
    session = TrainingSession.objects.create(
        model=model, owner=model.owner, instance_type=cpu_instance(), target_epochs=10
    )
    assert sessions.claim(session.pk, worker_id)
    return session


def silent_for(session: TrainingSession, seconds: float) -> None:
    """The session's last heartbeat was ``seconds`` ago."""
    TrainingSession.objects.filter(pk=session.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=seconds))


def complete_an_epoch(session: TrainingSession) -> None:
    epoch = EpochRecord.objects.filter(model=session.model).count() + 1
    now = timezone.now()
    EpochRecord.objects.create(
        session=session, model=session.model, epoch=epoch, started_at=now, finished_at=now, duration_ms=1000
    )


def lose_the_worker(session: TrainingSession, settings: Any) -> TrainingSession:
    """The worker of the current claim went silent past the stale limit; the reaper runs."""
    silent_for(session, settings.TRAINING_HEARTBEAT_STALE_SECONDS + 1)
    sessions.reap_stale_sessions()
    session.refresh_from_db()
    return session


# -- the reaper on database state ---------------------------------------------------------


def test_a_session_whose_worker_process_is_gone_is_requeued_long_before_the_stale_limit(
    user: User, tmp_path: Path, settings: Any, redis_client: redis.Redis
) -> None:
    dataset = make_ready_dataset(user, tmp_path / "other")
    lost = claimed(make_model(user, dataset, epochs=10), "gone-host-1-aaaa/1")
    alive = claimed(make_model(user, dataset, epochs=10), "live-host-2-bbbb/1")
    announce_alive("live-host-2-bbbb")
    for session in (lost, alive):
        silent_for(session, settings.WORKER_ALIVE_TTL_SECONDS + 1)
    assert settings.WORKER_ALIVE_TTL_SECONDS + 1 < settings.TRAINING_HEARTBEAT_STALE_SECONDS

    assert sessions.reap_stale_sessions() == 1

    lost.refresh_from_db()
    alive.refresh_from_db()
    assert (lost.status, lost.worker_id) == (Status.QUEUED, "")
    assert (alive.status, alive.worker_id) == (Status.INITIALIZING, "live-host-2-bbbb/1")
    assert sessions.heartbeat(lost.pk, "gone-host-1-aaaa/1", None) == (False, False)  # the old owner is out


def test_stop_ends_a_session_whose_worker_process_is_gone_at_once(
    model: YoloModel, settings: Any, redis_client: redis.Redis
) -> None:
    session = claimed(model, "gone-host-1-aaaa/1")
    silent_for(session, settings.WORKER_ALIVE_TTL_SECONDS + 1)

    assert sessions.request_stop(session) == Status.STOPPED

    session.refresh_from_db()
    assert session.status_detail == "Stopped; its worker was gone"
    live = claimed(make_model(model.owner, model.dataset, epochs=10), "live-host-2-bbbb/1")
    announce_alive("live-host-2-bbbb")
    silent_for(live, settings.WORKER_ALIVE_TTL_SECONDS + 1)
    assert sessions.request_stop(live) == Status.STOPPING  # a live worker stops it itself


def test_a_recent_heartbeat_keeps_a_session_whose_presence_is_missing(
    model: YoloModel, settings: Any, redis_client: redis.Redis
) -> None:
    # A flushed or restarted Redis loses every alive key until the next announcement.
    session = claimed(model, "host-1-aaaa/1")
    silent_for(session, settings.WORKER_ALIVE_TTL_SECONDS - 2)

    assert sessions.reap_stale_sessions() == 0
    assert TrainingSession.objects.get(pk=session.pk).status == Status.INITIALIZING


def test_with_redis_unreachable_only_the_stale_heartbeat_rule_requeues(
    model: YoloModel, settings: Any, redis_client: redis.Redis
) -> None:
    session = claimed(model, "host-1-aaaa/1")
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there: presence is unknown, not gone
    silent_for(session, settings.WORKER_ALIVE_TTL_SECONDS + 1)

    assert sessions.reap_stale_sessions() == 0
    assert TrainingSession.objects.get(pk=session.pk).status == Status.INITIALIZING

    silent_for(session, settings.TRAINING_HEARTBEAT_STALE_SECONDS + 1)
    assert sessions.reap_stale_sessions() == 1
    assert TrainingSession.objects.get(pk=session.pk).status == Status.QUEUED


def test_presence_detection_can_be_turned_off(model: YoloModel, settings: Any, redis_client: redis.Redis) -> None:
    settings.TRAINING_REQUEUE_ON_LOST_PRESENCE = False
    session = claimed(model, "host-1-aaaa/1")
    silent_for(session, settings.WORKER_ALIVE_TTL_SECONDS + 1)
    assert sessions.reap_stale_sessions() == 0


def test_a_worker_id_names_its_process_and_differs_for_each_claim() -> None:
    first, second = new_worker_id(), new_worker_id()
    assert first != second
    assert process_of(first) == process_of(second)
    assert str(os.getpid()) in process_of(first)
    assert len(first) <= TrainingSession._meta.get_field("worker_id").max_length  # type: ignore[operator]


def test_a_session_lost_after_each_completed_epoch_is_requeued_every_time(
    model: YoloModel, settings: Any, redis_client: redis.Redis
) -> None:
    settings.TRAINING_MAX_ATTEMPTS = 3
    session = TrainingSession.objects.create(
        model=model, owner=model.owner, instance_type=cpu_instance(), target_epochs=10
    )
    for attempt in range(1, 6):
        assert sessions.claim(session.pk, f"host-{attempt}-aaaa/1")
        complete_an_epoch(session)
        session = lose_the_worker(session, settings)
        assert session.status == Status.QUEUED, session.failure_reason
        assert session.attempts == 0  # a claim that completed an epoch starts the count again
    assert sessions.claim(session.pk, "host-6-aaaa/1")
    assert TrainingSession.objects.get(pk=session.pk).attempts == 1


def test_a_session_lost_three_times_in_a_row_without_an_epoch_fails_with_the_reason(
    model: YoloModel, settings: Any, redis_client: redis.Redis
) -> None:
    settings.TRAINING_MAX_ATTEMPTS = 3
    session = TrainingSession.objects.create(
        model=model, owner=model.owner, instance_type=cpu_instance(), target_epochs=10
    )
    assert sessions.claim(session.pk, "host-0-aaaa/1")
    complete_an_epoch(session)  # progress earlier on does not excuse later fruitless claims
    assert lose_the_worker(session, settings).status == Status.QUEUED

    for attempt in (1, 2, 3):
        assert sessions.claim(session.pk, f"host-{attempt}-aaaa/1")
        session = lose_the_worker(session, settings)
        assert session.status == (Status.QUEUED if attempt < 3 else Status.FAILED)

    assert "lost 3 times in a row before completing an epoch" in session.failure_reason
    assert session.finished_at is not None
    assert EpochRecord.objects.filter(session=session).count() == 1


def test_an_alive_ttl_shorter_than_two_announcements_is_refused_at_startup() -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=BASE_DIR,
        env={**os.environ, "WORKER_ALIVE_INTERVAL_SECONDS": "3", "WORKER_ALIVE_TTL_SECONDS": "5"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "WORKER_ALIVE_TTL_SECONDS=5 must be at least twice WORKER_ALIVE_INTERVAL_SECONDS=3" in result.stderr


# -- real worker processes ----------------------------------------------------------------

# The production timings, stated so a developer's environment cannot shorten them:
# only presence can notice the lost worker within 15 s here, not the heartbeat limit.
DEFAULT_TIMING = {
    "WORKER_ALIVE_INTERVAL_SECONDS": "2",
    "WORKER_ALIVE_TTL_SECONDS": "8",
    "TRAINING_REAPER_INTERVAL_SECONDS": "3",
    "TRAINING_HEARTBEAT_INTERVAL_SECONDS": "2",
    "TRAINING_HEARTBEAT_STALE_SECONDS": "60",
}


def status_of(session: TrainingSession) -> str:
    return TrainingSession.objects.values_list("status", flat=True).get(pk=session.pk)


def start(user: User, model: YoloModel) -> TrainingSession:
    return sessions.start_session(user, model, sessions.StartRequest(instance_type=cpu_instance()))


@pytest.mark.training
@pytest.mark.django_db(transaction=True)
def test_a_killed_worker_is_requeued_within_15_s_and_another_resumes_charging_each_epoch_once(
    user: User, tmp_path: Path, start_worker: WorkerFactory
) -> None:
    fund(user, as_adjustment=True)
    model = make_model(user, make_ready_dataset(user, tmp_path, train_images=32, val_images=8), epochs=3, batch=2)
    start_worker("default", extra_env=DEFAULT_TIMING)  # the light worker runs the reaper
    doomed = start_worker("train.cpu", extra_env=DEFAULT_TIMING)
    wait_for(lambda: "train.cpu" in live_queues(), timeout=20)
    session = start(user, model)
    wait_for(lambda: EpochRecord.objects.filter(model=model).count() >= 1, timeout=600, interval=0.1)
    time.sleep(0.3)  # inside epoch 2

    os.killpg(doomed.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    doomed.wait()
    wait_for(lambda: status_of(session) == Status.QUEUED, timeout=20, interval=0.1)
    noticed_after = time.monotonic() - killed_at
    print(f"requeued {noticed_after:.1f} s after the kill")
    assert noticed_after < 15
    completed_before = EpochRecord.objects.filter(model=model).count()

    start_worker("train.cpu", extra_env=DEFAULT_TIMING)
    wait_for(lambda: status_of(session) in (Status.COMPLETED, Status.FAILED), timeout=600, interval=0.2)
    session.refresh_from_db()
    assert session.status == Status.COMPLETED, session.failure_reason
    assert session.attempts == 1  # the lost claim had completed an epoch: it does not count
    assert list(EpochRecord.objects.filter(model=model).values_list("epoch", flat=True)) == [1, 2, 3]
    assert completed_before >= 1
    charged = LedgerLine.objects.filter(session=session, kind=LedgerLine.Kind.EPOCH_CHARGE)
    assert sorted(epoch or 0 for epoch in charged.values_list("epoch", flat=True)) == [1, 2, 3]


@pytest.mark.training
@pytest.mark.django_db(transaction=True)
def test_a_live_worker_in_an_epoch_longer_than_the_presence_ttl_is_never_requeued(
    user: User, tmp_path: Path, start_worker: WorkerFactory
) -> None:
    # A 2 s presence TTL, the reaper every second, and heartbeats only every 3 s: the
    # heartbeat is often older than the TTL, so only the worker's presence keeps it.
    timing = {
        **DEFAULT_TIMING,
        "WORKER_ALIVE_INTERVAL_SECONDS": "1",
        "WORKER_ALIVE_TTL_SECONDS": "2",
        "TRAINING_REAPER_INTERVAL_SECONDS": "1",
        "TRAINING_HEARTBEAT_INTERVAL_SECONDS": "3",
    }
    fund(user, as_adjustment=True)
    # About 8 s an epoch on an idle 2-core machine: well past the 2 s TTL.
    dataset = make_ready_dataset(user, tmp_path, train_images=160, val_images=8)
    model = make_model(user, dataset, epochs=1, batch=2, imgsz=160)
    start_worker("default", extra_env=timing)
    start_worker("train.cpu", extra_env=timing)
    wait_for(lambda: "train.cpu" in live_queues(), timeout=20)
    session = start(user, model)
    owner = wait_for(lambda: TrainingSession.objects.values_list("worker_id", flat=True).get(pk=session.pk))

    seen: set[str] = set()

    def finished() -> bool:
        seen.add(status_of(session))
        return bool(seen & {Status.COMPLETED, Status.FAILED})

    wait_for(finished, timeout=600, interval=0.2)
    session.refresh_from_db()
    assert session.status == Status.COMPLETED, session.failure_reason
    assert Status.QUEUED not in seen
    assert (session.worker_id, session.attempts) == (owner, 1)
    durations = list(EpochRecord.objects.filter(session=session).values_list("duration_ms", flat=True))
    print(f"epoch took {durations} ms")
    assert len(durations) == 1
    assert durations[0] > 2 * 1000, "the epoch must outlast the TTL for this test to mean anything"
