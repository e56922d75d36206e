"""Stop (web side): end a session at once when no worker runs it, else ask its worker."""

from __future__ import annotations

from django.utils import timezone

from training.models import TrainingSession
from training.sessions.reaper import worker_gone
from training.sessions.settling import end_session
from training.sessions.transitions import WORKER_OWNED, Status, transition


def request_stop(session: TrainingSession) -> str:
    """Stop a session. Returns the status it reached (stopping or a final status).

    A queued session, or one whose worker is gone (by the reaper's rule), ends at
    once; a running one is asked to stop and its worker ends it within seconds. A
    remote session (training.remote) moves to stopping; the run on the user's machine
    learns it from the answer to its next event and ends it stopped."""
    now = timezone.now()
    if session.remote:  # no worker of ours: the run's next epoch_end answer cancels it
        transition(
            session.pk,
            (Status.TRAINING,),
            Status.STOPPING,
            stop_requested_at=now,
            status_detail="Stopping: your machine stops after its current epoch",
        )
        return TrainingSession.objects.values_list("status", flat=True).get(pk=session.pk)
    if end_session(
        session.pk, (Status.QUEUED,), Status.STOPPED, detail="Stopped before it started", stop_requested_at=now
    ):
        return Status.STOPPED
    if end_session(
        session.pk,
        WORKER_OWNED,
        Status.STOPPED,
        where=worker_gone(session.pk, now),
        detail="Stopped; its worker was gone",
        stop_requested_at=now,
    ):
        return Status.STOPPED
    transition(
        session.pk,
        (Status.INITIALIZING, Status.TRAINING),
        Status.STOPPING,
        stop_requested_at=now,
        status_detail="Stopping after the current batch",
    )
    return TrainingSession.objects.values_list("status", flat=True).get(pk=session.pk)
