"""What the model page's Train tab shows about a session, computed in a fixed,
small number of queries however many epochs the model has."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Avg, Count, Max, OuterRef, Subquery, Sum
from django.utils import timezone

from billing.models import LedgerLine
from billing.services import account_for, epoch_cost_micros, expected_epoch_cost
from training import task_metrics
from training.models import EpochRecord, TrainingSession, YoloModel

Status = TrainingSession.Status


@dataclass(frozen=True)
class Progress:
    session: TrainingSession
    epochs_completed: int  # by the model, across sessions
    target_epochs: int
    session_epochs: int  # completed in this session
    percent: int
    elapsed_seconds: int | None
    eta_seconds: int | None
    cost_so_far_micros: int  # this session's charges (Epochs) or its prepayment less refund (Timed)
    estimated_to_finish_micros: int | None
    queue_position: int | None
    busy_sessions: int | None  # queued: sessions this instance type's workers are busy with
    available_micros: int | None  # paused: the owner's balance less open holds
    last_epoch_at: datetime | None
    latest_epoch: int | None  # the model's latest recorded epoch, across sessions
    headline: list[tuple[str, float]]  # that epoch's headline metrics for the task: (label, value)

    @property
    def epochs_remaining(self) -> int:
        return max(0, self.target_epochs - self.epochs_completed)

    @property
    def is_final(self) -> bool:
        return self.session.status in TrainingSession.FINAL_STATUSES


def session_progress(session: TrainingSession) -> Progress:
    model: YoloModel = session.model
    epochs = EpochRecord.objects.filter(session=session).aggregate(
        count=Count("pk"), total_ms=Sum("duration_ms"), mean_ms=Avg("duration_ms"), last=Max("finished_at")
    )
    session_epochs: int = epochs["count"]
    latest = EpochRecord.objects.filter(model=model).order_by("-epoch").values_list("epoch", "metrics").first()
    target = session.target_epochs
    completed = model.epochs_completed
    percent = min(100, round(100 * completed / target)) if target else 0
    remaining = max(0, target - completed)
    elapsed = None
    if session.training_started_at:
        end = session.finished_at or timezone.now()
        elapsed = int((end - session.training_started_at).total_seconds())
    eta = None
    estimate = None
    if session.status in (Status.TRAINING, Status.INITIALIZING, Status.QUEUED) and remaining:
        mean_ms = epochs["mean_ms"]
        if mean_ms:
            eta = int(mean_ms * remaining / 1000)
        if session.mode == TrainingSession.Mode.EPOCHS:
            per_epoch = (
                epoch_cost_micros(int(mean_ms), session.price_per_hour_micros)
                if mean_ms
                else expected_epoch_cost(session)
            )
            estimate = per_epoch * remaining
    return Progress(
        session=session,
        epochs_completed=completed,
        target_epochs=target,
        session_epochs=session_epochs,
        percent=percent,
        elapsed_seconds=elapsed,
        eta_seconds=eta,
        cost_so_far_micros=session_cost_micros(session),
        estimated_to_finish_micros=estimate,
        queue_position=queue_position(session) if session.status == Status.QUEUED else None,
        busy_sessions=busy_sessions(session.instance_type_id) if session.status == Status.QUEUED else None,
        available_micros=available_balance(session) if session.status == Status.PAUSED else None,
        last_epoch_at=epochs["last"],
        latest_epoch=latest[0] if latest else None,
        headline=task_metrics.headline_values(model.dataset.task, latest[1]) if latest else [],
    )


def session_cost_micros(session: TrainingSession) -> int:
    """What the session has cost the user so far: its charges net of refunds."""
    kinds = (
        LedgerLine.Kind.EPOCH_CHARGE,
        LedgerLine.Kind.TIMED_PREPAYMENT,
        LedgerLine.Kind.TIMED_REFUND,
    )
    total = LedgerLine.objects.filter(session=session, kind__in=kinds).aggregate(total=Sum("amount_micros"))["total"]
    return -int(total or 0)


def queue_position(session: TrainingSession) -> int:
    """1 when this session is next for its instance type's workers."""
    ahead = TrainingSession.objects.filter(
        instance_type_id=session.instance_type_id, status=Status.QUEUED, created_at__lt=session.created_at
    ).count()
    return ahead + 1


def busy_sessions(instance_type_id: int) -> int:
    return TrainingSession.objects.filter(
        instance_type_id=instance_type_id, status__in=(Status.INITIALIZING, Status.TRAINING, Status.STOPPING)
    ).count()


def available_balance(session: TrainingSession) -> int:
    account = account_for(session.owner)
    return account.balance_micros - account.held_micros


def recent_models(user_id: int, limit: int) -> list[tuple[YoloModel, str]]:
    """The user's most recently changed models with their latest session's status label."""
    latest = TrainingSession.objects.filter(model=OuterRef("pk")).order_by("-created_at").values("status")[:1]
    models = YoloModel.objects.filter(owner_id=user_id).annotate(latest_status=Subquery(latest))
    labels = dict(Status.choices)
    return [
        (model, str(labels.get(model.latest_status, "Not trained yet")))
        for model in models.order_by("-updated_at")[:limit]
    ]
