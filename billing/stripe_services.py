"""Stripe Checkout: top-ups, Pay Now for Timed training, webhook events, reconciliation.

The rules (docs/stripe.md has the long form):

- Our ``CheckoutSession`` row exists before Stripe's session; its id travels in
  Stripe's metadata and ``client_reference_id``, its uid in the idempotency key.
- Money arrives only from a verified ``checkout.session.completed`` with
  ``payment_status`` paid, or from ``reconcile`` asking Stripe itself, and only when
  Stripe's session matches our row (id, account, amount, currency). Both paths go
  through ``_apply_paid_session`` under a row lock on our record, and the ledger's
  unique top-up reference makes a second credit impossible even so.
- Every webhook event is stored under Stripe's event id first, in its own
  transaction, so the record survives a processing failure; processing then locks
  that row, so redeliveries (even concurrent ones) process it once.
- Nothing here talks to Stripe inside a database transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import redis
import stripe
from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from billing import services as billing
from billing.models import LedgerLine
from billing.money import MICROS_PER_CENT, cents_to_micros
from billing.stripe_client import stripe_client
from billing.stripe_models import CheckoutSession, StripeEvent
from hubsite.jobs import light_actor

if TYPE_CHECKING:
    from hubsite.models import User
    from training.models import YoloModel
    from training.sessions import StartRequest

logger = logging.getLogger(__name__)

STRIPE_MINIMUM_CENTS = 50  # Stripe refuses a USD charge below US$0.50


class CheckoutUnavailable(Exception):
    """Stripe could not open a Checkout; nothing was charged. The message is for people."""


class PayNowRefused(Exception):
    """A Pay Now that cannot even be offered (e.g. below Stripe's minimum charge)."""


@dataclass(frozen=True)
class Outcome:
    status: str  # a StripeEvent.Status
    detail: str = ""
    credited: bool = False  # this call credited the balance


# -- opening a Checkout -------------------------------------------------------


def create_top_up_checkout(user: User, amount_cents: int) -> CheckoutSession:
    """Open a Stripe Checkout for a top-up of ``amount_cents`` (within the settings' range)."""
    if not settings.STRIPE_TOP_UP_MIN_CENTS <= amount_cents <= settings.STRIPE_TOP_UP_MAX_CENTS:
        raise ValueError("top-up amount out of range")
    record = CheckoutSession.objects.create(
        account=billing.account_for(user),
        purpose=CheckoutSession.Purpose.TOP_UP,
        amount_cents=amount_cents,
        currency=settings.STRIPE_CURRENCY,
    )
    return _open_checkout(record, product="hubsite balance top-up")


def timed_price_cents(time_budget_seconds: int, price_per_hour_micros: int) -> int:
    """The Timed price in whole cents, rounded up: the card pays at least the price and
    any fraction of a cent left after the prepayment stays on the balance."""
    price = billing.timed_price_micros(time_budget_seconds, price_per_hour_micros)
    return -(-price // MICROS_PER_CENT)


def start_timed_pay_now(user: User, model: YoloModel, request: StartRequest) -> CheckoutSession:
    """Open a Stripe Checkout for exactly the price of a Timed session on ``model``.

    No training session exists until Stripe confirms the payment; then one
    transaction credits the payment, debits the prepayment and queues the session
    (``_start_paid_session``). An abandoned Checkout leaves nothing behind."""
    from training.models import TrainingSession
    from training.sessions import StartRefused, check_startable

    if model.owner_id != user.pk:
        raise ValueError("the model belongs to another user")
    if request.mode != TrainingSession.Mode.TIMED or not request.time_budget_seconds:
        raise ValueError("Pay Now is for Timed sessions with a time budget")
    try:
        check_startable(model, request.instance_type)
    except StartRefused as error:
        raise PayNowRefused(str(error)) from error
    cents = timed_price_cents(request.time_budget_seconds, request.instance_type.price_per_hour_micros)
    if cents < STRIPE_MINIMUM_CENTS:
        raise PayNowRefused(
            "This session costs less than US$0.50, Stripe's smallest card payment: pay it from your balance."
        )
    record = CheckoutSession.objects.create(
        account=billing.account_for(user),
        purpose=CheckoutSession.Purpose.TIMED_PAY_NOW,
        amount_cents=cents,
        currency=settings.STRIPE_CURRENCY,
        model=model,
        instance_type=request.instance_type,
        time_budget_seconds=request.time_budget_seconds,
        target_epochs=request.target_epochs,
    )
    hours = request.time_budget_seconds / 3600
    return _open_checkout(
        record, product=f"Timed training of {model.name}: {hours:g} h on {request.instance_type.name}"
    )


def _open_checkout(record: CheckoutSession, *, product: str) -> CheckoutSession:
    """Create Stripe's session for our committed ``record`` (outside any transaction)."""
    expires_at = timezone.now() + timedelta(minutes=settings.STRIPE_CHECKOUT_EXPIRY_MINUTES)
    base = settings.SITE_URL
    params: dict[str, Any] = {
        "mode": "payment",
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": record.currency,
                    "unit_amount": record.amount_cents,
                    "product_data": {"name": product},
                },
            }
        ],
        "metadata": {"hubsite_checkout": str(record.pk), "hubsite_account": str(record.account_id)},
        "client_reference_id": str(record.pk),
        "success_url": base
        + reverse("stripe_checkout_success", args=[record.pk])
        + "?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": base + reverse("stripe_checkout_cancel", args=[record.pk]),
        "expires_at": int(expires_at.timestamp()),
    }
    try:
        session = stripe_client().v1.checkout.sessions.create(
            params=params,  # type: ignore[arg-type]
            options={"idempotency_key": f"hubsite-checkout-{record.uid}"},
        )
    except stripe.StripeError as error:
        logger.warning("Stripe refused to open checkout %s: %s", record.pk, error)
        CheckoutSession.objects.filter(pk=record.pk).update(status=CheckoutSession.Status.FAILED, note=str(error)[:500])
        raise CheckoutUnavailable(
            "Payments are unavailable right now, so nothing was charged. Please try again in a few minutes."
        ) from error
    record.stripe_session_id = session.id
    record.url = session.url or ""
    record.expires_at = expires_at
    record.save(update_fields=["stripe_session_id", "url", "expires_at"])
    return record


# -- webhook events -----------------------------------------------------------


def receive_event(event: dict[str, Any]) -> int:
    """Store and process one verified event; returns the HTTP status for Stripe.

    200: processed, ignored, or a duplicate of one that was. 500/503: it failed and
    Stripe should deliver it again (the stored row says why)."""
    stripe_id = str(event.get("id") or "")
    event_type = str(event.get("type") or "")
    if not stripe_id.startswith("evt_") or not event_type:
        return 400
    try:
        with transaction.atomic():
            stored = StripeEvent.objects.create(
                stripe_id=stripe_id,
                type=event_type,
                api_version=str(event.get("api_version") or ""),
                payload=event,
            )
    except IntegrityError:
        stored = StripeEvent.objects.get(stripe_id=stripe_id)
        if stored.status in (StripeEvent.Status.PROCESSED, StripeEvent.Status.IGNORED):
            return 200
    try:
        with transaction.atomic():
            _set_lock_timeout()
            locked = StripeEvent.objects.select_for_update().get(pk=stored.pk)
            if locked.status in (StripeEvent.Status.PROCESSED, StripeEvent.Status.IGNORED):
                return 200  # a concurrent delivery got here first
            outcome = _process(event)
            if outcome.status == StripeEvent.Status.IGNORED and event_type in HANDLED_EVENTS:
                logger.warning("Stripe event %s (%s) ignored: %s", stripe_id, event_type, outcome.detail)
            StripeEvent.objects.filter(pk=stored.pk).update(
                status=outcome.status,
                error=outcome.detail,
                attempts=F("attempts") + 1,
                processed_at=timezone.now(),
            )
        return 200
    except DatabaseError as error:  # lock timeout, deadlock, lost connection: Stripe retries
        logger.warning("Stripe event %s deferred: %s", stripe_id, error)
        _mark_failed(stored.pk, f"database busy, Stripe will retry: {error}")
        return 503
    except Exception as error:
        logger.exception("Stripe event %s failed", stripe_id)
        _mark_failed(stored.pk, f"{type(error).__name__}: {error}")
        return 500


def _mark_failed(event_pk: int, error: str) -> None:
    StripeEvent.objects.filter(pk=event_pk).exclude(
        status__in=[StripeEvent.Status.PROCESSED, StripeEvent.Status.IGNORED]
    ).update(status=StripeEvent.Status.FAILED, error=error[:2000], attempts=F("attempts") + 1)


def _set_lock_timeout() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{settings.STRIPE_LOCK_TIMEOUT_MS}ms"])


def _process(event: dict[str, Any]) -> Outcome:
    event_type = str(event.get("type"))
    if event_type not in HANDLED_EVENTS:
        return Outcome(StripeEvent.Status.IGNORED, f"event type {event_type} is not handled")
    if event.get("api_version") != settings.STRIPE_API_VERSION:
        return Outcome(
            StripeEvent.Status.IGNORED,
            f"API version {event.get('api_version')!r} is not the pinned {settings.STRIPE_API_VERSION!r}; "
            "set the webhook endpoint's version (reconcile_stripe applies paid sessions meanwhile)",
        )
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        return Outcome(StripeEvent.Status.IGNORED, "the event has no data.object")
    return _HANDLERS[event_type](obj)


def _mismatch(record: CheckoutSession, session: dict[str, Any]) -> str:
    """Why Stripe's ``session`` does not belong to our ``record`` ("" when it does)."""
    metadata = session.get("metadata") if isinstance(session.get("metadata"), dict) else {}
    assert isinstance(metadata, dict)
    if metadata.get("hubsite_checkout") != str(record.pk):
        return f"metadata names checkout {metadata.get('hubsite_checkout')!r}, not {record.pk}"
    if metadata.get("hubsite_account") != str(record.account_id):
        return f"metadata names account {metadata.get('hubsite_account')!r}, not {record.account_id}"
    reference = session.get("client_reference_id")
    if reference is not None and reference != str(record.pk):
        return f"client_reference_id {reference!r} is not {record.pk}"
    if session.get("amount_total") != record.amount_cents:
        return f"amount {session.get('amount_total')!r} does not match {record.amount_cents} cents"
    if str(session.get("currency") or "").lower() != record.currency:
        return f"currency {session.get('currency')!r} does not match {record.currency!r}"
    return ""


def _apply_paid_session(session: dict[str, Any]) -> Outcome:
    """Credit a completed, paid Stripe session to its record's account, exactly once.

    Runs inside the caller's transaction. Pay Now: the credit, the prepayment and the
    queued training session commit together; if the session cannot start, the
    payment stays on the balance and the record says why."""
    session_id = session.get("id")
    record = (
        CheckoutSession.objects.select_for_update().filter(stripe_session_id=session_id).first()
        if isinstance(session_id, str) and session_id
        else None
    )
    if record is None:
        return Outcome(StripeEvent.Status.IGNORED, f"unknown Checkout Session {session_id!r}")
    problem = _mismatch(record, session)
    if problem:
        return Outcome(StripeEvent.Status.IGNORED, f"checkout {record.pk}: {problem}; nothing credited")
    if session.get("payment_status") != "paid":
        return Outcome(
            StripeEvent.Status.IGNORED, f"checkout {record.pk} is not paid ({session.get('payment_status')})"
        )
    if record.status == CheckoutSession.Status.COMPLETE:
        return Outcome(StripeEvent.Status.PROCESSED, f"checkout {record.pk} was already credited")
    billing.credit_top_up(
        record.account_id, cents_to_micros(record.amount_cents), reference=f"stripe checkout {session_id}"
    )
    record.status = CheckoutSession.Status.COMPLETE
    record.completed_at = timezone.now()
    record.stripe_payment_intent_id = str(session.get("payment_intent") or "")
    record.url = ""
    if record.purpose == CheckoutSession.Purpose.TIMED_PAY_NOW:
        _start_paid_session(record)
    record.save()
    return Outcome(StripeEvent.Status.PROCESSED, f"checkout {record.pk} credited {record.amount_cents} cents", True)


def _start_paid_session(record: CheckoutSession) -> None:
    from training.models import TrainingSession
    from training.sessions import StartRefused, StartRequest, start_session

    if record.model is None or record.instance_type is None:
        record.note = "Paid, but the model was deleted; the payment stays on your balance."
        return
    try:
        with transaction.atomic():  # a refusal rolls back only this part, never the credit
            record.training_session = start_session(
                record.account.user,
                record.model,
                StartRequest(
                    instance_type=record.instance_type,
                    mode=TrainingSession.Mode.TIMED,
                    target_epochs=record.target_epochs,
                    time_budget_seconds=record.time_budget_seconds,
                ),
            )
    except StartRefused as error:
        logger.warning("paid Pay Now checkout %s could not start: %s", record.pk, error)
        record.note = f"Paid, but the session could not start: {error} The payment stays on your balance."[:500]


def _apply_expired_session(session: dict[str, Any]) -> Outcome:
    updated = CheckoutSession.objects.filter(
        stripe_session_id=session.get("id"), status=CheckoutSession.Status.OPEN
    ).update(status=CheckoutSession.Status.EXPIRED, url="")
    if not updated:
        return Outcome(StripeEvent.Status.IGNORED, f"no open checkout for {session.get('id')!r}")
    return Outcome(StripeEvent.Status.PROCESSED, "checkout expired")


def _payment_record(obj: dict[str, Any]) -> CheckoutSession | None:
    """Our row for the payment a charge or dispute belongs to, row-locked."""
    intent = obj.get("payment_intent")
    if not isinstance(intent, str) or not intent:
        return None
    return CheckoutSession.objects.select_for_update().filter(stripe_payment_intent_id=intent).first()


def _stop_paid_session(record: CheckoutSession) -> None:
    """A refund or dispute of a Pay Now stops its session (if it still runs); its end
    then settles the money (``billing.services.refund_timed``)."""
    from training.models import TrainingSession
    from training.sessions import request_stop

    session_id = record.paid_session_id
    if session_id is None:
        return
    session = TrainingSession.objects.filter(pk=session_id, status__in=TrainingSession.ACTIVE_STATUSES).first()
    if session is not None:
        request_stop(session)


def _apply_refund(charge: dict[str, Any]) -> Outcome:
    """A refund made in Stripe (the dashboard): take back what the payment bought.

    A top-up: the newly refunded amount, from the balance (a ``payment_refund`` line;
    what the balance cannot cover is written off). A Pay Now: its session stops, and
    at most its unused time is taken back, when it has ended (the card refund
    replaces the balance refund). Stripe sends the running total ``amount_refunded``;
    our row keeps it, so each new part is taken back once."""
    record = _payment_record(charge)
    if record is None:
        return Outcome(StripeEvent.Status.IGNORED, f"no checkout of ours paid with {charge.get('payment_intent')!r}")
    if str(charge.get("currency") or "").lower() != record.currency:
        return Outcome(StripeEvent.Status.IGNORED, f"refund currency {charge.get('currency')!r} is not ours")
    refunded = charge.get("amount_refunded")
    if not isinstance(refunded, int) or not 0 <= refunded <= record.amount_cents:
        return Outcome(StripeEvent.Status.IGNORED, f"refunded amount {refunded!r} is not within the payment")
    new = refunded - record.refunded_cents
    if new <= 0:
        return Outcome(StripeEvent.Status.PROCESSED, "refund already recorded")
    record.refunded_cents = refunded
    record.save(update_fields=["refunded_cents"])
    # The session row before the account row: the order a session's own end takes them in.
    _stop_paid_session(record)
    line = billing.take_back_payment(
        record.account_id,
        cents_to_micros(new),
        kind=LedgerLine.Kind.PAYMENT_REFUND,
        reference=record.refund_reference(),
        reason=f"Card payment refunded in Stripe: checkout {record.pk} ({charge.get('id')})",
        session_id=record.paid_session_id,
    )
    return Outcome(StripeEvent.Status.PROCESSED, f"refund of {new} cents: {_taken(line)}")


# Stripe's dispute statuses; the "warning_" ones are inquiries (no chargeback yet).
_DISPUTE_STATUSES = {
    "warning_needs_response": CheckoutSession.DisputeStatus.OPEN,
    "warning_under_review": CheckoutSession.DisputeStatus.OPEN,
    "needs_response": CheckoutSession.DisputeStatus.OPEN,
    "under_review": CheckoutSession.DisputeStatus.OPEN,
    "warning_closed": CheckoutSession.DisputeStatus.WON,
    "won": CheckoutSession.DisputeStatus.WON,
    "lost": CheckoutSession.DisputeStatus.LOST,
}


def _apply_dispute(dispute: dict[str, Any]) -> Outcome:
    """``charge.dispute.created`` and ``charge.dispute.closed``, in either order.

    Open (inquiries too) or lost: the disputed amount is frozen, taken back like a
    refund (``dispute`` line; a Pay Now's session stops). Won, or an inquiry closed:
    what the dispute took is returned (``dispute_reversal``). A closed dispute stays
    closed when a late ``created`` arrives."""
    record = _payment_record(dispute)
    if record is None:
        return Outcome(StripeEvent.Status.IGNORED, f"no checkout of ours paid with {dispute.get('payment_intent')!r}")
    dispute_id, amount = dispute.get("id"), dispute.get("amount")
    status = _DISPUTE_STATUSES.get(str(dispute.get("status")))
    if not isinstance(dispute_id, str) or not dispute_id.startswith("dp_") or status is None:
        detail = f"not a dispute we understand: {dispute_id!r} with status {dispute.get('status')!r}"
        return Outcome(StripeEvent.Status.IGNORED, detail)
    if str(dispute.get("currency") or "").lower() != record.currency:
        return Outcome(StripeEvent.Status.IGNORED, f"dispute currency {dispute.get('currency')!r} is not ours")
    if not isinstance(amount, int) or not 0 < amount <= record.amount_cents:
        return Outcome(StripeEvent.Status.IGNORED, f"disputed amount {amount!r} is not within the payment")
    if record.stripe_dispute_id not in ("", dispute_id):
        detail = f"checkout {record.pk} already has dispute {record.stripe_dispute_id}"
        return Outcome(StripeEvent.Status.IGNORED, detail)
    closed = record.dispute_status in (CheckoutSession.DisputeStatus.WON, CheckoutSession.DisputeStatus.LOST)
    if not (closed and status == CheckoutSession.DisputeStatus.OPEN):
        record.dispute_status = status
    record.stripe_dispute_id = dispute_id
    record.disputed_cents = amount
    record.save(update_fields=["stripe_dispute_id", "dispute_status", "disputed_cents"])
    if record.dispute_status == CheckoutSession.DisputeStatus.WON:
        line = billing.reverse_dispute(
            record.account_id,
            reference=record.dispute_reference(),
            reason=f"Dispute {dispute_id} of checkout {record.pk} closed in our favour",
        )
        returned = "nothing had been taken" if line is None else f"{line.amount_micros} micro-dollars returned"
        return Outcome(StripeEvent.Status.PROCESSED, f"dispute {dispute_id} won: {returned}")
    _stop_paid_session(record)
    line = billing.take_back_payment(
        record.account_id,
        cents_to_micros(amount),
        kind=LedgerLine.Kind.DISPUTE,
        reference=record.dispute_reference(),
        reason=f"Card payment disputed in Stripe: checkout {record.pk} ({dispute_id})",
        session_id=record.paid_session_id,
    )
    return Outcome(StripeEvent.Status.PROCESSED, f"dispute {dispute_id} {record.dispute_status}: {_taken(line)}")


def _taken(line: LedgerLine | None) -> str:
    if line is None:
        return "taken back when its session ends"
    return f"{-line.amount_micros} micro-dollars taken back"


_HANDLERS: dict[str, Callable[[dict[str, Any]], Outcome]] = {
    "checkout.session.completed": _apply_paid_session,
    "checkout.session.expired": _apply_expired_session,
    "charge.refunded": _apply_refund,
    "charge.dispute.created": _apply_dispute,
    "charge.dispute.closed": _apply_dispute,
}
HANDLED_EVENTS = frozenset(_HANDLERS)


# -- reconciliation -----------------------------------------------------------


@dataclass
class ReconcileReport:
    checked: int = 0
    applied: int = 0
    expired: int = 0
    problems: list[str] = field(default_factory=list)


def reconcile(now: datetime | None = None) -> ReconcileReport:
    """Ask Stripe about each of our open Checkouts: apply the paid ones a webhook
    missed, expire the stale ones. Safe to run any number of times, concurrently too."""
    now = now or timezone.now()
    report = ReconcileReport()
    client = stripe_client()
    stuck_before = now - timedelta(minutes=10)
    CheckoutSession.objects.filter(
        status=CheckoutSession.Status.OPEN, stripe_session_id__isnull=True, created_at__lt=stuck_before
    ).update(status=CheckoutSession.Status.FAILED, note="Stripe's session was never created.")
    open_records = CheckoutSession.objects.filter(status=CheckoutSession.Status.OPEN, stripe_session_id__isnull=False)
    for record in open_records.order_by("created_at"):
        report.checked += 1
        session_id = str(record.stripe_session_id)
        try:
            session = client.v1.checkout.sessions.retrieve(session_id)
            if session.status == "open" and record.expires_at is not None and record.expires_at <= now:
                try:
                    session = client.v1.checkout.sessions.expire(session_id)
                except stripe.InvalidRequestError:  # completed or expired meanwhile
                    session = client.v1.checkout.sessions.retrieve(session_id)
        except stripe.StripeError as error:
            report.problems.append(f"checkout {record.pk}: {error}")
            continue
        if session.status == "complete":
            with transaction.atomic():
                _set_lock_timeout()
                outcome = _apply_paid_session(session.to_dict())
            if outcome.credited:
                report.applied += 1
            elif outcome.status != StripeEvent.Status.PROCESSED:
                report.problems.append(outcome.detail)
        elif session.status == "expired":
            report.expired += CheckoutSession.objects.filter(pk=record.pk, status=CheckoutSession.Status.OPEN).update(
                status=CheckoutSession.Status.EXPIRED, url=""
            )
    return report


@light_actor(max_retries=0)
def reconcile_stripe_checkouts() -> None:
    """The light worker's periodic reconciliation (see ``maybe_schedule_reconcile``)."""
    report = reconcile()
    logger.info(
        "reconcile_stripe: %d open checked, %d applied, %d expired, %d problems",
        report.checked,
        report.applied,
        report.expired,
        len(report.problems),
    )
    for problem in report.problems:
        logger.warning("reconcile_stripe: %s", problem)


def maybe_schedule_reconcile() -> bool:
    """Enqueue ``reconcile_stripe_checkouts`` at most once per
    ``STRIPE_RECONCILE_INTERVAL_SECONDS`` across every worker (a Redis key with that
    TTL decides). Meant for the light worker's periodic loop; True when it enqueued."""
    interval = settings.STRIPE_RECONCILE_INTERVAL_SECONDS
    if not settings.STRIPE_SECRET_KEY or interval <= 0:
        return False
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5)
    if client.set(f"{settings.DRAMATIQ_NAMESPACE}:stripe-reconcile-due", "1", nx=True, ex=interval):
        reconcile_stripe_checkouts.send()
        return True
    return False
