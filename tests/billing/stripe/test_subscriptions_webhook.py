"""Subscription events through the real webhook endpoint, signed as Stripe signs them:
order, duplicates (concurrent ones too), forgery, account and plan mapping, invoices,
and the subscription Checkout's completion (which credits nothing)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from billing.models import Account, CheckoutSession, Invoice, LedgerLine, StripeEvent, Subscription
from billing.plans.standing import standing_of
from hubsite.models import User
from tests.billing.helpers import balance, run_at_once
from tests.billing.stripe.emulator import WEBHOOK_SECRET, signature_header
from tests.billing.subscription_helpers import (
    customer_of,
    event,
    invoice_object,
    pro_plan,
    subscription_object,
)

URL = "/billing/stripe/webhook/"
T0 = int(time.time()) - 1000


@pytest.fixture(autouse=True)
def webhook_secret(settings: SettingsWrapper) -> None:
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET


@pytest.fixture
def account(user: User) -> Account:
    pro_plan()
    return customer_of(user)


def post(client: Client, payload: bytes, header: str | None = None) -> int:
    header = signature_header(payload) if header is None else header
    response = client.post(URL, payload, content_type="application/json", headers={"Stripe-Signature": header})
    return int(response.status_code)


def send(client: Client, event_type: str, obj: dict[str, Any], event_id: str, created: int) -> StripeEvent:
    assert post(client, event(event_type, obj, event_id=event_id, created=created)) == 200
    return StripeEvent.objects.get(stripe_id=event_id)


def test_created_makes_our_subscription_from_stripes_object(client: Client, account: Account) -> None:
    obj = subscription_object(account, status="trialing", trial_end=T0 + 14 * 86_400)
    stored = send(client, "customer.subscription.created", obj, "evt_created", T0)
    assert stored.status == "processed"
    row = Subscription.objects.get()
    assert (row.account_id, row.plan.slug, row.status) == (account.pk, "pro", "trialing")
    assert row.stripe_customer_id == "cus_test_1"
    assert row.current_period_end is not None
    assert int(row.current_period_end.timestamp()) == obj["items"]["data"][0]["current_period_end"]
    assert row.trial_end is not None
    assert int(row.trial_end.timestamp()) == T0 + 14 * 86_400
    assert row.last_event_created == T0
    assert not LedgerLine.objects.exists()  # a plan's fee never reaches the balance


@pytest.mark.plans
def test_an_active_subscription_puts_the_user_on_its_plan(client: Client, account: Account) -> None:
    assert standing_of(account).plan is not None
    assert standing_of(account).source == "default"
    send(client, "customer.subscription.created", subscription_object(account), "evt_created", T0)
    standing = standing_of(account)
    assert (standing.source, standing.plan.slug if standing.plan else None) == ("subscription", "pro")


def test_an_updated_that_arrives_before_created_wins(client: Client, account: Account) -> None:
    send(client, "customer.subscription.updated", subscription_object(account, status="active"), "evt_upd", T0 + 10)
    late = send(
        client, "customer.subscription.created", subscription_object(account, status="incomplete"), "evt_cre", T0
    )
    assert late.status == "processed"
    assert "older than the state we have" in late.error
    row = Subscription.objects.get()
    assert (row.status, row.last_event_created) == ("active", T0 + 10)


def test_an_older_updated_after_deleted_never_revives_it(client: Client, account: Account) -> None:
    send(client, "customer.subscription.created", subscription_object(account), "evt_1", T0)
    gone = subscription_object(account, status="canceled", ended_at=T0 + 20, canceled_at=T0 + 20)
    send(client, "customer.subscription.deleted", gone, "evt_3", T0 + 20)
    late = send(client, "customer.subscription.updated", subscription_object(account), "evt_2", T0 + 10)
    assert "older than the state we have" in late.error
    # Even an "active" stamped later cannot bring a canceled subscription back.
    later = send(client, "customer.subscription.updated", subscription_object(account), "evt_4", T0 + 30)
    assert (later.status, "final" in later.error) == ("processed", True)
    row = Subscription.objects.get()
    assert row.status == "canceled"
    assert row.ended_at is not None
    assert int(row.ended_at.timestamp()) == T0 + 20


def test_cancel_at_period_end_and_past_due_are_recorded(client: Client, account: Account) -> None:
    send(client, "customer.subscription.created", subscription_object(account), "evt_1", T0)
    send(client, "customer.subscription.updated", subscription_object(account, status="past_due"), "evt_2", T0 + 10)
    row = Subscription.objects.get()
    assert row.past_due_since is not None
    assert int(row.past_due_since.timestamp()) == T0 + 10
    # Still past_due later: the grace period keeps counting from the first time.
    send(client, "customer.subscription.updated", subscription_object(account, status="past_due"), "evt_3", T0 + 20)
    row.refresh_from_db()
    assert int(row.past_due_since.timestamp()) == T0 + 10
    paid = subscription_object(account, status="active", cancel_at_period_end=True)
    send(client, "customer.subscription.updated", paid, "evt_4", T0 + 30)
    row = Subscription.objects.get()  # a fresh object: mypy narrowed the old one's past_due_since
    assert (row.status, row.past_due_since, row.cancel_at_period_end) == ("active", None, True)


def test_a_redelivered_event_is_processed_once(client: Client, account: Account) -> None:
    payload = event("customer.subscription.created", subscription_object(account), event_id="evt_1", created=T0)
    assert post(client, payload) == 200
    assert post(client, payload) == 200
    stored = StripeEvent.objects.get()
    assert (stored.status, stored.attempts) == ("processed", 1)
    assert Subscription.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_redeliveries_of_one_event_apply_it_once(user: User) -> None:
    account = customer_of(user)
    pro_plan()
    payload = event("customer.subscription.created", subscription_object(account), event_id="evt_1", created=T0)
    statuses: list[int] = []
    errors = run_at_once([lambda: statuses.append(post(Client(), payload)) for _ in range(6)])
    assert not errors
    assert statuses == [200] * 6
    stored = StripeEvent.objects.get()
    assert (stored.status, stored.attempts) == ("processed", 1)
    assert Subscription.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_created_and_updated_at_once_make_one_row_in_stripes_order(user: User) -> None:
    account = customer_of(user)
    pro_plan()
    created = event("customer.subscription.created", subscription_object(account), event_id="evt_1", created=T0)
    updated = event(
        "customer.subscription.updated",
        subscription_object(account, cancel_at_period_end=True),
        event_id="evt_2",
        created=T0 + 5,
    )
    statuses: list[int] = []
    errors = run_at_once(
        [lambda: statuses.append(post(Client(), created)), lambda: statuses.append(post(Client(), updated))]
    )
    assert not errors
    assert statuses == [200, 200]
    row = Subscription.objects.get()
    assert (row.cancel_at_period_end, row.last_event_created) == (True, T0 + 5)


@pytest.mark.parametrize("forgery", ["bad signature", "wrong secret", "tampered body"])
def test_forged_subscription_events_are_refused(client: Client, account: Account, forgery: str) -> None:
    payload = event("customer.subscription.created", subscription_object(account), event_id="evt_1", created=T0)
    if forgery == "bad signature":
        sent, header = payload, f"t={int(time.time())},v1={'0' * 64}"
    elif forgery == "wrong secret":
        sent, header = payload, signature_header(payload, secret="whsec_someone_else")
    else:
        tampered = subscription_object(account, status="active", metadata={"hubsite_account": str(account.pk)})
        tampered["items"]["data"][0]["current_period_end"] += 10 * 365 * 86_400
        sent = event("customer.subscription.created", tampered, event_id="evt_1", created=T0)
        header = signature_header(payload)
    assert post(client, sent, header) == 400
    assert not StripeEvent.objects.exists()
    assert not Subscription.objects.exists()


def test_a_subscription_event_in_another_api_version_is_ignored(client: Client, account: Account) -> None:
    payload = event(
        "customer.subscription.created",
        subscription_object(account),
        event_id="evt_1",
        created=T0,
        api_version="2020-08-27",
    )
    assert post(client, payload) == 200
    assert StripeEvent.objects.get().status == "ignored"
    assert not Subscription.objects.exists()


def test_metadata_naming_another_account_than_the_customers_changes_nothing(
    client: Client, account: Account, outsider: User
) -> None:
    other = Account.objects.get(user=outsider)
    obj = subscription_object(account, metadata={"hubsite_account": str(other.pk)})
    stored = send(client, "customer.subscription.created", obj, "evt_1", T0)
    assert stored.status == "ignored"
    assert f"metadata names account '{other.pk}'" in stored.error
    assert not Subscription.objects.exists()


def test_a_customer_that_is_none_of_ours_changes_nothing(client: Client, account: Account) -> None:
    stored = send(
        client, "customer.subscription.created", subscription_object(account, customer="cus_other"), "evt_1", T0
    )
    assert stored.status == "ignored"
    assert "cus_other" in stored.error
    assert not Subscription.objects.exists()


def test_an_existing_subscription_never_moves_to_another_account(
    client: Client, account: Account, outsider: User
) -> None:
    send(client, "customer.subscription.created", subscription_object(account), "evt_1", T0)
    other = customer_of(outsider, "cus_test_2")
    moved = subscription_object(other)  # same sub id, the other customer and account
    stored = send(client, "customer.subscription.updated", moved, "evt_2", T0 + 10)
    assert stored.status == "ignored"
    assert Subscription.objects.get().account_id == account.pk


def test_the_plan_comes_from_the_price_then_the_metadata(client: Client, account: Account) -> None:
    obj = subscription_object(account)
    obj["items"]["data"][0]["price"] = {"id": "price_unknown"}
    send(client, "customer.subscription.created", obj, "evt_1", T0)
    assert Subscription.objects.get().plan.slug == "pro"  # from metadata.hubsite_plan


def test_an_unknown_price_without_a_plan_in_the_metadata_is_ignored(client: Client, account: Account) -> None:
    obj = subscription_object(account, metadata={"hubsite_account": str(account.pk)})
    obj["items"]["data"][0]["price"] = {"id": "price_unknown"}
    stored = send(client, "customer.subscription.created", obj, "evt_1", T0)
    assert stored.status == "ignored"
    assert "none of our plans" in stored.error
    assert not Subscription.objects.exists()


def test_invoices_are_recorded_and_a_paid_one_stays_paid(client: Client, account: Account) -> None:
    send(client, "customer.subscription.created", subscription_object(account), "evt_1", T0)
    send(client, "invoice.paid", invoice_object(account), "evt_2", T0 + 10)
    failed = invoice_object(account, status="open", amount_paid=0, status_transitions={"paid_at": None})
    late = send(client, "invoice.payment_failed", failed, "evt_3", T0 + 5)
    assert "already paid" in late.error
    invoice = Invoice.objects.get()
    assert (invoice.status, invoice.amount_paid_cents, invoice.account_id) == ("paid", 2000, account.pk)
    assert invoice.subscription == Subscription.objects.get()
    assert invoice.hosted_invoice_url == "https://invoice.stripe.com/i/test_1"
    assert invoice.paid_at is not None
    assert balance(account.user) == 0


def test_a_failed_invoice_of_another_customer_is_ignored(client: Client, account: Account) -> None:
    stored = send(client, "invoice.payment_failed", invoice_object(account, customer="cus_other"), "evt_1", T0)
    assert stored.status == "ignored"
    assert not Invoice.objects.exists()


def subscription_checkout(account: Account) -> CheckoutSession:
    return CheckoutSession.objects.create(
        account=account,
        purpose=CheckoutSession.Purpose.SUBSCRIPTION,
        plan=pro_plan(),
        amount_cents=2000,
        stripe_session_id="cs_test_sub",
    )


def completed(record: CheckoutSession, **changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": record.stripe_session_id,
        "object": "checkout.session",
        "mode": "subscription",
        "status": "complete",
        "payment_status": "paid",
        "amount_total": 2000,
        "currency": "usd",
        "customer": "cus_test_1",
        "subscription": "sub_test_1",
        "payment_intent": None,
        "client_reference_id": str(record.pk),
        "metadata": {"hubsite_checkout": str(record.pk), "hubsite_account": str(record.account_id)},
    }
    obj.update(changes)
    return obj


@pytest.mark.parametrize("payment_status", ["paid", "no_payment_required"])
def test_a_completed_subscription_checkout_is_marked_and_credits_nothing(
    client: Client, account: Account, payment_status: str
) -> None:
    record = subscription_checkout(account)
    payload = event(
        "checkout.session.completed",
        completed(record, payment_status=payment_status),
        event_id="evt_1",
        created=T0,
    )
    assert post(client, payload) == 200
    assert post(client, payload) == 200
    record.refresh_from_db()
    assert (record.status, record.stripe_subscription_id) == ("complete", "sub_test_1")
    assert StripeEvent.objects.get().status == "processed"
    assert not LedgerLine.objects.exists()
    assert balance(account.user) == 0


def test_a_subscription_checkout_sent_as_a_payment_credits_nothing(client: Client, account: Account) -> None:
    record = subscription_checkout(account)
    stored = send(client, "checkout.session.completed", completed(record, mode="payment"), "evt_1", T0)
    assert stored.status == "ignored"
    assert "subscription's" in stored.error
    assert not LedgerLine.objects.exists()
    record.refresh_from_db()
    assert record.status == "open"


def test_a_subscription_checkout_of_another_customer_is_ignored(client: Client, account: Account) -> None:
    record = subscription_checkout(account)
    stored = send(client, "checkout.session.completed", completed(record, customer="cus_other"), "evt_1", T0)
    assert stored.status == "ignored"
    record.refresh_from_db()
    assert record.status == "open"


MALFORMED_OBJECTS = [
    {},
    {"id": 5, "customer": ["cus_test_1"], "status": 7, "items": "none", "metadata": ["x"]},
    {"id": "sub_x", "customer": "cus_test_1", "status": "active", "items": {"data": [{"price": "p"}]}},
    {
        "id": "sub_x",
        "customer": "cus_test_1",
        "status": "sideways",
        "items": {"data": [None, 3]},
        "created": "yesterday",
    },
    {"id": "in_x", "customer": "cus_test_1", "amount_paid": -5, "parent": "sub_x", "created": 10**20},
    {"id": "in_x", "customer": "cus_test_1", "status": "paid", "amount_paid": 10**12, "created": 10**20},
    {"id": "in_x", "customer": "cus_test_1", "status": "refunded?", "amount_paid": 2_000},
]


@pytest.mark.parametrize(
    "event_type",
    [
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "invoice.paid",
        "invoice.payment_failed",
    ],
)
@pytest.mark.parametrize("obj", MALFORMED_OBJECTS)
@pytest.mark.plans
def test_a_malformed_but_signed_event_changes_nothing_and_is_not_retried(
    client: Client, account: Account, event_type: str, obj: dict[str, Any]
) -> None:
    stored = send(client, event_type, obj, "evt_malformed", T0)

    assert stored.status == "ignored", stored.error
    assert not Subscription.objects.exists()
    assert not Invoice.objects.exists()
    assert standing_of(account).source == "default"
