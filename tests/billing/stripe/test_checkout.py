"""Top-ups, Pay Now and reconciliation through the local Stripe emulator, over real HTTP:
our site opens the Checkout, the stand-in page is paid, the emulator sends a signed
webhook to the live server, the balance moves."""

from __future__ import annotations

import os
from io import StringIO
from typing import Any

import pytest
import redis
from django.core.management import call_command
from django.test import Client
from pytest_django.live_server_helper import LiveServer

from billing.models import CheckoutSession, LedgerLine, StripeEvent
from hubsite.models import User
from tests.billing.helpers import balance
from tests.billing.stripe.emulator import DEAD_URL, Emulator
from tests.factories import make_instance_type, make_model
from tests.helpers import wait_for
from training.models import TrainingSession
from training.presence import announce

pytestmark = pytest.mark.django_db(transaction=True)


def top_up(client: Client, cents: int = 2_000) -> CheckoutSession:
    response = client.post("/billing/stripe/top-up/", {"preset": cents})
    assert response.status_code == 303
    record = CheckoutSession.objects.get()
    assert response["Location"] == record.url
    assert record.url.startswith(os.environ.get("STRIPE_API_BASE", "http://127.0.0.1"))
    return record


def test_it_credits_a_top_up_paid_on_the_stand_in_page(owner_client: Client, user: User, stripe_live: Emulator) -> None:
    record = top_up(owner_client)
    assert (record.status, record.amount_cents, record.purpose) == ("open", 2_000, "top_up")
    paid = stripe_live.pay(record.url)
    assert paid.status_code == 303
    assert paid.headers["Location"].endswith(
        f"/billing/stripe/checkout/{record.pk}/success/?session_id={record.stripe_session_id}"
    )
    wait_for(lambda: balance(user) == 20_000_000, timeout=15)
    record.refresh_from_db()
    assert record.status == "complete"
    assert record.stripe_payment_intent_id.startswith("pi_")
    line = LedgerLine.objects.get(kind="top_up")
    assert (line.amount_micros, line.reference) == (20_000_000, f"stripe checkout {record.stripe_session_id}")
    assert StripeEvent.objects.get(type="checkout.session.completed").status == "processed"
    # The success page shows the new balance; htmx polling stops.
    page = owner_client.get(f"/billing/stripe/checkout/{record.pk}/success/", headers={"HX-Request": "true"})
    assert page.status_code == 286
    assert "US$20.00" in page.content.decode()


def test_it_credits_once_when_the_same_webhook_arrives_ten_times_at_once(
    owner_client: Client, user: User, stripe_live: Emulator, live_server: LiveServer
) -> None:
    record = top_up(owner_client, 5_000)
    stripe_live.register_webhook(DEAD_URL)  # keep the first delivery back, so all ten race
    assert stripe_live.pay(record.url).status_code == 303
    [event] = [
        e
        for e in stripe_live.events("checkout.session.completed")
        if e["data"]["object"]["id"] == record.stripe_session_id
    ]
    stripe_live.register_webhook(f"{live_server.url}/billing/stripe/webhook/")
    statuses = stripe_live.redeliver(event["id"], times=10)
    assert statuses == [200] * 10
    assert balance(user) == 50_000_000
    assert LedgerLine.objects.filter(kind="top_up").count() == 1
    stored = StripeEvent.objects.get()
    assert (stored.stripe_id, stored.status, stored.attempts) == (event["id"], "processed", 1)


def test_it_credits_nothing_for_a_declined_card(owner_client: Client, user: User, stripe_live: Emulator) -> None:
    record = top_up(owner_client)
    declined = stripe_live.pay(record.url, card="4000000000000002")
    assert declined.status_code == 402
    assert "declined" in declined.text
    record.refresh_from_db()
    assert record.status == "open"
    assert not [
        e
        for e in stripe_live.events("checkout.session.completed")
        if e["data"]["object"]["id"] == record.stripe_session_id
    ]
    assert balance(user) == 0
    assert not LedgerLine.objects.exists()


def test_it_takes_back_a_refund_made_in_stripe(owner_client: Client, user: User, stripe_live: Emulator) -> None:
    record = top_up(owner_client)
    stripe_live.pay(record.url)
    wait_for(lambda: balance(user) == 20_000_000, timeout=15)
    stripe_live.refund(str(record.stripe_session_id), 500)
    wait_for(lambda: balance(user) == 15_000_000, timeout=15)
    assert LedgerLine.objects.get(kind="payment_refund").amount_micros == -5_000_000


def test_pay_now_queues_the_timed_session_in_one_go(
    owner_client: Client, user: User, stripe_live: Emulator, redis_client: redis.Redis
) -> None:
    instance_type = make_instance_type()  # US$3.60 an hour
    model = make_model(user)
    announce({instance_type.queue_name}, "test-worker")
    response = owner_client.post(
        f"/models/{model.uid}/train/pay-now/", {"instance_type": instance_type.slug, "hours": "0.5"}
    )
    assert response.status_code == 303
    record = CheckoutSession.objects.get()
    assert (record.purpose, record.amount_cents, record.time_budget_seconds) == ("timed_pay_now", 180, 1800)
    assert not TrainingSession.objects.exists()  # nothing starts before the payment
    assert stripe_live.pay(record.url).status_code == 303
    session: Any = wait_for(lambda: TrainingSession.objects.first(), timeout=15)
    assert (session.status, session.mode, session.time_budget_seconds) == ("queued", "timed", 1800)
    lines = list(LedgerLine.objects.order_by("id").values_list("kind", "amount_micros"))
    assert lines == [("top_up", 1_800_000), ("timed_prepayment", -1_800_000)]
    assert balance(user) == 0
    record.refresh_from_db()
    assert (record.status, record.training_session_id) == ("complete", session.pk)


def test_an_abandoned_pay_now_leaves_no_session_and_no_money_moved(
    owner_client: Client, user: User, stripe_emulator: Emulator, redis_client: redis.Redis
) -> None:
    instance_type = make_instance_type()
    model = make_model(user)
    announce({instance_type.queue_name}, "test-worker")
    owner_client.post(f"/models/{model.uid}/train/pay-now/", {"instance_type": instance_type.slug, "hours": "1"})
    record = CheckoutSession.objects.get()
    CheckoutSession.objects.filter(pk=record.pk).update(expires_at=record.created_at)  # long gone
    call_command("reconcile_stripe", stdout=StringIO())
    record.refresh_from_db()
    assert record.status == "expired"
    assert not TrainingSession.objects.exists()
    assert not LedgerLine.objects.exists()


def test_reconcile_applies_a_paid_checkout_whose_webhook_was_lost_and_a_second_run_changes_nothing(
    owner_client: Client, user: User, stripe_emulator: Emulator
) -> None:
    record = top_up(owner_client)
    assert stripe_emulator.pay(record.url).status_code == 303  # its webhook goes nowhere
    record.refresh_from_db()
    assert record.status == "open"
    out = StringIO()
    call_command("reconcile_stripe", stdout=out)
    assert "1 credited" in out.getvalue()
    assert balance(user) == 20_000_000
    again = StringIO()
    call_command("reconcile_stripe", stdout=again)
    assert "0 open checkouts checked, 0 credited" in again.getvalue()
    assert balance(user) == 20_000_000
    assert LedgerLine.objects.filter(kind="top_up").count() == 1


def test_reconcile_leaves_an_unpaid_checkout_open_until_it_expires(
    owner_client: Client, user: User, stripe_emulator: Emulator
) -> None:
    record = top_up(owner_client)
    call_command("reconcile_stripe", stdout=StringIO())
    record.refresh_from_db()
    assert record.status == "open"
    assert balance(user) == 0


@pytest.mark.skipif(
    not os.environ.get("STRIPE_TEST_SECRET_KEY"),
    reason="STRIPE_TEST_SECRET_KEY is not set: the real Stripe test-mode check is opt-in",
)
def test_it_opens_a_real_test_mode_checkout_session(owner_client: Client, settings: Any) -> None:
    settings.STRIPE_SECRET_KEY = os.environ["STRIPE_TEST_SECRET_KEY"]
    settings.STRIPE_API_BASE = ""
    response = owner_client.post("/billing/stripe/top-up/", {"preset": 1_000})
    assert response.status_code == 303
    record = CheckoutSession.objects.get()
    assert str(record.stripe_session_id).startswith("cs_test_")
    assert response["Location"].startswith("https://checkout.stripe.com/")
