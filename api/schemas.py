"""What more than one router returns: a training session with its live progress, and
a page of a list built lazily."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Generic, TypeVar

from django.db.models import Model, QuerySet
from ninja import Schema

from billing.money import format_usd
from training.models import TrainingSession
from training.views.progress import session_progress

M = TypeVar("M", bound=Model)
S = TypeVar("S")


class LazyPage(Generic[M, S]):
    """A queryset for ninja's paginator that builds each row's schema only for the page
    it slices (the paginator counts with ``len`` and slices with ``[a:b]``)."""

    def __init__(self, queryset: QuerySet[M], build: Callable[[M], S]) -> None:
        self.queryset = queryset
        self.build = build

    def __len__(self) -> int:
        return self.queryset.count()

    def __getitem__(self, page: slice) -> list[S]:
        return [self.build(row) for row in self.queryset[page]]


class SessionOut(Schema):
    id: int
    model_id: int
    status: str
    detail: str
    mode: str
    instance_type: str  # its slug
    price_per_hour_micros: int
    target_epochs: int
    time_budget_seconds: int | None
    start_epoch: int
    epochs_completed: int  # by the model, across sessions
    session_epochs: int  # completed in this session
    percent: int
    eta_seconds: int | None
    queue_position: int | None
    charged_micros: int
    charged: str
    estimated_low_micros: int | None
    estimated_high_micros: int | None
    estimated_to_finish_micros: int | None
    resume_after_top_up: bool
    spending_cap_micros: int | None  # the session's own spending cap (Epochs mode); None: no cap
    resumed_from_id: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    failure_reason: str
    headline_metrics: dict[str, float]
    log_tail: str


def session_out(session: TrainingSession) -> SessionOut:
    """The session as the Train tab's live panel shows it (``training.views.progress``)."""
    progress = session_progress(session)
    return SessionOut(
        id=session.pk,
        model_id=session.model_id,
        status=session.status,
        detail=session.status_detail,
        mode=session.mode,
        instance_type=session.instance_type.slug,
        price_per_hour_micros=session.price_per_hour_micros,
        target_epochs=session.target_epochs,
        time_budget_seconds=session.time_budget_seconds,
        start_epoch=session.start_epoch,
        epochs_completed=progress.epochs_completed,
        session_epochs=progress.session_epochs,
        percent=progress.percent,
        eta_seconds=progress.eta_seconds,
        queue_position=progress.queue_position,
        charged_micros=progress.cost_so_far_micros,
        charged=format_usd(progress.cost_so_far_micros),
        estimated_low_micros=session.estimated_low_micros,
        estimated_high_micros=session.estimated_high_micros,
        estimated_to_finish_micros=progress.estimated_to_finish_micros,
        resume_after_top_up=session.resume_after_top_up,
        spending_cap_micros=session.spending_cap_micros,
        resumed_from_id=session.resumed_from_id,
        created_at=session.created_at,
        started_at=session.training_started_at,
        finished_at=session.finished_at,
        failure_reason=session.failure_reason,
        headline_metrics=dict(progress.headline),
        log_tail=session.log_tail,
    )
