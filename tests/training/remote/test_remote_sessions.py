"""Remote sessions beside the cloud's rules: free, outside the concurrent-session limit,
never reaped as a lost worker, ended when the machine goes quiet, and clearly marked
"Your hardware" on the Billing tab."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from django.utils import timezone

from hubsite.models import User
from tests.factories import cpu_instance, fund, make_model, make_ready_dataset
from training import sessions
from training.datasets.uri import dataset_uri
from training.models import RemoteUpload, TrainingSession, YoloModel
from training.remote import runs
from training.remote.errors import RemoteRefused
from training.remote.silence import end_silent_sessions
from training.remote.uploads import give_up_lost_remote_checks
from training.sessions import Status
from training.weights.task import LOST_CHECK_AFTER, LOST_CHECK_MESSAGE

pytestmark = pytest.mark.django_db

START = {"trainArgs": {"model": "yolo11n.yaml", "data": "/data/shapes/data.yaml"}, "epochs": 5}


def remote_session(user: User, **start: Any) -> TrainingSession:
    return runs.start_run(user, {**START, **start}, "remote-test", "exp", None)


def test_a_remote_session_does_not_count_against_the_concurrent_limit(
    user: User, model: YoloModel, cpu_online: None
) -> None:
    fund(user)
    remote_session(user)
    cloud = sessions.start_session(user, model, sessions.StartRequest(instance_type=cpu_instance()))
    assert cloud.status == Status.QUEUED
    assert not cloud.remote


def test_cloud_start_is_refused_for_a_model_training_remotely(user: User, cpu_online: None) -> None:
    fund(user)
    session = remote_session(user)
    with pytest.raises(sessions.StartRefused) as refused:
        sessions.start_session(user, session.model, sessions.StartRequest(instance_type=cpu_instance()))
    assert str(refused.value) == "This model is training on your hardware now. Stop that run first."
    assert TrainingSession.objects.filter(model=session.model).count() == 1


def test_the_reaper_leaves_a_quiet_remote_session_alone(user: User, settings: Any) -> None:
    session = remote_session(user)
    long_ago = timezone.now() - timedelta(seconds=settings.TRAINING_HEARTBEAT_STALE_SECONDS * 10)
    TrainingSession.objects.filter(pk=session.pk).update(heartbeat_at=long_ago)
    assert sessions.reap_stale_sessions() == 0
    session.refresh_from_db()
    assert session.status == Status.TRAINING


def test_a_silent_remote_session_ends_with_a_clear_message(user: User, settings: Any) -> None:
    silent, stopping, lively = remote_session(user), remote_session(user), remote_session(user)
    assert sessions.request_stop(stopping) == Status.STOPPING
    quiet = timezone.now() - timedelta(seconds=settings.REMOTE_TRAINING_SILENCE_SECONDS + 1)
    TrainingSession.objects.filter(pk__in=[silent.pk, stopping.pk]).update(heartbeat_at=quiet)
    assert end_silent_sessions() == 2
    silent.refresh_from_db()
    stopping.refresh_from_db()
    lively.refresh_from_db()
    assert silent.status == Status.FAILED
    assert "sent nothing for 60 minutes" in silent.failure_reason
    assert stopping.status == Status.STOPPED
    assert lively.status == Status.TRAINING


def test_a_resumed_run_continues_the_model_in_a_new_session(user: User) -> None:
    first = remote_session(user)
    second = runs.start_run(user, START, "remote-test", "exp", str(first.model.uid))
    first.refresh_from_db()
    assert second.model == first.model
    assert second.pk != first.pk
    assert first.status == Status.FAILED
    assert "new session" in first.failure_reason


def test_a_cloud_model_cannot_be_continued_remotely_while_it_trains(user: User, model: YoloModel) -> None:
    sessions_of_model = make_model(user, model.dataset)
    TrainingSession.objects.create(
        model=sessions_of_model, owner=user, instance_type=cpu_instance(), target_epochs=3, status=Status.TRAINING
    )
    with pytest.raises(RemoteRefused) as refused:
        runs.start_run(user, START, "p", "n", str(sessions_of_model.uid))
    assert refused.value.status == 409


@pytest.mark.parametrize(
    ("model_arg", "architecture"),
    [
        ("yolo11n.yaml", "yolo11n"),
        ("/home/me/runs/best.pt", "best"),
        ("C:\\w\\YOLO26s-seg.pt", "yolo26s-seg"),
        ("", "unknown"),
    ],
)
def test_architecture_is_a_sanitized_stem(model_arg: str, architecture: str) -> None:
    assert runs.architecture_of(model_arg) == architecture


def test_billing_tab_marks_your_hardware_free(user: User, owner_client: Client, tmp_path: Path) -> None:
    session = remote_session(user)
    runs.record_epoch(session, {"epoch": 0, "metrics": {"train/box_loss": 1.0}})
    page = owner_client.get(f"/models/{session.model.uid}/?tab=billing")
    assert page.status_code == 200
    assert "Your hardware — free" in page.content.decode()


def test_a_model_of_a_dataset_on_your_machine_is_never_started_in_the_cloud(user: User, cpu_online: None) -> None:
    fund(user)
    session = remote_session(user)
    runs.complete_run(session, {"results": {}})
    with pytest.raises(sessions.StartRefused, match="dataset is on your machine"):
        sessions.start_session(user, session.model, sessions.StartRequest(instance_type=cpu_instance()))


def test_a_model_trained_remotely_on_a_dataset_here_starts_new_models_instead(
    user: User, cpu_online: None, tmp_path: Path
) -> None:
    fund(user)
    session = runs.start_run(
        user, {**START, "trainArgs": {"data": dataset_uri(make_ready_dataset(user, tmp_path))}}, "p", "n", None
    )
    runs.complete_run(session, {"results": {}})
    with pytest.raises(sessions.StartRefused, match="trained on your hardware, so it continues there"):
        sessions.start_session(user, session.model, sessions.StartRequest(instance_type=cpu_instance()))
    assert TrainingSession.objects.filter(model=session.model).count() == 1


def test_an_upload_whose_check_was_lost_is_refused_saying_why_and_its_file_goes(user: User) -> None:
    session = remote_session(user)
    lost = RemoteUpload.objects.create(session=session, status=RemoteUpload.Status.CHECKING, file_name="best.pt")
    lost.upload.name = default_storage.save(f"tests/remote-lost-{lost.uid}.pt", ContentFile(b"weights"))
    lost.save()
    checking = RemoteUpload.objects.create(session=session, status=RemoteUpload.Status.CHECKING, file_name="last.pt")
    RemoteUpload.objects.filter(pk=lost.pk).update(updated_at=timezone.now() - LOST_CHECK_AFTER - timedelta(minutes=1))
    stored = lost.upload.name

    assert give_up_lost_remote_checks() == 1

    lost.refresh_from_db()
    assert (lost.status, lost.error, lost.upload.name) == (RemoteUpload.Status.REFUSED, LOST_CHECK_MESSAGE, "")
    assert not default_storage.exists(stored)
    assert RemoteUpload.objects.get(pk=checking.pk).status == RemoteUpload.Status.CHECKING
    assert give_up_lost_remote_checks() == 0
