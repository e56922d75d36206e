"""The table of allowed status transitions, and the one function that applies it."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.db.models import Q

from hubsite.models import User
from tests.factories import cpu_instance, fund, make_model, make_ready_dataset
from training import sessions
from training.models import TrainingSession, YoloModel

Status = TrainingSession.Status
FINAL = (Status.STOPPED, Status.PAUSED, Status.COMPLETED, Status.FAILED)


@pytest.fixture
def model(user: User, tmp_path: Path) -> YoloModel:
    fund(user, as_adjustment=True)
    return make_model(user, make_ready_dataset(user, tmp_path), epochs=3)


def session_in(model: YoloModel, status: str) -> TrainingSession:
    return TrainingSession.objects.create(
        model=model,
        owner=model.owner,
        instance_type=cpu_instance(),
        target_epochs=3,
        status=status,
        worker_id="worker-a",
        status_detail="as it was",
    )


def test_the_table_names_every_status_and_no_final_status_leads_anywhere() -> None:
    assert set(sessions.ALLOWED_SOURCES) == set(Status)
    sources = set[str]().union(*sessions.ALLOWED_SOURCES.values())
    assert sources.isdisjoint(FINAL)  # Resume creates a new session instead


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (Status.COMPLETED, Status.TRAINING),
        (Status.STOPPED, Status.QUEUED),
        (Status.QUEUED, Status.TRAINING),  # a session trains only after a claim
        (Status.QUEUED, Status.COMPLETED),
        (Status.STOPPING, Status.TRAINING),
    ],
)
def test_an_illegal_transition_is_refused_and_the_row_is_unchanged(model: YoloModel, current: str, target: str) -> None:
    session = session_in(model, current)
    with pytest.raises(sessions.IllegalTransition):
        sessions.transition(session.pk, (current,), target, status_detail="changed")
    session.refresh_from_db()
    assert (session.status, session.status_detail) == (current, "as it was")


def test_one_illegal_source_refuses_the_whole_transition(model: YoloModel) -> None:
    session = session_in(model, Status.TRAINING)
    with pytest.raises(sessions.IllegalTransition):
        sessions.transition(session.pk, (Status.TRAINING, Status.COMPLETED), Status.STOPPED)
    session.refresh_from_db()
    assert session.status == Status.TRAINING


def test_a_legal_transition_moves_only_a_session_in_one_of_its_sources(model: YoloModel) -> None:
    session = session_in(model, Status.TRAINING)
    assert not sessions.transition(session.pk, (Status.INITIALIZING,), Status.TRAINING, status_detail="changed")
    session.refresh_from_db()
    assert (session.status, session.status_detail) == (Status.TRAINING, "as it was")

    assert sessions.transition(session.pk, (Status.TRAINING,), Status.STOPPING, status_detail="changed")
    session.refresh_from_db()
    assert (session.status, session.status_detail) == (Status.STOPPING, "changed")


def test_a_transition_is_conditional_on_its_extra_filter(model: YoloModel) -> None:
    session = session_in(model, Status.TRAINING)
    assert not sessions.transition(session.pk, sessions.WORKER_OWNED, Status.COMPLETED, where=Q(worker_id="worker-b"))
    assert sessions.transition(session.pk, sessions.WORKER_OWNED, Status.COMPLETED, where=Q(worker_id="worker-a"))
    session.refresh_from_db()
    assert session.status == Status.COMPLETED
