"""Ending a session and settling its money, in one transaction."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from billing import services as billing
from training.evaluation import evaluate_new_weights
from training.models import TrainingSession
from training.notifications import notify_session_ended
from training.sessions.transitions import transition


def settle_session(session_id: int) -> None:
    """Release open holds and refund the unused part of a Timed prepayment (idempotent)."""
    billing.release_holds(session_id)
    session = TrainingSession.objects.select_related("owner").get(pk=session_id)
    if session.mode == TrainingSession.Mode.TIMED:
        used_ms = session.epochs.aggregate(total=Sum("duration_ms"))["total"] or 0
        billing.refund_timed(session_id, used_ms // 1000)
    transaction.on_commit(lambda: notify_session_ended(session_id))


def end_session(
    session_id: int,
    sources: tuple[str, ...],
    target: str,
    *,
    where: Q | None = None,
    detail: str = "",
    reason: str = "",
    **fields: Any,
) -> bool:
    """Move a session from one of ``sources`` to the final status ``target`` and settle
    its money, in one transaction; new best weights get an evaluation (never billed),
    queued if that commits. False (and nothing changed) if it was not in ``sources``."""
    with transaction.atomic():
        ended = transition(
            session_id,
            sources,
            target,
            where=where,
            status_detail=detail,
            failure_reason=reason,
            finished_at=timezone.now(),
            **fields,
        )
        if ended:
            settle_session(session_id)
            evaluate_new_weights(session_id)
    return ended
