"""The reaper: requeue a session whose worker is gone, fail one whose workers keep
being lost before they complete an epoch. The light worker runs it every
``TRAINING_REAPER_INTERVAL_SECONDS`` (registered in ``training.apps``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from billing import services as billing
from training.models import EpochRecord, TrainingSession
from training.presence import gone_processes, process_of
from training.sessions.settling import end_session
from training.sessions.starting import enqueue_training
from training.sessions.transitions import WORKER_OWNED, Status, transition

logger = logging.getLogger(__name__)


def stale_before() -> timedelta:
    return timedelta(seconds=settings.TRAINING_HEARTBEAT_STALE_SECONDS)


@dataclass(frozen=True)
class _Claim:
    """A worker-owned session as the reaper sees it."""

    session_id: int
    status: str
    worker_id: str
    attempts: int
    claimed_at: datetime
    heartbeat_at: datetime
    queue_name: str


def reap_stale_sessions() -> int:
    """Requeue sessions whose worker is gone; fail one whose workers keep being lost
    before they complete an epoch. Returns how many were requeued.

    A worker is gone when its process stopped announcing itself alive and the
    session's heartbeat is at least that old, or, whatever Redis says, when the
    heartbeat is older than ``TRAINING_HEARTBEAT_STALE_SECONDS``. A live worker in a
    long epoch keeps both fresh from its own threads. Safe to run anywhere and any
    number of times: each step is an UPDATE conditional on the claim's worker id."""
    now = timezone.now()
    stale, quiet = now - stale_before(), now - timedelta(seconds=settings.WORKER_ALIVE_TTL_SECONDS)
    claims = [
        _Claim(pk, status, worker_id, attempts, claimed_at, heartbeat_at, f"train.{slug}")
        for pk, status, worker_id, attempts, claimed_at, heartbeat_at, slug in TrainingSession.objects.filter(
            status__in=WORKER_OWNED, heartbeat_at__lt=max(stale, quiet), remote=False
        ).values_list("pk", "status", "worker_id", "attempts", "claimed_at", "heartbeat_at", "instance_type__slug")
        if claimed_at is not None and heartbeat_at is not None  # claim sets both
    ]
    gone = _gone_workers({claim.worker_id for claim in claims if claim.heartbeat_at < quiet})
    reaped = 0
    for claim in claims:
        if claim.heartbeat_at < stale or claim.worker_id in gone:
            reaped += _reap(claim)
    return reaped


def worker_gone(session_id: int, now: datetime) -> Q:
    """The reaper's rule as a filter: the heartbeat is stale, or the current worker's
    process stopped announcing itself and the heartbeat is as old."""
    stale = Q(heartbeat_at__lt=now - stale_before())  # claim sets heartbeat_at, so it is never empty here
    worker_id = TrainingSession.objects.filter(pk=session_id).values_list("worker_id", flat=True).first()
    if not worker_id or worker_id not in _gone_workers({worker_id}):
        return stale
    quiet = Q(heartbeat_at__lt=now - timedelta(seconds=settings.WORKER_ALIVE_TTL_SECONDS), worker_id=worker_id)
    return stale | quiet


def _gone_workers(worker_ids: set[str]) -> set[str]:
    """The worker ids whose process no longer announces itself alive; none when that
    cannot be known (presence off, or Redis unreachable: never "gone" for lack of an answer)."""
    if not settings.TRAINING_REQUEUE_ON_LOST_PRESENCE or not worker_ids:
        return set()
    try:
        gone = gone_processes({process_of(worker_id) for worker_id in worker_ids})
    except redis.RedisError:
        logger.warning("worker presence unknown (Redis unreachable); only stale heartbeats count", exc_info=True)
        return set()
    return {worker_id for worker_id in worker_ids if process_of(worker_id) in gone}


def _reap(claim: _Claim) -> int:
    """End, fail or requeue one session whose worker is gone; 1 if it was requeued."""
    if claim.status == Status.STOPPING:
        end_session(
            claim.session_id,
            (Status.STOPPING,),
            Status.STOPPED,
            where=Q(worker_id=claim.worker_id),
            detail="Stopped; its worker was gone",
        )
        return 0
    progressed = EpochRecord.objects.filter(session_id=claim.session_id, finished_at__gte=claim.claimed_at).exists()
    if not progressed and claim.attempts >= settings.TRAINING_MAX_ATTEMPTS:
        reason = (
            f"The worker was lost {claim.attempts} times in a row before completing an epoch, so the session "
            "was stopped for good. Your completed epochs and their weights are kept; Resume continues from "
            "the last checkpoint."
        )
        end_session(claim.session_id, WORKER_OWNED, Status.FAILED, where=Q(worker_id=claim.worker_id), reason=reason)
        return 0
    if _requeue(claim.session_id, claim.worker_id, claim.queue_name, progressed=progressed):
        logger.warning("requeued session %s: its worker %s was lost", claim.session_id, claim.worker_id)
        return 1
    return 0


def _requeue(session_id: int, worker_id: str, queue_name: str, *, progressed: bool) -> bool:
    """Put a session whose worker was lost back in its queue (its open hold released).

    ``attempts`` counts claims in a row without a completed epoch: a lost claim that
    completed one starts the count again, so preemptions never fail a run that progresses."""
    with transaction.atomic():
        requeued = transition(
            session_id,
            WORKER_OWNED,
            Status.QUEUED,
            where=Q(worker_id=worker_id),
            worker_id="",
            attempts=0 if progressed else F("attempts"),
            status_detail="The worker was lost; resuming from the last checkpoint on another worker",
        )
        if requeued:
            billing.release_holds(session_id)
            transaction.on_commit(lambda: enqueue_training(session_id, queue_name))
    return requeued
