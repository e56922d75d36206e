"""Ending remote sessions whose machine went quiet: no event for
``REMOTE_TRAINING_SILENCE_SECONDS``. A periodic job on light workers (training/apps.py)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from training.models import TrainingSession
from training.remote.runs import ENDABLE
from training.sessions.settling import end_session
from training.sessions.transitions import Status


def end_silent_sessions() -> int:
    """Fail (or, if Stop was asked, stop) each silent remote session; returns how many."""
    silence = timedelta(seconds=settings.REMOTE_TRAINING_SILENCE_SECONDS)
    quiet_since = timezone.now() - silence
    minutes = settings.REMOTE_TRAINING_SILENCE_SECONDS // 60
    ended = 0
    silent = TrainingSession.objects.filter(remote=True, status__in=ENDABLE, heartbeat_at__lt=quiet_since)
    for session_id, status in silent.values_list("pk", "status"):
        if status == Status.STOPPING:
            ended += end_session(
                session_id, (Status.STOPPING,), Status.STOPPED, detail="Stopped; your machine went quiet"
            )
            continue
        ended += end_session(
            session_id,
            (Status.TRAINING,),
            Status.FAILED,
            detail="Your machine went quiet",
            reason=(
                f"Your machine sent nothing for {minutes} minutes, so this session was ended. Its recorded epochs "
                "are kept; if the run is still going, its next event is answered with a stop."
            ),
        )
    return ended
