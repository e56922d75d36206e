"""Stripe's webhook events: each stored once, processed once, by one handler per type.

The rules (docs/stripe.md has the long form):

- Every verified event is stored under Stripe's event id first, in its own
  transaction, so the record survives a processing failure; processing then locks
  that row, so redeliveries (even concurrent ones) process it once.
- ``_HANDLERS`` maps each event type we handle to its handler; any other type is
  stored as ignored. Handlers get ``data.object`` and the event's ``created`` (the
  subscription handlers in ``subscriptions`` order events by it; they register with
  ``handles`` when that module is imported, which billing's ``ready`` does through
  ``reconcile``).
- ``checkout.session.completed`` goes by the session's ``mode``: ``payment`` credits
  the balance here; ``subscription`` goes to the handler registered with
  ``handles_completed_mode`` (no ledger line: a plan's fee never reaches the balance).
- Money arrives only from a verified ``checkout.session.completed`` with
  ``payment_status`` paid, or from ``reconcile`` asking Stripe itself, and only when
  Stripe's session matches our row (id, account, amount, currency). Both paths go
  through ``apply_paid_session`` under a row lock on our record, and the ledger's
  unique top-up reference makes a second credit impossible even so.
- Training is told through billing's signals, inside the same transaction: a paid
  Pay Now (``pay_now_paid``: its session starts) and a refund or dispute of one
  (``pay_now_taken_back``: its session stops).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from billing import services as billing
from billing.models import CheckoutSession, LedgerLine, StripeEvent
from billing.money import cents_to_micros
from billing.signals import StartRefusedAfterPayment, pay_now_paid, pay_now_taken_back
from billing.stripe.receipts import fetch_receipt
from hubsite.jobs import send_on_commit
from training.models import TrainingSession

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    status: str  # a StripeEvent.Status
    detail: str = ""
    credited: bool = False  # this call credited the balance


Handler = Callable[[dict[str, Any]], Outcome]
EventHandler = Callable[[dict[str, Any], int], Outcome]  # (data.object, the event's created)
_HANDLERS: dict[str, EventHandler] = {}
_COMPLETED_BY_MODE: dict[str, EventHandler] = {}


def _handles(*event_types: str) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of ``event_types`` (it gets ``data.object``)."""

    def register(handler: Handler) -> Handler:
        def call(obj: dict[str, Any], _created: int) -> Outcome:
            return handler(obj)

        for event_type in event_types:
            _HANDLERS[event_type] = call
        return handler

    return register


def handles(*event_types: str) -> Callable[[EventHandler], EventHandler]:
    """Register a handler that also gets the event's ``created`` (Unix seconds), for
    objects whose events must apply in order (subscriptions)."""

    def register(handler: EventHandler) -> EventHandler:
        for event_type in event_types:
            _HANDLERS[event_type] = handler
        return handler

    return register


def handles_completed_mode(mode: str) -> Callable[[EventHandler], EventHandler]:
    """Register the handler of ``checkout.session.completed`` for Checkouts in ``mode``
    (``payment`` is ``apply_paid_session``'s)."""

    def register(handler: EventHandler) -> EventHandler:
        _COMPLETED_BY_MODE[mode] = handler
        return handler

    return register


def handled_events() -> frozenset[str]:
    """The event types with a handler (the subscription ones once their module is loaded)."""
    return frozenset(_HANDLERS)


# -- receiving an event once --------------------------------------------------


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
            set_lock_timeout()
            locked = StripeEvent.objects.select_for_update().get(pk=stored.pk)
            if locked.status in (StripeEvent.Status.PROCESSED, StripeEvent.Status.IGNORED):
                return 200  # a concurrent delivery got here first
            outcome = _process(event)
            if outcome.status == StripeEvent.Status.IGNORED and event_type in _HANDLERS:
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


def set_lock_timeout() -> None:
    """Wait at most ``STRIPE_LOCK_TIMEOUT_MS`` for a row lock, for the rest of this transaction."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{settings.STRIPE_LOCK_TIMEOUT_MS}ms"])


def _process(event: dict[str, Any]) -> Outcome:
    event_type = str(event.get("type"))
    handler = _HANDLERS.get(event_type)
    if handler is None:
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
    created = event.get("created")
    return handler(obj, created if isinstance(created, int) else 0)


# -- checkout.session.*: a payment arrives, or never will ----------------------


@handles("checkout.session.completed")
def apply_completed_session(session: dict[str, Any], created: int) -> Outcome:
    """A completed Checkout, by its mode: a payment credits the balance, a subscription
    goes to its own handler."""
    mode = str(session.get("mode") or "payment")
    if mode == "payment":
        return apply_paid_session(session)
    handler = _COMPLETED_BY_MODE.get(mode)
    if handler is None:
        return Outcome(StripeEvent.Status.IGNORED, f"Checkout mode {mode!r} is not handled")
    return handler(session, created)


def apply_paid_session(session: dict[str, Any]) -> Outcome:
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
    if record.purpose == CheckoutSession.Purpose.SUBSCRIPTION:
        return Outcome(StripeEvent.Status.IGNORED, f"checkout {record.pk} is a subscription's; nothing credited")
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
    if record.stripe_payment_intent_id:
        send_on_commit(fetch_receipt, record.pk)  # Stripe is asked after the commit, never inside it
    return Outcome(StripeEvent.Status.PROCESSED, f"checkout {record.pk} credited {record.amount_cents} cents", True)


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


def _start_paid_session(record: CheckoutSession) -> None:
    """Have training start the Timed session a Pay Now bought, or note why it could not."""
    if record.model is None or record.instance_type is None:
        record.note = "Paid, but the model was deleted; the payment stays on your balance."
        return
    try:
        with transaction.atomic():  # a refusal rolls back only this part, never the credit
            record.training_session = _announce_paid(record)
    except StartRefusedAfterPayment as error:
        logger.warning("paid Pay Now checkout %s could not start: %s", record.pk, error)
        record.note = f"Paid, but the session could not start: {error} The payment stays on your balance."[:500]


def _announce_paid(record: CheckoutSession) -> TrainingSession:
    """Send ``pay_now_paid``; its one receiver (training's) returns the session it started."""
    responses: list[object] = [
        response
        for _, response in pay_now_paid.send(
            sender=CheckoutSession,
            checkout_id=record.pk,
            user=record.account.user,
            model=record.model,
            instance_type=record.instance_type,
            time_budget_seconds=record.time_budget_seconds,
            target_epochs=record.target_epochs,
        )
    ]
    started = [response for response in responses if isinstance(response, TrainingSession)]
    if len(started) != 1:
        raise RuntimeError(
            f"pay_now_paid started {len(started)} sessions for checkout {record.pk}, not one: "
            "is training.payments imported at start-up?"
        )
    return started[0]


@_handles("checkout.session.expired")
def apply_expired_session(session: dict[str, Any]) -> Outcome:
    updated = CheckoutSession.objects.filter(
        stripe_session_id=session.get("id"), status=CheckoutSession.Status.OPEN
    ).update(status=CheckoutSession.Status.EXPIRED, url="")
    if not updated:
        return Outcome(StripeEvent.Status.IGNORED, f"no open checkout for {session.get('id')!r}")
    return Outcome(StripeEvent.Status.PROCESSED, "checkout expired")


# -- charge.*: a refund or dispute takes back what the payment bought ----------


def _payment_record(obj: dict[str, Any]) -> CheckoutSession | None:
    """Our row for the payment a charge or dispute belongs to, row-locked."""
    intent = obj.get("payment_intent")
    if not isinstance(intent, str) or not intent:
        return None
    return CheckoutSession.objects.select_for_update().filter(stripe_payment_intent_id=intent).first()


def _stop_paid_session(record: CheckoutSession) -> None:
    """A refund or dispute of a Pay Now stops its session (training's receiver of
    ``pay_now_taken_back``, if it still runs); its end then settles the money
    (``billing.services.refund_timed``)."""
    session_id = record.paid_session_id
    if session_id is not None:
        pay_now_taken_back.send(sender=CheckoutSession, checkout_id=record.pk, session_id=session_id)


@_handles("charge.refunded")
def apply_refund(charge: dict[str, Any]) -> Outcome:
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


@_handles("charge.dispute.created", "charge.dispute.closed")
def apply_dispute(dispute: dict[str, Any]) -> Outcome:
    """A dispute opened or closed, the two events in either order.

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
