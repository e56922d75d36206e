"""Training's side of Pay Now (a Timed session paid by card).

Opening the payment is ``open_pay_now``: the same checks as a Start, then billing
opens the Stripe Checkout. Billing announces what Stripe confirms with its signals
(``billing/signals.py``) and never calls training by name; the receivers here start
the paid session and stop it when its payment is refunded or disputed. They connect
when this module is imported: ``TrainingConfig.ready`` imports it.
"""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from billing import services as billing
from billing.models import CheckoutSession
from billing.signals import StartRefusedAfterPayment, pay_now_paid, pay_now_taken_back
from billing.stripe.checkout import create_pay_now_checkout
from hubsite.models import User
from training import sessions
from training.models import InstanceType, TrainingSession, YoloModel


def open_pay_now(user: User, model: YoloModel, request: sessions.StartRequest) -> CheckoutSession:
    """Open a Stripe Checkout for exactly the price of the Timed session ``request`` asks for.

    Refuses (``sessions.StartRefused``) what a Start would refuse now, before any money
    moves; billing may refuse too (``PayNowRefused``, ``CheckoutUnavailable``). No
    session exists until Stripe confirms the payment (``start_paid_session``)."""
    if request.mode != TrainingSession.Mode.TIMED or not request.time_budget_seconds:
        raise ValueError("Pay Now is for Timed sessions with a time budget")
    sessions.check_startable(model, request.instance_type)
    sessions.check_plan_of(user, request.instance_type)  # the plan, before any card payment
    _require_within_monthly_cap(user, request.instance_type, request.time_budget_seconds)
    return create_pay_now_checkout(
        user,
        model,
        request.instance_type,
        time_budget_seconds=request.time_budget_seconds,
        target_epochs=request.target_epochs,
    )


def _require_within_monthly_cap(user: User, instance_type: InstanceType, seconds: int) -> None:
    """Refuse before the card is charged what the monthly spending cap would refuse
    after (the Start that the payment triggers checks again, under the account lock)."""
    price = billing.timed_price_micros(seconds, instance_type.price_per_hour_micros)
    try:
        billing.require_within_monthly_cap(billing.account_for(user), price)
    except billing.MonthlyCapReached as error:
        raise sessions.StartRefused(str(error)) from error


@receiver(pay_now_paid, dispatch_uid="training-start-paid-session")
def start_paid_session(
    user: User,
    model: YoloModel,
    instance_type: InstanceType,
    time_budget_seconds: int,
    target_epochs: int | None,
    **signal_kwargs: Any,
) -> TrainingSession:
    """Start the Timed session a confirmed payment bought, in billing's transaction."""
    request = sessions.StartRequest(
        instance_type=instance_type,
        mode=TrainingSession.Mode.TIMED,
        target_epochs=target_epochs,
        time_budget_seconds=time_budget_seconds,
    )
    try:
        return sessions.start_session(user, model, request)
    except sessions.StartRefused as refusal:
        raise StartRefusedAfterPayment(str(refusal)) from refusal


@receiver(pay_now_taken_back, dispatch_uid="training-stop-refunded-session")
def stop_refunded_session(session_id: int, **signal_kwargs: Any) -> None:
    """A refund or dispute of a Pay Now stops its session, if it still runs."""
    session = TrainingSession.objects.filter(pk=session_id, status__in=TrainingSession.ACTIVE_STATUSES).first()
    if session is not None:
        sessions.request_stop(session)
