"""What a training worker calls: claim a session, keep it, and end it.

A worker owns a session only after ``claim`` moved it from queued with its worker
id; every later write from the worker is conditional on that id, so two workers can
never both own one run.
"""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.db.models import F, Q
from django.utils import timezone

from training.models import TrainingSession
from training.sessions.settling import end_session
from training.sessions.transitions import WORKER_OWNED, Status, transition


def claim(session_id: int, worker_id: str) -> bool:
    """Compare-and-swap queued -> initializing; True when this worker now owns the session."""
    now = timezone.now()
    return transition(
        session_id,
        (Status.QUEUED,),
        Status.INITIALIZING,
        worker_id=worker_id,
        claimed_at=now,
        heartbeat_at=now,
        attempts=F("attempts") + 1,
        status_detail="Fetching the dataset",
    )


def owned(session_id: int, worker_id: str) -> TrainingSession | None:
    return TrainingSession.objects.filter(pk=session_id, worker_id=worker_id, status__in=WORKER_OWNED).first()


def set_detail(session_id: int, worker_id: str, detail: str) -> None:
    TrainingSession.objects.filter(pk=session_id, worker_id=worker_id, status__in=WORKER_OWNED).update(
        status_detail=detail
    )


def mark_training(session_id: int, worker_id: str) -> bool:
    return transition(
        session_id,
        (Status.INITIALIZING,),
        Status.TRAINING,
        where=Q(worker_id=worker_id),
        training_started_at=timezone.now(),
        status_detail="Training",
    )


def heartbeat(session_id: int, worker_id: str, log_tail: str | None) -> tuple[bool, bool]:
    """Refresh the heartbeat; returns (still owned, stop requested).

    One statement (UPDATE ... RETURNING): it runs every second or two beside the
    training, on the same cores."""
    table = TrainingSession._meta.db_table
    assignments = "heartbeat_at = %s" + (", log_tail = %s" if log_tail is not None else "")
    params: list[Any] = [timezone.now(), *([log_tail] if log_tail is not None else [])]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET {assignments} "  # noqa: S608 - fixed identifiers, values are parameters
            "WHERE id = %s AND worker_id = %s AND status IN (%s, %s, %s) RETURNING status, stop_requested_at",
            [*params, session_id, worker_id, *WORKER_OWNED],
        )
        row = cursor.fetchone()
    if row is None:
        return False, False
    status, stop_requested_at = row
    return True, status == Status.STOPPING or stop_requested_at is not None


def finish(
    session_id: int,
    worker_id: str,
    status: str,
    *,
    detail: str = "",
    reason: str = "",
    log_tail: str | None = None,
    resume_after_top_up: bool | None = None,
) -> bool:
    """End a session this worker owns with a final status and settle its money.
    ``resume_after_top_up=False`` clears the session's wish to resume after a top-up,
    in the same update (a pause for the monthly spending cap: a top-up does not help)."""
    fields: dict[str, Any] = {} if log_tail is None else {"log_tail": log_tail}
    if resume_after_top_up is not None:
        fields["resume_after_top_up"] = resume_after_top_up
    return end_session(
        session_id, WORKER_OWNED, status, where=Q(worker_id=worker_id), detail=detail, reason=reason, **fields
    )
