"""The Billing page's Plan summary and Receipts: card payments with Stripe's receipt
(or "receipt pending"), subscription invoices with their hosted page, only the owner's."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from billing.models import CheckoutSession, Invoice
from billing.services import account_for
from hubsite.models import User
from tests.plan_fixtures import subscribe

pytestmark = pytest.mark.django_db

RECEIPT = "https://pay.stripe.com/receipts/owner-top-up"
INVOICE = "https://invoice.stripe.com/i/owner-invoice"


def _payments_of(user: User) -> None:
    account = account_for(user)
    now = timezone.now()
    CheckoutSession.objects.create(
        account=account, amount_cents=2_500, status=CheckoutSession.Status.COMPLETE, completed_at=now,
        stripe_session_id=f"cs_paid_{user.pk}", receipt_url=RECEIPT if user.email.startswith("owner") else "",
    )  # fmt: skip
    CheckoutSession.objects.create(
        account=account, amount_cents=1_300, status=CheckoutSession.Status.COMPLETE, completed_at=now,
        stripe_session_id=f"cs_pending_{user.pk}",
    )  # fmt: skip
    CheckoutSession.objects.create(  # abandoned: no receipt
        account=account, amount_cents=9_900, status=CheckoutSession.Status.EXPIRED, stripe_session_id=f"cs_x_{user.pk}"
    )


@pytest.mark.plans
def test_the_owner_sees_their_receipts_invoices_and_plan(owner_client: Client, user: User) -> None:
    _payments_of(user)
    subscription = subscribe(user)
    Invoice.objects.create(
        account=account_for(user), subscription=subscription, stripe_invoice_id="in_owner", status="paid",
        amount_due_cents=2_000, amount_paid_cents=2_000, hosted_invoice_url=INVOICE,
        period_start=timezone.now() - timedelta(days=10), period_end=timezone.now() + timedelta(days=20),
        stripe_created=timezone.now(), paid_at=timezone.now(),
    )  # fmt: skip

    page = owner_client.get(reverse("billing:account")).content.decode()

    assert '<h2 id="plan-title">Plan</h2>' in page
    assert "<strong>Pro</strong>" in page
    renews = subscription.current_period_end.strftime("%-d %b %Y")  # type: ignore[union-attr]
    assert f"renews on {renews}" in page
    assert f'<a href="{RECEIPT}" rel="noopener" target="_blank">Receipt</a>' in page
    assert "US$25.00" in page
    assert "US$13.00" in page
    assert "receipt pending" in page
    assert "US$99.00" not in page  # the expired Checkout is no payment
    assert f'<a href="{INVOICE}" rel="noopener" target="_blank">Invoice</a>' in page
    assert "US$20.00" in page


@pytest.mark.plans
def test_an_outsider_sees_none_of_the_owners_receipts(user: User, outsider: User, outsider_client: Client) -> None:
    _payments_of(user)
    Invoice.objects.create(
        account=account_for(user), stripe_invoice_id="in_owner", status="paid", amount_paid_cents=2_000,
        hosted_invoice_url=INVOICE, stripe_created=timezone.now(),
    )  # fmt: skip

    page = outsider_client.get(reverse("billing:account")).content.decode()

    assert RECEIPT not in page
    assert INVOICE not in page
    assert "US$25.00" not in page
    assert "No card payments yet." in page
    assert "<strong>Free</strong>" in page


def test_with_plans_off_the_billing_page_has_no_plan_summary(owner_client: Client) -> None:
    page = owner_client.get(reverse("billing:account")).content.decode()
    assert 'id="plan-title"' not in page
    assert 'id="receipts-title"' in page
