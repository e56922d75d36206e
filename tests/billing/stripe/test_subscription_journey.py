"""Subscriptions through the local Stripe emulator over real HTTP: Upgrade opens Checkout
in subscription mode, the stand-in page is paid, the emulator's signed webhooks make
the user Pro; reconciliation does the same when no webhook comes; Manage opens the
portal; a top-up gets its receipt. One opt-in test opens a real test-mode
subscription Checkout (STRIPE_TEST_SECRET_KEY)."""

from __future__ import annotations

import os

import pytest
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from billing.models import Account, CheckoutSession, Invoice, LedgerLine, Plan, StripeEvent, Subscription
from billing.plans.standing import standing_of
from billing.stripe.receipts import fill_receipt
from billing.stripe.reconcile import reconcile
from hubsite.models import User
from tests.billing.helpers import balance
from tests.billing.stripe.emulator import Emulator
from tests.billing.subscription_helpers import pro_plan
from tests.helpers import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.plans]


def upgrade(client: Client) -> CheckoutSession:
    response = client.post("/plans/upgrade/pro/")
    assert response.status_code == 303, response.content.decode()[:500]
    record = CheckoutSession.objects.get(purpose="subscription")
    assert response["Location"] == record.url
    return record


def test_a_user_upgrades_to_pro_through_checkout(owner_client: Client, user: User, stripe_live: Emulator) -> None:
    pro = pro_plan(stripe_price_id="")
    record = upgrade(owner_client)
    pro.refresh_from_db()
    assert pro.stripe_price_id.startswith("price_")
    account = Account.objects.get(user=user)
    assert account.stripe_customer_id.startswith("cus_")
    assert (record.status, record.plan, record.amount_cents) == ("open", pro, pro.monthly_price_cents)

    assert stripe_live.pay(record.url).status_code == 303
    wait_for(
        lambda: Subscription.objects.filter(account=account, status__in=["active", "trialing"]).exists(), timeout=15
    )
    wait_for(lambda: CheckoutSession.objects.get(pk=record.pk).status == "complete", timeout=15)
    subscription = Subscription.objects.get()
    assert (subscription.plan, subscription.stripe_customer_id) == (pro, account.stripe_customer_id)
    assert subscription.current_period_end is not None
    record.refresh_from_db()
    assert record.stripe_subscription_id == subscription.stripe_subscription_id
    wait_for(lambda: Invoice.objects.filter(account=account, status="paid").exists(), timeout=15)
    assert not LedgerLine.objects.exists()  # the fee went to Stripe, not to the balance
    assert balance(user) == 0
    standing = standing_of(account)
    assert (standing.source, standing.plan) == ("subscription", pro)
    page = owner_client.get(f"/plans/upgrade/done/{record.pk}/", headers={"HX-Request": "true"})
    assert page.status_code == 286
    assert "You are on Pro" in page.content.decode()
    # A second Upgrade is refused: the subscriber manages it in the portal instead.
    assert owner_client.post("/plans/upgrade/pro/").status_code == 409
    manage = owner_client.post("/plans/manage/")
    assert manage.status_code == 303
    assert manage["Location"].startswith("http")
    assert {event.status for event in StripeEvent.objects.all()} <= {"processed", "ignored"}


def test_reconciliation_applies_a_subscription_whose_webhooks_never_came(
    owner_client: Client, user: User, stripe_emulator: Emulator, settings: SettingsWrapper
) -> None:
    pro_plan(stripe_price_id="")
    record = upgrade(owner_client)  # the emulator's webhooks go nowhere (stripe_emulator)
    assert stripe_emulator.pay(record.url).status_code == 303
    assert not Subscription.objects.exists()
    report = reconcile()
    assert not report.problems, report.problems
    record.refresh_from_db()
    assert record.status == "complete"
    subscription = Subscription.objects.get()
    assert subscription.stripe_subscription_id == record.stripe_subscription_id
    assert subscription.status in ("active", "trialing")
    assert standing_of(Account.objects.get(user=user)).plan == Plan.objects.get(slug="pro")
    # Again: nothing changes, the subscription is refreshed once more.
    again = reconcile()
    assert (again.applied, again.problems, again.subscriptions) == (0, [], 1)


def test_a_paid_top_up_gets_stripes_receipt(owner_client: Client, user: User, stripe_live: Emulator) -> None:
    response = owner_client.post("/billing/stripe/top-up/", {"preset": 2_000})
    record = CheckoutSession.objects.get()
    assert stripe_live.pay(response["Location"]).status_code == 303
    wait_for(lambda: CheckoutSession.objects.get(pk=record.pk).status == "complete", timeout=15)
    assert fill_receipt(record.pk)
    record.refresh_from_db()
    assert record.receipt_url.startswith("http")
    assert not fill_receipt(record.pk)  # kept once found


@pytest.mark.skipif(
    not os.environ.get("STRIPE_TEST_SECRET_KEY"),
    reason="STRIPE_TEST_SECRET_KEY is not set: the real Stripe test-mode check is opt-in",
)
def test_it_opens_a_real_test_mode_subscription_checkout(
    owner_client: Client, user: User, settings: SettingsWrapper
) -> None:
    settings.STRIPE_SECRET_KEY = os.environ["STRIPE_TEST_SECRET_KEY"]
    settings.STRIPE_API_BASE = ""
    pro = pro_plan(stripe_price_id="")

    record = upgrade(owner_client)

    pro.refresh_from_db()
    assert pro.stripe_price_id.startswith("price_")
    assert Account.objects.get(user=user).stripe_customer_id.startswith("cus_")
    assert str(record.stripe_session_id).startswith("cs_test_")
    assert record.url.startswith("https://checkout.stripe.com/")
