"""The Billing page's Plan summary and Receipts: what the owner paid by card (top-ups
and Pay Now, with Stripe's receipt) and their subscription invoices (with Stripe's
hosted invoice). Everything is filtered by the owner's account, never by an id from
the request."""

from __future__ import annotations

from django.db.models import QuerySet

from billing.models import Account, CheckoutSession, Invoice
from billing.plans.standing import standing_of

RECEIPTS_SHOWN = 50  # newest first; older ones stay in Stripe's own emails and the ledger
CARD_PAYMENTS = (CheckoutSession.Purpose.TOP_UP, CheckoutSession.Purpose.TIMED_PAY_NOW)


def card_payments(account: Account) -> QuerySet[CheckoutSession]:
    """Completed top-ups and Pay Now payments (a subscription's payments are its invoices)."""
    return CheckoutSession.objects.filter(
        account=account, status=CheckoutSession.Status.COMPLETE, purpose__in=CARD_PAYMENTS
    ).order_by("-completed_at", "-id")[:RECEIPTS_SHOWN]


def invoices(account: Account) -> QuerySet[Invoice]:
    """Subscription invoices Stripe finalized (drafts are not bills yet)."""
    return Invoice.objects.filter(account=account).exclude(status="draft")[:RECEIPTS_SHOWN]


def receipts_context(account: Account) -> dict[str, object]:
    """The context of ``billing/_plan_summary.html`` and ``billing/_receipts.html``."""
    return {
        "plan_standing": standing_of(account),
        "card_payments": card_payments(account),
        "invoices": invoices(account),
    }
