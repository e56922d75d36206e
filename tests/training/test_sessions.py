"""The session state machine, without training: every transition is conditional."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from django.core import mail
from django.utils import timezone

from hubsite.models import User
from tests.factories import cpu_instance, fund, make_model, make_ready_dataset
from training import sessions
from training.models import TrainingSession, YoloModel
from training.notifications import notify_session_ended
from training.presence import live_queues

Status = TrainingSession.Status


@pytest.fixture
def model(user: User, tmp_path: Path) -> YoloModel:
    fund(user, as_adjustment=True)
    return make_model(user, make_ready_dataset(user, tmp_path), epochs=3)


def queued(model: YoloModel, **fields: Any) -> TrainingSession:
    return TrainingSession.objects.create(
        model=model, owner=model.owner, instance_type=cpu_instance(), target_epochs=3, **fields
    )


def test_only_one_worker_can_claim_a_session(model: YoloModel) -> None:
    session = queued(model)
    assert sessions.claim(session.pk, "worker-a") is True
    assert sessions.claim(session.pk, "worker-b") is False
    session.refresh_from_db()
    assert (session.status, session.worker_id, session.attempts) == (Status.INITIALIZING, "worker-a", 1)


def test_a_queued_session_stops_at_once_without_mailing_the_user_who_stopped_it(
    model: YoloModel, django_capture_on_commit_callbacks: Any
) -> None:
    session = queued(model)
    with django_capture_on_commit_callbacks(execute=True):
        assert sessions.request_stop(session) == Status.STOPPED
    session.refresh_from_db()
    assert session.finished_at is not None
    assert session.stop_requested_at is not None
    assert mail.outbox == []


def test_a_running_session_is_asked_to_stop_and_its_worker_learns_it(model: YoloModel) -> None:
    session = queued(model)
    sessions.claim(session.pk, "worker-a")
    sessions.mark_training(session.pk, "worker-a")
    assert sessions.request_stop(session) == Status.STOPPING
    assert sessions.heartbeat(session.pk, "worker-a", None) == (True, True)
    assert sessions.heartbeat(session.pk, "worker-b", None) == (False, False)


def test_stop_on_a_session_whose_worker_is_gone_ends_it_at_once(model: YoloModel, settings: Any) -> None:
    session = queued(model)
    sessions.claim(session.pk, "worker-a")
    TrainingSession.objects.filter(pk=session.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=settings.TRAINING_HEARTBEAT_STALE_SECONDS + 1)
    )
    assert sessions.request_stop(session) == Status.STOPPED


def test_the_reaper_requeues_a_silent_session_then_fails_it_after_the_attempt_limit(
    model: YoloModel, settings: Any, redis_client: redis.Redis
) -> None:
    settings.TRAINING_MAX_ATTEMPTS = 2
    session = queued(model)
    stale = timezone.now() - timedelta(seconds=settings.TRAINING_HEARTBEAT_STALE_SECONDS + 5)
    for attempt in (1, 2):
        assert sessions.claim(session.pk, f"worker-{attempt}")
        TrainingSession.objects.filter(pk=session.pk).update(heartbeat_at=stale)
        sessions.reap_stale_sessions()
        session.refresh_from_db()
        if attempt == 1:
            assert (session.status, session.worker_id) == (Status.QUEUED, "")
            assert sessions.heartbeat(session.pk, "worker-1", None) == (False, False)  # the old owner is out
    assert session.status == Status.FAILED
    assert "lost 2 times" in session.failure_reason


def test_start_is_refused_while_another_session_of_the_account_is_active(
    user: User, model: YoloModel, tmp_path: Path, cpu_online: None
) -> None:
    first = sessions.start_session(user, model, sessions.StartRequest(instance_type=cpu_instance()))
    other = make_model(user, model.dataset, epochs=2)
    with pytest.raises(sessions.StartRefused, match="Another training session is active"):
        sessions.start_session(user, other, sessions.StartRequest(instance_type=cpu_instance()))
    assert TrainingSession.objects.get().pk == first.pk
    assert "train.cpu" in live_queues()


def test_start_is_refused_below_the_minimum_balance_with_the_amount_missing(
    outsider: User, tmp_path: Path, cpu_online: None
) -> None:
    broke = make_model(outsider, make_ready_dataset(outsider, tmp_path), epochs=2)
    with pytest.raises(sessions.StartRefused, match=r"US\$5\.00"):
        sessions.start_session(outsider, broke, sessions.StartRequest(instance_type=cpu_instance()))
    assert not TrainingSession.objects.exists()


def test_start_is_refused_when_the_dataset_is_not_ready(user: User, model: YoloModel, cpu_online: None) -> None:
    model.dataset.status = model.dataset.Status.INVALID
    model.dataset.save()
    with pytest.raises(sessions.StartRefused, match="dataset is not ready"):
        sessions.start_session(user, model, sessions.StartRequest(instance_type=cpu_instance()))


def test_resume_needs_a_checkpoint(user: User, model: YoloModel, cpu_online: None) -> None:
    stopped = queued(model, status=Status.STOPPED)
    with pytest.raises(sessions.StartRefused, match="no checkpoint"):
        sessions.resume_session(user, stopped, sessions.StartRequest(instance_type=cpu_instance()))


def test_the_owner_is_mailed_when_a_session_completes_or_fails(model: YoloModel) -> None:
    completed = queued(model, status=Status.COMPLETED)
    failed = queued(model, status=Status.FAILED, failure_reason="The instance ran out of memory.")
    notify_session_ended(completed.pk)
    notify_session_ended(failed.pk)
    assert [message.subject for message in mail.outbox] == [
        "Training completed: shapes-detector",
        "Training failed: shapes-detector",
    ]
    assert "ran out of memory" in str(mail.outbox[1].body)
    assert str(model.uid) in str(mail.outbox[0].body)


def test_a_model_name_with_line_breaks_still_gets_its_mail(model: YoloModel) -> None:
    YoloModel.objects.filter(pk=model.pk).update(name="shapes\r\nBcc: victim@example.com")
    notify_session_ended(queued(model, status=Status.COMPLETED).pk)
    assert [message.subject for message in mail.outbox] == ["Training completed: shapes Bcc: victim@example.com"]
    assert mail.outbox[0].to == [model.owner.email]


def test_no_mail_when_the_user_pressed_stop(model: YoloModel) -> None:
    stopped = queued(model, status=Status.STOPPED, stop_requested_at=timezone.now())
    notify_session_ended(stopped.pk)
    assert mail.outbox == []


def test_a_paused_session_that_asked_for_it_resumes_after_a_top_up(
    user: User, model: YoloModel, cpu_online: None, django_capture_on_commit_callbacks: Any
) -> None:
    from billing import services as billing

    model.last_checkpoint.name = f"{model.storage_prefix}/checkpoints/epoch-0001.pt"
    model.epochs_completed = 1
    model.save()
    paused = queued(model, status=Status.PAUSED, resume_after_top_up=True)
    with django_capture_on_commit_callbacks(execute=True):
        billing.adjust(billing.account_for(user).pk, 10_000_000, staff_user=None, reason="top-up stand-in")
    resumed = TrainingSession.objects.exclude(pk=paused.pk).get()
    assert (resumed.status, resumed.resumed_from_id, resumed.start_epoch) == (Status.QUEUED, paused.pk, 1)


def test_a_paused_session_without_the_option_waits_for_the_user(
    user: User, model: YoloModel, cpu_online: None, django_capture_on_commit_callbacks: Any
) -> None:
    from billing import services as billing

    queued(model, status=Status.PAUSED)
    with django_capture_on_commit_callbacks(execute=True):
        billing.adjust(billing.account_for(user).pk, 10_000_000, staff_user=None, reason="top-up stand-in")
    assert TrainingSession.objects.count() == 1
