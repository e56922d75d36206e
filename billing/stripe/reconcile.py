"""Reconciliation: ask Stripe about our open Checkouts and live subscriptions, in case
a webhook never came.

A paid one is applied through the webhook's own locked, once-only path
(``webhooks.apply_paid_session``), so running it beside the webhook, or twice,
changes nothing the second time. A subscription Checkout and each subscription
that has not ended go through ``subscriptions``' own handlers, with Stripe's fetched
object taken as the newest state; credited top-ups without a receipt get one.
``maybe_schedule_reconcile`` runs it from the light worker's periodic loop at most
once per ``STRIPE_RECONCILE_INTERVAL_SECONDS``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import redis
import stripe
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing.models import CheckoutSession, StripeEvent
from billing.stripe import subscriptions
from billing.stripe.client import stripe_client
from billing.stripe.receipts import fill_receipt
from billing.stripe.webhooks import apply_paid_session, set_lock_timeout
from hubsite.jobs import light_actor

logger = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    checked: int = 0
    applied: int = 0
    expired: int = 0
    subscriptions: int = 0
    receipts: int = 0
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
        if session.status == "complete" and record.purpose == CheckoutSession.Purpose.SUBSCRIPTION:
            try:
                outcome = subscriptions.reconcile_completed_checkout(session.to_dict())
            except stripe.StripeError as error:
                report.problems.append(f"checkout {record.pk}: {error}")
                continue
            if outcome.status == StripeEvent.Status.PROCESSED:
                report.applied += 1
            else:
                report.problems.append(outcome.detail)
        elif session.status == "complete":
            with transaction.atomic():
                set_lock_timeout()
                outcome = apply_paid_session(session.to_dict())
            if outcome.credited:
                report.applied += 1
            elif outcome.status != StripeEvent.Status.PROCESSED:
                report.problems.append(outcome.detail)
        elif session.status == "expired":
            report.expired += CheckoutSession.objects.filter(pk=record.pk, status=CheckoutSession.Status.OPEN).update(
                status=CheckoutSession.Status.EXPIRED, url=""
            )
    report.subscriptions, problems = subscriptions.reconcile_subscriptions()
    report.problems.extend(problems)
    report.receipts = _fill_missing_receipts(now)
    return report


def _fill_missing_receipts(now: datetime) -> int:
    """Receipts for the last week's credited payments that have none yet (the on-commit
    job failed or the worker was down)."""
    missing = (
        CheckoutSession.objects.filter(
            status=CheckoutSession.Status.COMPLETE, receipt_url="", completed_at__gte=now - timedelta(days=7)
        )
        .exclude(purpose=CheckoutSession.Purpose.SUBSCRIPTION)
        .exclude(stripe_payment_intent_id="")
    )
    return sum(fill_receipt(pk) for pk in missing.values_list("pk", flat=True)[:100])


@light_actor(max_retries=0)
def reconcile_stripe_checkouts() -> None:
    """The light worker's periodic reconciliation (see ``maybe_schedule_reconcile``)."""
    report = reconcile()
    logger.info(
        "reconcile_stripe: %d open checked, %d applied, %d expired, %d subscriptions refreshed, %d receipts, "
        "%d problems",
        report.checked,
        report.applied,
        report.expired,
        report.subscriptions,
        report.receipts,
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
