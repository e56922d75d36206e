"""Stripe's receipt for a card payment, copied onto our Checkout row for the Billing page.

The receipt lives on the charge (``receipt_url``), reached from the payment intent's
``latest_charge``. It is fetched after the credit has committed (``fetch_receipt``,
sent on commit by the webhook) or by reconciliation, never inside a transaction: a
receipt is a convenience, so a failure only logs and the next reconciliation retries.
"""

from __future__ import annotations

import logging

import stripe

from billing.models import CheckoutSession
from billing.stripe.client import stripe_client
from hubsite.jobs import light_actor

logger = logging.getLogger(__name__)


def receipt_url_of(payment_intent_id: str) -> str:
    """The receipt address of the intent's latest charge ("" when it has none yet)."""
    client = stripe_client()
    intent = client.v1.payment_intents.retrieve(payment_intent_id).to_dict()
    charge = intent.get("latest_charge")
    if isinstance(charge, str) and charge:
        charge = client.v1.charges.retrieve(charge).to_dict()
    if not isinstance(charge, dict):
        return ""  # no charge yet, or a server without receipts
    return str(charge.get("receipt_url") or "")


def fill_receipt(checkout_id: int) -> bool:
    """Store the receipt address of a credited Checkout that has none; True when stored."""
    record = CheckoutSession.objects.filter(pk=checkout_id, receipt_url="").exclude(stripe_payment_intent_id="").first()
    if record is None:
        return False
    try:
        url = receipt_url_of(record.stripe_payment_intent_id)
    except stripe.StripeError as error:
        logger.warning("no receipt for checkout %s yet: %s", checkout_id, error)
        return False
    if not url.startswith("https://") and not url.startswith("http://"):
        return False
    return bool(CheckoutSession.objects.filter(pk=checkout_id, receipt_url="").update(receipt_url=url[:2000]))


@light_actor(max_retries=3)
def fetch_receipt(checkout_id: int) -> None:
    """The light worker's copy of ``fill_receipt``, sent once a credit commits."""
    fill_receipt(checkout_id)
