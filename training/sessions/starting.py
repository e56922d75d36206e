"""Start and Resume (web side): refuse what cannot run, create the queued session with
its money taken care of, and enqueue it for a worker of its instance type."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from billing import services as billing
from billing.plans.standing import PlanRefusal, Standing, check_cloud_training, concurrent_session_limit, standing_of
from hubsite.jobs import send_by_name
from hubsite.models import User
from training.models import Dataset, InstanceType, TrainingSession, YoloModel
from training.presence import live_queues
from training.sessions.estimates import estimate_session
from training.sessions.transitions import ACTIVE, Status

logger = logging.getLogger(__name__)

RESUMABLE = (Status.STOPPED, Status.PAUSED, Status.FAILED)

# The training actor, declared in ``training.engine.actors`` under this name and
# sent by name so that starting a session never imports the engine.
TRAIN_SESSION_ACTOR = "train_session"


SESSION_CAP_EPOCHS_ONLY = (
    "A spending cap per session applies to Epochs mode only: a Timed session is bounded by its prepayment."
)


class StartRefused(Exception):
    """Start or Resume cannot happen; the message says why, in the user's words.
    ``upgrade_url``: where a better plan (or paying an overdue one) would allow it, so
    the page offers an Upgrade link instead of a bare error ("" when none would)."""

    def __init__(self, message: str, *, upgrade_url: str = "") -> None:
        super().__init__(message)
        self.upgrade_url = upgrade_url


@dataclass(frozen=True)
class StartRequest:
    instance_type: InstanceType
    mode: str = TrainingSession.Mode.EPOCHS
    target_epochs: int | None = None  # None: the model's own target
    time_budget_seconds: int | None = None  # Timed mode only
    resume_after_top_up: bool = False
    spending_cap_micros: int | None = None  # Epochs mode only: the session stops before passing it


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
    if request.spending_cap_micros is not None and request.mode != TrainingSession.Mode.EPOCHS:
        raise StartRefused(SESSION_CAP_EPOCHS_ONLY)
    target = request.target_epochs or model.target_epochs
    if request.mode == TrainingSession.Mode.EPOCHS and target <= model.epochs_completed:
        raise StartRefused(
            f"The model has already completed {model.epochs_completed} epochs; set a target above that to continue."
        )
    try:
        with transaction.atomic():
            account = billing.lock_account(user.pk)  # serializes Starts of one account
            standing = standing_of(account)
            check_plan(standing, instance_type)
            limit = concurrent_session_limit(account, standing)
            active = TrainingSession.objects.filter(owner=user, status__in=ACTIVE, remote=False).count()
            if active >= limit:
                raise StartRefused(concurrency_refusal(limit))
            session = TrainingSession(
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
                spending_cap_micros=request.spending_cap_micros,
                status_detail="Waiting for a worker",
            )
            estimate = estimate_session(session)
            session.estimated_low_micros, session.estimated_high_micros = estimate.low_micros, estimate.high_micros
            session.save()
            if request.mode == TrainingSession.Mode.TIMED:
                billing.prepay_timed(session)
            else:
                billing.require_within_monthly_cap(account)
                billing.require_start_balance(account)
            transaction.on_commit(lambda: enqueue_training(session.pk, instance_type.queue_name))
    except (billing.InsufficientBalance, billing.SpendingCapReached) as error:
        raise StartRefused(str(error)) from error
    except IntegrityError as error:  # one_active_session_per_model
        raise StartRefused("This model is already training.") from error
    return session


def check_plan(standing: Standing, instance_type: InstanceType) -> None:
    """Refuse Cloud Training the plan in force does not allow, with the upgrade link
    (nothing is refused with plans off). Remote training never comes here: it is free."""
    try:
        check_cloud_training(standing, instance_type.pk, instance_type.name)
    except PlanRefusal as refusal:
        raise StartRefused(refusal.message, upgrade_url=refusal.upgrade_url) from refusal


def check_plan_of(user: User, instance_type: InstanceType) -> None:
    """``check_plan`` for ``user`` without the account lock: Pay Now asks it before any
    card payment (the Start after payment asks again, under the lock)."""
    check_plan(standing_of(billing.account_for(user)), instance_type)


def concurrency_refusal(limit: int) -> str:
    """Why one more Cloud Training session cannot start, for a limit of ``limit`` at once."""
    if limit <= 1:
        return "Another training session is active on your account. Stop it or wait for it to finish."
    return f"{limit} training sessions are active on your account, the most it allows at once. Stop one or wait."


def check_startable(model: YoloModel, instance_type: InstanceType) -> None:
    if model.sessions.filter(remote=True, status__in=ACTIVE).exists():
        raise StartRefused("This model is training on your hardware now. Stop that run first.")
    if model.dataset.status == Dataset.Status.ON_MACHINE:
        raise StartRefused(
            "This model's dataset is on your machine, not here: keep training it there, or upload the "
            "dataset and train a model of it in the cloud."
        )
    if model.sessions.filter(remote=True).exists():
        # Its epochs were counted on the user's machine and it has no checkpoint of ours to
        # continue from; its checked best weights can start a new model instead.
        raise StartRefused(
            "This model was trained on your hardware, so it continues there (ultralytics' resume=True). "
            "To train in the cloud, create a new model that starts from this one's best weights."
        )
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
    send_by_name(TRAIN_SESSION_ACTOR, queue_name, session_id)


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
        instance_type=paused.instance_type,
        target_epochs=paused.target_epochs,
        resume_after_top_up=True,
        spending_cap_micros=paused.spending_cap_micros,
    )
    try:
        return resume_session(paused.owner, paused, request)
    except StartRefused as refusal:
        logger.info("paused session %s not resumed after a top-up: %s", paused.pk, refusal)
        return None
