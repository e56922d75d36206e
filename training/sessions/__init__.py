"""Training sessions: every state transition, as one conditional UPDATE each.

States (DESIGN.md): queued -> initializing -> training -> completed, with stopping
-> stopped, paused and failed on the side. A worker owns a session only after
``claim`` moved it from queued with its worker id; every later write from the
worker is conditional on that id, so two workers can never both own one run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import redis
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from billing import services as billing
from hubsite.models import User
from training.engine.presence import gone_processes, live_queues, process_of
from training.models import Dataset, EpochRecord, InstanceType, TrainingSession, YoloModel

logger = logging.getLogger(__name__)

Status = TrainingSession.Status
ACTIVE = TrainingSession.ACTIVE_STATUSES
WORKER_OWNED = (Status.INITIALIZING, Status.TRAINING, Status.STOPPING)
RESUMABLE = (Status.STOPPED, Status.PAUSED, Status.FAILED)


class StartRefused(Exception):
    """Start or Resume cannot happen; the message says why, in the user's words."""


@dataclass(frozen=True)
class StartRequest:
    instance_type: InstanceType
    mode: str = TrainingSession.Mode.EPOCHS
    target_epochs: int | None = None  # None: the model's own target
    time_budget_seconds: int | None = None  # Timed mode only
    resume_after_top_up: bool = False


def stale_before() -> timedelta:
    return timedelta(seconds=settings.TRAINING_HEARTBEAT_STALE_SECONDS)


# -- Start, Resume, Stop (web side) -------------------------------------------------


def start_session(user: User, model: YoloModel, request: StartRequest) -> TrainingSession:
    """Create a queued session and enqueue it for a worker of its instance type."""
    return _create_session(user, model, request, resumed_from=None)


def resume_session(user: User, previous: TrainingSession, request: StartRequest) -> TrainingSession:
    """Continue ``previous`` (stopped, paused, or failed with a checkpoint) at the next epoch."""
    if previous.status not in RESUMABLE:
        raise StartRefused("Only a stopped, paused or failed session can be resumed.")
    if not previous.model.last_checkpoint:
        raise StartRefused("There is no checkpoint to resume from yet: start a new training instead.")
    return _create_session(user, previous.model, request, resumed_from=previous)


def _create_session(
    user: User, model: YoloModel, request: StartRequest, *, resumed_from: TrainingSession | None
) -> TrainingSession:
    instance_type = request.instance_type
    check_startable(model, instance_type)
    target = request.target_epochs or model.target_epochs
    if request.mode == TrainingSession.Mode.EPOCHS and target <= model.epochs_completed:
        raise StartRefused(
            f"The model has already completed {model.epochs_completed} epochs; set a target above that to continue."
        )
    try:
        with transaction.atomic():
            account = billing.lock_account(user.pk)  # serializes Starts of one account
            active = TrainingSession.objects.filter(owner=user, status__in=ACTIVE).count()
            if active >= account.concurrent_session_limit:
                raise StartRefused(
                    "Another training session is active on your account. Stop it or wait for it to finish."
                )
            session = TrainingSession.objects.create(
                model=model,
                owner=user,
                instance_type=instance_type,
                price_per_hour_micros=instance_type.price_per_hour_micros,
                mode=request.mode,
                target_epochs=target,
                time_budget_seconds=request.time_budget_seconds,
                start_epoch=model.epochs_completed,
                resume_after_top_up=request.resume_after_top_up,
                resumed_from=resumed_from,
                status_detail="Waiting for a worker",
            )
            if request.mode == TrainingSession.Mode.TIMED:
                billing.prepay_timed(session)
            else:
                billing.require_start_balance(account)
            transaction.on_commit(lambda: enqueue_training(session.pk, instance_type.queue_name))
    except billing.InsufficientBalance as error:
        raise StartRefused(str(error)) from error
    except IntegrityError as error:  # one_active_session_per_model
        raise StartRefused("This model is already training.") from error
    return session


def check_startable(model: YoloModel, instance_type: InstanceType) -> None:
    if model.dataset.status != Dataset.Status.READY:
        raise StartRefused("The model's dataset is not ready: it must pass validation first.")
    if not instance_type.active:
        raise StartRefused(f"{instance_type.name} is not offered at the moment.")
    if instance_type.queue_name not in live_queues():
        raise StartRefused(
            f"No {instance_type.name} worker is online right now, so the session would never start. "
            "Choose another instance type or try again later."
        )


def enqueue_training(session_id: int, queue_name: str) -> None:
    from training.engine.actors import train_session

    message = train_session.message(session_id).copy(queue_name=queue_name)
    train_session.broker.enqueue(message)


def request_stop(session: TrainingSession) -> str:
    """Stop a session. Returns the status it reached (stopping or a final status).

    A queued session, or one whose worker is gone (by the reaper's rule), ends at
    once; a running one is asked to stop and its worker ends it within seconds."""
    now = timezone.now()
    if _end_session(
        session.pk, (Status.QUEUED,), Status.STOPPED, detail="Stopped before it started", stop_requested_at=now
    ):
        return Status.STOPPED
    if _end_session(
        session.pk,
        WORKER_OWNED,
        Status.STOPPED,
        extra=_worker_gone(session.pk, now),
        detail="Stopped; its worker was gone",
        stop_requested_at=now,
    ):
        return Status.STOPPED
    TrainingSession.objects.filter(pk=session.pk, status__in=(Status.INITIALIZING, Status.TRAINING)).update(
        status=Status.STOPPING, stop_requested_at=now, status_detail="Stopping after the current batch"
    )
    return TrainingSession.objects.values_list("status", flat=True).get(pk=session.pk)


def _worker_gone(session_id: int, now: datetime) -> Q:
    """The reaper's rule as a filter: the heartbeat is stale, or the current worker's
    process stopped announcing itself and the heartbeat is as old."""
    stale = Q(heartbeat_at__lt=now - stale_before())  # claim sets heartbeat_at, so it is never empty here
    worker_id = TrainingSession.objects.filter(pk=session_id).values_list("worker_id", flat=True).first()
    if not worker_id or worker_id not in _gone_workers({worker_id}):
        return stale
    quiet = Q(heartbeat_at__lt=now - timedelta(seconds=settings.WORKER_ALIVE_TTL_SECONDS), worker_id=worker_id)
    return stale | quiet


def _end_session(
    session_id: int,
    sources: tuple[str, ...],
    target: str,
    *,
    extra: Q | None = None,
    detail: str = "",
    reason: str = "",
    **fields: Any,
) -> bool:
    """Move a session from one of ``sources`` to the final status ``target`` and settle
    its money, in one transaction. False (and nothing changed) if it was not in ``sources``."""
    query = TrainingSession.objects.filter(pk=session_id, status__in=sources)
    if extra is not None:
        query = query.filter(extra)
    with transaction.atomic():
        changed = query.update(
            status=target, status_detail=detail, failure_reason=reason, finished_at=timezone.now(), **fields
        )
        if changed == 1:
            settle_session(session_id)
    return changed == 1


# -- worker side ---------------------------------------------------------------------


def claim(session_id: int, worker_id: str) -> bool:
    """Compare-and-swap queued -> initializing; True when this worker now owns the session."""
    now = timezone.now()
    return (
        TrainingSession.objects.filter(pk=session_id, status=Status.QUEUED).update(
            status=Status.INITIALIZING,
            worker_id=worker_id,
            claimed_at=now,
            heartbeat_at=now,
            attempts=F("attempts") + 1,
            status_detail="Fetching the dataset",
        )
        == 1
    )


def owned(session_id: int, worker_id: str) -> TrainingSession | None:
    return TrainingSession.objects.filter(pk=session_id, worker_id=worker_id, status__in=WORKER_OWNED).first()


def set_detail(session_id: int, worker_id: str, detail: str) -> None:
    TrainingSession.objects.filter(pk=session_id, worker_id=worker_id, status__in=WORKER_OWNED).update(
        status_detail=detail
    )


def mark_training(session_id: int, worker_id: str) -> bool:
    updated = TrainingSession.objects.filter(pk=session_id, worker_id=worker_id, status=Status.INITIALIZING).update(
        status=Status.TRAINING, training_started_at=timezone.now(), status_detail="Training"
    )
    return updated == 1


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
    session_id: int, worker_id: str, status: str, *, detail: str = "", reason: str = "", log_tail: str | None = None
) -> bool:
    """End a session this worker owns with a final status and settle its money."""
    fields = {} if log_tail is None else {"log_tail": log_tail}
    return _end_session(
        session_id, WORKER_OWNED, status, extra=Q(worker_id=worker_id), detail=detail, reason=reason, **fields
    )


def settle_session(session_id: int) -> None:
    """Release open holds and refund the unused part of a Timed prepayment (idempotent)."""
    billing.release_holds(session_id)
    session = TrainingSession.objects.select_related("owner").get(pk=session_id)
    if session.mode == TrainingSession.Mode.TIMED:
        used_ms = session.epochs.aggregate(total=Sum("duration_ms"))["total"] or 0
        billing.refund_timed(session_id, used_ms // 1000)
    from training.notifications import notify_session_ended

    transaction.on_commit(lambda: notify_session_ended(session_id))


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
            status__in=WORKER_OWNED, heartbeat_at__lt=max(stale, quiet)
        ).values_list("pk", "status", "worker_id", "attempts", "claimed_at", "heartbeat_at", "instance_type__slug")
        if claimed_at is not None and heartbeat_at is not None  # claim sets both
    ]
    gone = _gone_workers({claim.worker_id for claim in claims if claim.heartbeat_at < quiet})
    reaped = 0
    for claim in claims:
        if claim.heartbeat_at < stale or claim.worker_id in gone:
            reaped += _reap(claim)
    return reaped


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
        _end_session(
            claim.session_id,
            (Status.STOPPING,),
            Status.STOPPED,
            extra=Q(worker_id=claim.worker_id),
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
        _end_session(claim.session_id, WORKER_OWNED, Status.FAILED, extra=Q(worker_id=claim.worker_id), reason=reason)
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
        requeued = TrainingSession.objects.filter(pk=session_id, status__in=WORKER_OWNED, worker_id=worker_id).update(
            status=Status.QUEUED,
            worker_id="",
            attempts=0 if progressed else F("attempts"),
            status_detail="The worker was lost; resuming from the last checkpoint on another worker",
        )
        if requeued:
            billing.release_holds(session_id)
            transaction.on_commit(lambda: enqueue_training(session_id, queue_name))
    return requeued == 1


def resume_paused_after_top_up(user_id: int, **signal_kwargs: object) -> TrainingSession | None:
    """After a credit: resume the owner's newest paused session that asked for it.

    Connected to ``billing.signals.balance_credited``; does nothing when the balance
    still falls short or Start is refused for another reason (the page says why)."""
    paused = (
        TrainingSession.objects.filter(owner_id=user_id, status=Status.PAUSED, resume_after_top_up=True)
        .select_related("model__dataset", "instance_type", "owner")
        .first()
    )
    if paused is None or paused.model.sessions.exclude(pk=paused.pk).filter(created_at__gt=paused.created_at).exists():
        return None
    request = StartRequest(
        instance_type=paused.instance_type, target_epochs=paused.target_epochs, resume_after_top_up=True
    )
    try:
        return resume_session(paused.owner, paused, request)
    except StartRefused as refusal:
        logger.info("paused session %s not resumed after a top-up: %s", paused.pk, refusal)
        return None
