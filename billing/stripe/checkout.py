"""Opening a Stripe Checkout: a balance top-up, or a Timed session paid now.

Our ``CheckoutSession`` row is committed before Stripe's session exists; its id
travels in Stripe's metadata and ``client_reference_id``, its uid in the idempotency
key. Nothing here talks to Stripe inside a database transaction, and no money moves
here: a payment is credited only by ``webhooks`` (or ``reconcile``) once Stripe
confirms it.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import stripe
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from billing import services as billing
from billing.models import CheckoutSession
from billing.money import MICROS_PER_CENT
from billing.stripe.client import stripe_client

if TYPE_CHECKING:
    from hubsite.models import User
    from training.models import InstanceType, YoloModel

logger = logging.getLogger(__name__)

STRIPE_MINIMUM_CENTS = 50  # Stripe refuses a USD charge below US$0.50


class CheckoutUnavailable(Exception):
    """Stripe could not open a Checkout; nothing was charged. The message is for people."""


class PayNowRefused(Exception):
    """A Pay Now that cannot even be offered (e.g. below Stripe's minimum charge)."""


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


def create_pay_now_checkout(
    user: User,
    model: YoloModel,
    instance_type: InstanceType,
    *,
    time_budget_seconds: int,
    target_epochs: int | None,
) -> CheckoutSession:
    """Open a Stripe Checkout for exactly the price of a Timed session on ``model``.

    The caller (training) has already checked that the session could start. No
    training session exists until Stripe confirms the payment; then the credit is
    announced with ``billing.signals.pay_now_paid`` and training starts the session
    in the same transaction. An abandoned Checkout leaves nothing behind."""
    if model.owner_id != user.pk:
        raise ValueError("the model belongs to another user")
    cents = timed_price_cents(time_budget_seconds, instance_type.price_per_hour_micros)
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
        instance_type=instance_type,
        time_budget_seconds=time_budget_seconds,
        target_epochs=target_epochs,
    )
    hours = time_budget_seconds / 3600
    return _open_checkout(record, product=f"Timed training of {model.name}: {hours:g} h on {instance_type.name}")


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
        + reverse("stripe:checkout_success", args=[record.pk])
        + "?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": base + reverse("stripe:checkout_cancel", args=[record.pk]),
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
