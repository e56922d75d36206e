"""The webhook endpoint with signed payloads through the Django test client: every bad input."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.db import connections, transaction
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from billing.models import Account, CheckoutSession, LedgerLine, StripeEvent
from billing.stripe.webhooks import handled_events
from hubsite.models import User
from tests.billing.helpers import balance
from tests.billing.stripe.emulator import WEBHOOK_SECRET, event_payload, signature_header

URL = "/billing/stripe/webhook/"


@pytest.fixture(autouse=True)
def webhook_secret(settings: SettingsWrapper) -> None:
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET


def make_record(user: User, *, amount_cents: int = 2000, session_id: str = "cs_test_abc") -> CheckoutSession:
    return CheckoutSession.objects.create(
        account=Account.objects.get(user=user), amount_cents=amount_cents, stripe_session_id=session_id
    )


def session_object(record: CheckoutSession, **changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": record.stripe_session_id,
        "object": "checkout.session",
        "amount_total": record.amount_cents,
        "currency": "usd",
        "status": "complete",
        "payment_status": "paid",
        "payment_intent": "pi_test_1",
        "client_reference_id": str(record.pk),
        "metadata": {"hubsite_checkout": str(record.pk), "hubsite_account": str(record.account_id)},
    }
    obj.update(changes)
    return obj


def post(client: Client, payload: bytes, header: str | None = None) -> Any:
    headers = {} if header is None else {"Stripe-Signature": header}
    return client.post(URL, payload, content_type="application/json", headers=headers)


def test_it_credits_a_paid_checkout_once(client: Client, user: User) -> None:
    record = make_record(user)
    payload = event_payload("checkout.session.completed", session_object(record))
    assert post(client, payload, signature_header(payload)).status_code == 200
    assert post(client, payload, signature_header(payload)).status_code == 200  # a redelivery
    assert balance(user) == 20_000_000
    assert LedgerLine.objects.filter(kind="top_up").count() == 1
    record.refresh_from_db()
    assert record.status == "complete"
    assert record.stripe_payment_intent_id == "pi_test_1"
    event = StripeEvent.objects.get()
    assert (event.status, event.attempts) == ("processed", 1)


def test_it_rejects_a_missing_signature(client: Client, user: User) -> None:
    payload = event_payload("checkout.session.completed", session_object(make_record(user)))
    assert post(client, payload).status_code == 400
    assert not StripeEvent.objects.exists()
    assert balance(user) == 0


def test_it_rejects_a_wrong_signature(client: Client, user: User) -> None:
    payload = event_payload("checkout.session.completed", session_object(make_record(user)))
    assert post(client, payload, signature_header(payload, secret="whsec_someone_else")).status_code == 400
    assert not StripeEvent.objects.exists()
    assert balance(user) == 0


def test_it_rejects_a_signature_over_another_body(client: Client, user: User) -> None:
    record = make_record(user)
    signed = event_payload("checkout.session.completed", session_object(record, amount_total=50))
    sent = event_payload("checkout.session.completed", session_object(record))
    assert post(client, sent, signature_header(signed)).status_code == 400
    assert balance(user) == 0


def test_it_rejects_an_old_timestamp(client: Client, user: User) -> None:
    payload = event_payload("checkout.session.completed", session_object(make_record(user)))
    header = signature_header(payload, timestamp=int(time.time()) - 3600)
    assert post(client, payload, header).status_code == 400
    assert not StripeEvent.objects.exists()
    assert balance(user) == 0


def test_it_rejects_malformed_json_even_when_signed(client: Client, db: None) -> None:
    payload = b'{"id": "evt_1", "type": '
    assert post(client, payload, signature_header(payload)).status_code == 400
    assert not StripeEvent.objects.exists()


def test_it_rejects_a_signed_body_that_is_not_an_event(client: Client, db: None) -> None:
    payload = b'["not", "an", "event"]'
    assert post(client, payload, signature_header(payload)).status_code == 400
    assert not StripeEvent.objects.exists()


def test_it_rejects_get(client: Client, db: None) -> None:
    assert client.get(URL).status_code == 405


def test_it_stores_and_ignores_event_types_it_does_not_handle(client: Client, db: None) -> None:
    payload = event_payload("customer.created", {"id": "cus_1", "object": "customer"})
    assert post(client, payload, signature_header(payload)).status_code == 200
    event = StripeEvent.objects.get()
    assert (event.stripe_id, event.type, event.status) == ("evt_test_1", "customer.created", "ignored")
    assert "not handled" in event.error


def test_it_ignores_an_unknown_session(client: Client, user: User) -> None:
    record = make_record(user)
    payload = event_payload("checkout.session.completed", session_object(record, id="cs_test_unknown"))
    assert post(client, payload, signature_header(payload)).status_code == 200
    assert StripeEvent.objects.get().status == "ignored"
    assert "unknown Checkout Session" in StripeEvent.objects.get().error
    assert balance(user) == 0


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"amount_total": 200_000}, "amount"),
        ({"currency": "eur"}, "currency"),
        ({"payment_status": "unpaid"}, "not paid"),
        ({"client_reference_id": "999"}, "client_reference_id"),
    ],
)
def test_it_credits_nothing_when_the_session_does_not_match(
    client: Client, user: User, changes: dict[str, Any], reason: str
) -> None:
    record = make_record(user)
    payload = event_payload("checkout.session.completed", session_object(record, **changes))
    assert post(client, payload, signature_header(payload)).status_code == 200
    event = StripeEvent.objects.get()
    assert event.status == "ignored"
    assert reason in event.error
    assert balance(user) == 0
    record.refresh_from_db()
    assert record.status == "open"


def test_it_credits_nothing_for_an_event_naming_another_accounts_record(
    client: Client, user: User, outsider: User
) -> None:
    mine = make_record(user, session_id="cs_test_mine")
    theirs = make_record(outsider, session_id="cs_test_theirs")
    # Stripe's session is the outsider's, but its metadata claims my record and account.
    obj = session_object(theirs, metadata={"hubsite_checkout": str(mine.pk), "hubsite_account": str(mine.account_id)})
    payload = event_payload("checkout.session.completed", obj)
    assert post(client, payload, signature_header(payload)).status_code == 200
    assert StripeEvent.objects.get().status == "ignored"
    assert balance(user) == 0
    assert balance(outsider) == 0


def test_it_ignores_events_in_another_api_version(client: Client, user: User) -> None:
    record = make_record(user)
    payload = event_payload("checkout.session.completed", session_object(record), api_version="2020-08-27")
    assert post(client, payload, signature_header(payload)).status_code == 200
    event = StripeEvent.objects.get()
    assert event.status == "ignored"
    assert "pinned" in event.error
    assert balance(user) == 0


def test_it_marks_an_expired_checkout(client: Client, user: User) -> None:
    record = make_record(user)
    payload = event_payload(
        "checkout.session.expired", session_object(record, status="expired", payment_status="unpaid")
    )
    assert post(client, payload, signature_header(payload)).status_code == 200
    record.refresh_from_db()
    assert record.status == "expired"
    assert balance(user) == 0


def test_it_takes_a_refund_back_and_writes_off_what_the_balance_cannot_cover(client: Client, user: User) -> None:
    record = make_record(user)
    paid = event_payload("checkout.session.completed", session_object(record))
    assert post(client, paid, signature_header(paid)).status_code == 200
    # Spend most of it, then Stripe refunds the whole US$20.00.
    from billing import services

    services.adjust(Account.objects.get(user=user).pk, -15_000_000, staff_user=None, reason="spent")
    charge = {
        "id": "ch_1",
        "object": "charge",
        "payment_intent": "pi_test_1",
        "currency": "usd",
        "amount_refunded": 2000,
    }
    refund = event_payload("charge.refunded", charge, event_id="evt_refund")
    assert post(client, refund, signature_header(refund)).status_code == 200
    again = event_payload("charge.refunded", charge, event_id="evt_refund_again")  # a second event, same total
    assert post(client, again, signature_header(again)).status_code == 200
    assert balance(user) == 0
    kinds = list(LedgerLine.objects.order_by("id").values_list("kind", "amount_micros"))
    assert kinds[-2:] == [("write_off", 15_000_000), ("payment_refund", -20_000_000)]
    record.refresh_from_db()
    assert record.refunded_cents == 2000


@pytest.mark.django_db(transaction=True)
def test_it_answers_503_on_a_lock_timeout_and_keeps_the_event_for_the_retry(
    client: Client, user: User, settings: SettingsWrapper
) -> None:
    settings.STRIPE_LOCK_TIMEOUT_MS = 200
    record = make_record(user)
    payload = event_payload("checkout.session.completed", session_object(record))
    locked, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        try:
            with transaction.atomic():
                CheckoutSession.objects.select_for_update().get(pk=record.pk)
                locked.set()
                release.wait(10)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert locked.wait(10)
        response = post(client, payload, signature_header(payload))
    finally:
        release.set()
        holder.join()
    assert response.status_code == 503
    event = StripeEvent.objects.get()
    assert event.status == "failed"
    assert "retry" in event.error
    assert balance(user) == 0
    # Stripe's retry succeeds once the lock is gone.
    assert post(client, payload, signature_header(payload)).status_code == 200
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("processed", 2)
    assert balance(user) == 20_000_000


def dispute_object(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": "dp_test_1",
        "object": "dispute",
        "amount": 2000,
        "currency": "usd",
        "charge": "ch_1",
        "payment_intent": "pi_test_1",
        "status": "needs_response",
    }
    obj.update(changes)
    return obj


def paid_record(client: Client, user: User) -> CheckoutSession:
    record = make_record(user)
    paid = event_payload("checkout.session.completed", session_object(record))
    assert post(client, paid, signature_header(paid)).status_code == 200
    return record


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"payment_intent": "pi_someone_else"}, "no checkout of ours"),
        ({"currency": "eur"}, "currency"),
        ({"amount": 2001}, "not within the payment"),
        ({"amount": 0}, "not within the payment"),
        ({"amount": "2000"}, "not within the payment"),
        ({"status": "charge_refunded"}, "not a dispute we understand"),
        ({"id": "ch_1"}, "not a dispute we understand"),
    ],
)
def test_it_takes_nothing_for_a_dispute_that_does_not_match(
    client: Client, user: User, changes: dict[str, Any], reason: str
) -> None:
    record = paid_record(client, user)
    payload = event_payload("charge.dispute.created", dispute_object(**changes), event_id="evt_dispute")
    assert post(client, payload, signature_header(payload)).status_code == 200
    event = StripeEvent.objects.get(stripe_id="evt_dispute")
    assert event.status == "ignored"
    assert reason in event.error
    assert balance(user) == 20_000_000
    record.refresh_from_db()
    assert (record.stripe_dispute_id, record.dispute_status) == ("", "")


def test_it_ignores_a_second_dispute_of_one_payment(client: Client, user: User) -> None:
    record = paid_record(client, user)
    first = event_payload("charge.dispute.created", dispute_object(amount=500), event_id="evt_dispute_1")
    assert post(client, first, signature_header(first)).status_code == 200
    second = event_payload("charge.dispute.created", dispute_object(id="dp_test_2"), event_id="evt_dispute_2")
    assert post(client, second, signature_header(second)).status_code == 200
    assert StripeEvent.objects.get(stripe_id="evt_dispute_2").status == "ignored"
    assert list(LedgerLine.objects.filter(kind="dispute").values_list("amount_micros", flat=True)) == [-5_000_000]
    assert balance(user) == 15_000_000
    record.refresh_from_db()
    assert (record.stripe_dispute_id, record.disputed_cents) == ("dp_test_1", 500)


def test_the_demo_and_the_tests_subscribe_to_every_event_type_we_handle() -> None:
    import billing.stripe.subscriptions  # noqa: F401 - registers its handlers, as billing's ready does
    from devtools.devstack import STRIPE_WEBHOOK_EVENTS
    from tests.billing.stripe.emulator import EVENTS

    assert set(STRIPE_WEBHOOK_EVENTS) == set(EVENTS) == handled_events()
