"""Subscriptions in the local Stripe emulator (devtools/stripe_emulator/subscriptions.py),
over real HTTP: the site's side is written against these shapes and events, so they
are checked here on their own. Webhooks go to a small receiver in this process that
records them in the order they arrive and checks their signatures."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings

from tests.billing.stripe.emulator import WEBHOOK_SECRET, Emulator
from tests.helpers import wait_for

DAY = 24 * 60 * 60


class Receiver:
    """A webhook endpoint: every delivery, in arrival order, with its signature checked."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.bad_signatures = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                payload = self.rfile.read(int(self.headers["Content-Length"]))
                parts = dict(part.split("=", 1) for part in self.headers["Stripe-Signature"].split(","))
                expected = hmac.new(
                    WEBHOOK_SECRET.encode(), parts["t"].encode() + b"." + payload, hashlib.sha256
                ).hexdigest()
                if hmac.compare_digest(expected, parts["v1"]):
                    receiver.events.append(json.loads(payload))
                else:
                    receiver.bad_signatures += 1
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def types_after(self, count: int, expected: int, timeout: float = 10) -> list[str]:
        """The types of the ``expected`` events that arrive after the first ``count``."""
        wait_for(lambda: len(self.events) >= count + expected, timeout=timeout)
        time.sleep(0.2)  # and no more than those
        return [event["type"] for event in self.events[count:]]


@pytest.fixture
def receiver(stripe_emulator: Emulator) -> Iterator[Receiver]:
    hook = Receiver()
    stripe_emulator.register_webhook(hook.url)
    yield hook
    hook.server.shutdown()
    hook.server.server_close()


def subscription_checkout(emulator: Emulator, price: dict[str, Any], **fields: Any) -> dict[str, Any]:
    data = {
        "mode": "subscription",
        "line_items[0][price]": price["id"],
        "line_items[0][quantity]": 1,
        "success_url": "http://127.0.0.1:9/ok?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "http://127.0.0.1:9/cancel",
        **fields,
    }
    response = emulator.api("POST", "/v1/checkout/sessions", data)
    assert response.status_code == 200, response.text
    session: dict[str, Any] = response.json()
    return session


def get(emulator: Emulator, path: str, **params: Any) -> dict[str, Any]:
    response = emulator.api("GET", path, params=params)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def subscribed(emulator: Emulator, receiver: Receiver, price: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A paid subscription checkout; answers the subscription, once its three events arrived."""
    count = len(receiver.events)
    session = subscription_checkout(emulator, price, customer_email="pat@example.com", **fields)
    assert emulator.pay(session["url"]).status_code == 303
    receiver.types_after(count, 3)
    completed = get(emulator, f"/v1/checkout/sessions/{session['id']}")
    return get(emulator, f"/v1/subscriptions/{completed['subscription']}")


def test_paying_a_subscription_checkout_creates_it_with_its_paid_invoice_and_sends_events_in_order(
    stripe_emulator: Emulator, receiver: Receiver
) -> None:
    price = stripe_emulator.monthly_price("Pro", 2_000)
    assert (price["object"], price["unit_amount"], price["currency"]) == ("price", 2_000, "usd")
    assert price["recurring"]["interval"] == "month"
    assert price["recurring"]["interval_count"] == 1
    session = subscription_checkout(
        stripe_emulator,
        price,
        customer_email="pat@example.com",
        client_reference_id="user-7",
        **{"metadata[user]": "7", "subscription_data[metadata][user]": "7", "subscription_data[metadata][plan]": "pro"},
    )
    assert (session["mode"], session["amount_total"], session["currency"]) == ("subscription", 2_000, "usd")
    assert session["subscription"] is None
    assert session["customer"] is None
    assert session["status"] == "open"
    page = requests.get(session["url"], timeout=10)
    assert page.status_code == 200
    assert "Pro: US$20.00 a month." in page.text

    paid = stripe_emulator.pay(session["url"])
    assert paid.status_code == 303
    assert paid.headers["Location"] == f"http://127.0.0.1:9/ok?session_id={session['id']}"
    types = receiver.types_after(0, 3)
    assert types == ["customer.subscription.created", "invoice.paid", "checkout.session.completed"]
    assert receiver.bad_signatures == 0
    assert {event["api_version"] for event in receiver.events} == {settings.STRIPE_API_VERSION}

    completed = get(stripe_emulator, f"/v1/checkout/sessions/{session['id']}")
    assert (completed["status"], completed["payment_status"]) == ("complete", "paid")
    assert completed["customer"].startswith("cus_")
    assert completed["subscription"].startswith("sub_")
    assert receiver.events[2]["data"]["object"]["subscription"] == completed["subscription"]
    expanded = get(stripe_emulator, f"/v1/checkout/sessions/{session['id']}", **{"expand[]": "subscription"})
    assert expanded["subscription"]["id"] == completed["subscription"]
    customer = get(stripe_emulator, f"/v1/customers/{completed['customer']}")
    assert customer["email"] == "pat@example.com"

    sub = get(stripe_emulator, f"/v1/subscriptions/{completed['subscription']}")
    assert sub == receiver.events[0]["data"]["object"] | {"latest_invoice": sub["latest_invoice"]}
    assert (sub["object"], sub["status"], sub["customer"]) == ("subscription", "active", completed["customer"])
    assert sub["metadata"] == {"user": "7", "plan": "pro"}
    assert (sub["cancel_at_period_end"], sub["cancel_at"], sub["canceled_at"], sub["ended_at"]) == (
        False,
        None,
        None,
        None,
    )
    assert sub["trial_start"] is None
    assert sub["trial_end"] is None
    assert "current_period_end" not in sub  # on the items, as in Stripe's current API
    [item] = sub["items"]["data"]
    assert item["object"] == "subscription_item"
    assert item["id"].startswith("si_")
    assert item["quantity"] == 1
    assert item["price"]["id"] == price["id"]
    assert item["current_period_end"] - item["current_period_start"] == 30 * DAY

    invoice = get(stripe_emulator, f"/v1/invoices/{sub['latest_invoice']}")
    assert invoice == receiver.events[1]["data"]["object"]
    assert (invoice["status"], invoice["amount_due"], invoice["amount_paid"]) == ("paid", 2_000, 2_000)
    assert invoice["billing_reason"] == "subscription_create"
    assert invoice["invoice_pdf"] is None
    assert invoice["status_transitions"]["paid_at"] is not None
    assert invoice["parent"] == {
        "type": "subscription_details",
        "quote_details": None,
        "subscription_details": {"subscription": sub["id"], "metadata": {"user": "7", "plan": "pro"}},
    }
    assert (invoice["period_start"], invoice["period_end"]) == (
        item["current_period_start"],
        item["current_period_end"],
    )
    hosted = requests.get(invoice["hosted_invoice_url"], timeout=10)
    assert hosted.status_code == 200
    assert "US$20.00" in hosted.text
    assert "paid" in hosted.text

    # The charge behind it is a real one, with a receipt anyone holding the link can open.
    charge = get(stripe_emulator, f"/v1/charges/{invoice['charge']}")
    assert (charge["amount"], charge["status"], charge["invoice"]) == (2_000, "succeeded", invoice["id"])
    assert charge["receipt_url"] == f"{stripe_emulator.base}/_config/receipts/{charge['id']}"
    receipt = requests.get(charge["receipt_url"], timeout=10)
    assert receipt.status_code == 200
    assert "US$20.00" in receipt.text

    listed = get(stripe_emulator, "/v1/subscriptions", customer=completed["customer"], status="all", limit=10)
    assert [s["id"] for s in listed["data"]] == [sub["id"]]
    by_subscription = get(stripe_emulator, "/v1/invoices", subscription=sub["id"])
    assert [i["id"] for i in by_subscription["data"]] == [invoice["id"]]


def test_a_trial_charges_nothing_until_its_end_then_the_first_renewal_is_paid(
    stripe_emulator: Emulator, receiver: Receiver
) -> None:
    price = stripe_emulator.monthly_price("Pro", 2_000)
    customer = stripe_emulator.api("POST", "/v1/customers", {"email": "trial@example.com"})
    assert customer.status_code == 200
    session = subscription_checkout(
        stripe_emulator, price, customer=customer.json()["id"], **{"subscription_data[trial_period_days]": 14}
    )
    assert session["amount_total"] == 0
    assert session["customer"] == customer.json()["id"]
    assert "14-day free trial" in requests.get(session["url"], timeout=10).text
    assert stripe_emulator.pay(session["url"]).status_code == 303
    receiver.types_after(0, 3)
    completed = get(stripe_emulator, f"/v1/checkout/sessions/{session['id']}")
    assert completed["payment_status"] == "no_payment_required"
    assert completed["customer"] == customer.json()["id"]  # no second customer

    sub = get(stripe_emulator, f"/v1/subscriptions/{completed['subscription']}")
    assert sub["status"] == "trialing"
    assert sub["trial_end"] - sub["trial_start"] == 14 * DAY
    assert sub["items"]["data"][0]["current_period_end"] == sub["trial_end"]
    first = get(stripe_emulator, f"/v1/invoices/{sub['latest_invoice']}")
    assert (first["status"], first["amount_due"], first["charge"]) == ("paid", 0, None)

    advanced = stripe_emulator.advance_subscription(sub["id"])
    assert receiver.types_after(3, 2) == ["invoice.paid", "customer.subscription.updated"]
    assert [event["id"] for event in receiver.events[3:]] == advanced["events"]
    updated = receiver.events[4]["data"]
    assert updated["object"]["status"] == "active"
    assert updated["previous_attributes"]["status"] == "trialing"
    renewal = receiver.events[3]["data"]["object"]
    assert (renewal["billing_reason"], renewal["amount_paid"], renewal["status"]) == (
        "subscription_cycle",
        2_000,
        "paid",
    )
    [item] = advanced["subscription"]["items"]["data"]
    assert item["current_period_end"] - item["current_period_start"] == 30 * DAY
    assert item["current_period_start"] >= sub["trial_start"]
    assert advanced["subscription"]["latest_invoice"] == renewal["id"]


def test_a_declined_card_creates_nothing(stripe_emulator: Emulator, receiver: Receiver) -> None:
    price = stripe_emulator.monthly_price("Pro", 2_000)
    email = f"declined-{time.time_ns()}@example.com"
    before = get(stripe_emulator, "/v1/subscriptions", status="all", limit=1)["total_count"]
    invoices_before = get(stripe_emulator, "/v1/invoices", limit=1)["total_count"]
    session = subscription_checkout(stripe_emulator, price, customer_email=email)
    declined = stripe_emulator.pay(session["url"], card="4000000000000002")
    assert declined.status_code == 402
    assert "declined" in declined.text
    time.sleep(0.5)
    assert receiver.events == []
    assert get(stripe_emulator, f"/v1/checkout/sessions/{session['id']}")["status"] == "open"
    assert get(stripe_emulator, "/v1/subscriptions", status="all", limit=1)["total_count"] == before
    assert get(stripe_emulator, "/v1/invoices", limit=1)["total_count"] == invoices_before
    assert get(stripe_emulator, "/v1/customers", email=email)["data"] == []


def test_canceling_at_period_end_ends_the_subscription_when_the_period_ends(
    stripe_emulator: Emulator, receiver: Receiver
) -> None:
    sub = subscribed(stripe_emulator, receiver, stripe_emulator.monthly_price("Pro", 2_000))
    period_end = sub["items"]["data"][0]["current_period_end"]
    response = stripe_emulator.api("POST", f"/v1/subscriptions/{sub['id']}", {"cancel_at_period_end": "true"})
    assert response.status_code == 200
    assert receiver.types_after(3, 1) == ["customer.subscription.updated"]
    changed = receiver.events[3]["data"]
    assert changed["object"]["cancel_at_period_end"] is True
    assert changed["object"]["cancel_at"] == period_end
    assert changed["object"]["status"] == "active"
    assert changed["previous_attributes"]["cancel_at_period_end"] is False
    # Asking again changes nothing and sends nothing.
    stripe_emulator.api("POST", f"/v1/subscriptions/{sub['id']}", {"cancel_at_period_end": "true"})

    advanced = stripe_emulator.advance_subscription(sub["id"])
    assert receiver.types_after(4, 1) == ["customer.subscription.deleted"]
    assert advanced["events"] == [receiver.events[4]["id"]]
    ended = advanced["subscription"]
    assert ended["status"] == "canceled"
    assert ended["ended_at"] is not None
    assert get(stripe_emulator, "/v1/invoices", subscription=sub["id"])["total_count"] == 1  # nothing billed
    customer = sub["customer"]
    assert get(stripe_emulator, "/v1/subscriptions", customer=customer)["data"] == []
    assert [s["id"] for s in get(stripe_emulator, "/v1/subscriptions", customer=customer, status="all")["data"]] == [
        sub["id"]
    ]
    again = requests.post(f"{stripe_emulator.base}/_config/subscriptions/{sub['id']}/advance", timeout=10)
    assert again.status_code == 400


def test_deleting_a_subscription_cancels_it_now(stripe_emulator: Emulator, receiver: Receiver) -> None:
    sub = subscribed(stripe_emulator, receiver, stripe_emulator.monthly_price("Pro", 2_000))
    response = stripe_emulator.api("DELETE", f"/v1/subscriptions/{sub['id']}")
    assert response.status_code == 200
    assert response.json()["status"] == "canceled"
    assert response.json()["ended_at"] is not None
    assert receiver.types_after(3, 1) == ["customer.subscription.deleted"]
    assert stripe_emulator.api("DELETE", f"/v1/subscriptions/{sub['id']}").status_code == 400


def test_a_failed_renewal_is_past_due_until_the_customer_pays_it_in_the_portal(
    stripe_emulator: Emulator, receiver: Receiver
) -> None:
    sub = subscribed(stripe_emulator, receiver, stripe_emulator.monthly_price("Pro", 2_000))
    advanced = stripe_emulator.advance_subscription(sub["id"], "failed")
    assert receiver.types_after(3, 2) == ["invoice.payment_failed", "customer.subscription.updated"]
    assert advanced["subscription"]["status"] == "past_due"
    overdue = get(stripe_emulator, f"/v1/invoices/{advanced['subscription']['latest_invoice']}")
    assert (overdue["status"], overdue["amount_due"], overdue["amount_paid"]) == ("open", 2_000, 0)
    assert overdue["billing_reason"] == "subscription_cycle"

    portal = stripe_emulator.api(
        "POST", "/v1/billing_portal/sessions", {"customer": sub["customer"], "return_url": "http://127.0.0.1:9/billing"}
    ).json()
    assert portal["object"] == "billing_portal.session"
    assert portal["id"].startswith("bps_")
    assert portal["url"] == f"{stripe_emulator.base}/_config/portal/{portal['id']}"
    page = requests.get(portal["url"], timeout=10).text
    assert "past_due" in page
    assert "Pay overdue invoice" in page
    assert 'href="http://127.0.0.1:9/billing"' in page
    assert overdue["hosted_invoice_url"] in page

    declined = stripe_emulator.portal_action(portal["url"], sub["id"], "pay", card="4000000000000002")
    assert declined.status_code == 402
    assert "declined" in declined.text
    time.sleep(0.3)
    assert len(receiver.events) == 5
    assert get(stripe_emulator, f"/v1/subscriptions/{sub['id']}")["status"] == "past_due"

    paid = stripe_emulator.portal_action(portal["url"], sub["id"], "pay")
    assert paid.status_code == 303
    assert paid.headers["Location"] == f"/_config/portal/{portal['id']}"
    assert receiver.types_after(5, 2) == ["invoice.paid", "customer.subscription.updated"]
    assert receiver.events[5]["data"]["object"]["id"] == overdue["id"]
    assert receiver.events[6]["data"]["object"]["status"] == "active"
    assert receiver.events[6]["data"]["previous_attributes"]["status"] == "past_due"
    assert get(stripe_emulator, f"/v1/invoices/{overdue['id']}")["status"] == "paid"
    assert "Pay overdue invoice" not in requests.get(portal["url"], timeout=10).text


def test_a_past_due_subscription_whose_last_retry_fails_is_canceled(
    stripe_emulator: Emulator, receiver: Receiver
) -> None:
    sub = subscribed(stripe_emulator, receiver, stripe_emulator.monthly_price("Pro", 2_000))
    stripe_emulator.advance_subscription(sub["id"], "failed")
    receiver.types_after(3, 2)
    advanced = stripe_emulator.advance_subscription(sub["id"], "failed")
    assert receiver.types_after(5, 1) == ["customer.subscription.deleted"]
    assert advanced["subscription"]["status"] == "canceled"


def test_the_portal_cancels_and_keeps_a_plan_escapes_what_it_shows_and_hides_other_customers(
    stripe_emulator: Emulator, receiver: Receiver
) -> None:
    price = stripe_emulator.monthly_price('<script>alert("x")</script>', 2_000)
    sub = subscribed(stripe_emulator, receiver, price)
    portal = stripe_emulator.api(
        "POST",
        "/v1/billing_portal/sessions",
        {"customer": sub["customer"], "return_url": "http://127.0.0.1:9/b?a=1&b=2"},
    ).json()
    page = requests.get(portal["url"], timeout=10).text
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert 'href="http://127.0.0.1:9/b?a=1&amp;b=2"' in page
    assert "Cancel plan" in page

    assert stripe_emulator.portal_action(portal["url"], sub["id"], "cancel").status_code == 303
    assert receiver.types_after(3, 1) == ["customer.subscription.updated"]
    assert get(stripe_emulator, f"/v1/subscriptions/{sub['id']}")["cancel_at_period_end"] is True
    assert "Keep plan" in requests.get(portal["url"], timeout=10).text
    assert stripe_emulator.portal_action(portal["url"], sub["id"], "keep").status_code == 303
    assert receiver.types_after(4, 1) == ["customer.subscription.updated"]
    kept = get(stripe_emulator, f"/v1/subscriptions/{sub['id']}")
    assert (kept["cancel_at_period_end"], kept["cancel_at"], kept["canceled_at"]) == (False, None, None)

    # Another customer's portal cannot touch this subscription.
    other = stripe_emulator.api("POST", "/v1/customers", {"email": "other@example.com"}).json()
    theirs = stripe_emulator.api(
        "POST", "/v1/billing_portal/sessions", {"customer": other["id"], "return_url": "http://127.0.0.1:9/b"}
    ).json()
    assert sub["id"] not in requests.get(theirs["url"], timeout=10).text
    assert stripe_emulator.portal_action(theirs["url"], sub["id"], "cancel").status_code == 404
    assert get(stripe_emulator, f"/v1/subscriptions/{sub['id']}")["cancel_at_period_end"] is False


def test_bad_requests_are_refused_and_change_nothing(stripe_emulator: Emulator) -> None:
    price = stripe_emulator.monthly_price("Pro", 2_000)
    count = get(stripe_emulator, "/v1/prices", limit=1)["total_count"]
    yearly = stripe_emulator.api(
        "POST",
        "/v1/prices",
        {"product": price["product"], "unit_amount": 100, "currency": "usd", "recurring[interval]": "year"},
    )
    assert yearly.status_code == 400
    assert "month" in yearly.json()["error"]["message"]
    assert stripe_emulator.api("POST", "/v1/prices", {"product": "prod_nope", "unit_amount": 1}).status_code == 404
    assert get(stripe_emulator, "/v1/prices", limit=1)["total_count"] == count
    sessions = get(stripe_emulator, "/v1/checkout/sessions", limit=100)["total_count"]
    for fields in (
        {"line_items[1][price]": price["id"]},
        {"subscription_data[trial_period_days]": "0"},
        {"customer": "cus_nope"},
        {"customer": "cus_x", "customer_email": "a@example.com"},
        {"subscription_data[coupon]": "x"},
    ):
        response = stripe_emulator.api(
            "POST",
            "/v1/checkout/sessions",
            {
                "mode": "subscription",
                "line_items[0][price]": price["id"],
                "success_url": "http://127.0.0.1:9/ok",
                **fields,
            },
        )
        assert response.status_code in (400, 404), fields
    assert get(stripe_emulator, "/v1/checkout/sessions", limit=100)["total_count"] == sessions
    assert stripe_emulator.api("GET", "/v1/subscriptions/sub_nope").status_code == 404
    assert stripe_emulator.api("GET", "/v1/invoices/in_nope/lines").status_code == 404
    assert requests.get(f"{stripe_emulator.base}/v1/subscriptions", timeout=10).status_code == 401  # a key is needed
    bad_outcome = requests.post(
        f"{stripe_emulator.base}/_config/subscriptions/sub_nope/advance", data={"outcome": "paid"}, timeout=10
    )
    assert bad_outcome.status_code == 404


def test_prices_honour_idempotency_keys(stripe_emulator: Emulator) -> None:
    price = stripe_emulator.monthly_price("Pro", 2_000)
    data = {"product": price["product"], "unit_amount": 500, "currency": "usd", "recurring[interval]": "month"}
    key = f"price-{time.time_ns()}"
    headers = {"Authorization": f"Bearer {settings.STRIPE_SECRET_KEY}", "Idempotency-Key": key}
    first = requests.post(f"{stripe_emulator.base}/v1/prices", data=data, headers=headers, timeout=10).json()
    second = requests.post(f"{stripe_emulator.base}/v1/prices", data=data, headers=headers, timeout=10).json()
    assert first["id"] == second["id"]


def test_a_payment_mode_charge_has_a_receipt_reachable_from_its_payment_intent(
    stripe_emulator: Emulator, receiver: Receiver
) -> None:
    session = stripe_emulator.api(
        "POST",
        "/v1/checkout/sessions",
        {
            "mode": "payment",
            "line_items[0][price_data][currency]": "usd",
            "line_items[0][price_data][unit_amount]": 1_500,
            "line_items[0][price_data][product_data][name]": "Top-up",
            "line_items[0][quantity]": 1,
            "success_url": "http://127.0.0.1:9/ok",
        },
    )
    assert session.status_code == 200, session.text
    assert session.json()["mode"] == "payment"
    assert "subscription" not in session.json()
    assert stripe_emulator.pay(session.json()["url"]).status_code == 303
    assert receiver.types_after(0, 1) == ["checkout.session.completed"]
    intent_id = get(stripe_emulator, f"/v1/checkout/sessions/{session.json()['id']}")["payment_intent"]
    intent = get(stripe_emulator, f"/v1/payment_intents/{intent_id}")
    # localstripe embeds the latest charge in the PaymentIntent (as expand[]=latest_charge would).
    receipt_url = intent["latest_charge"]["receipt_url"]
    assert receipt_url == get(stripe_emulator, f"/v1/charges/{intent['latest_charge']['id']}")["receipt_url"]
    expanded = stripe_emulator.api("GET", f"/v1/payment_intents/{intent_id}", params={"expand[]": "latest_charge"})
    assert expanded.json()["latest_charge"]["receipt_url"] == receipt_url
    receipt = requests.get(receipt_url, timeout=10)
    assert receipt.status_code == 200
    assert "US$15.00" in receipt.text
    assert requests.get(f"{stripe_emulator.base}/_config/receipts/ch_nope", timeout=10).status_code == 404


def test_subscriptions_survive_a_restart_of_the_emulator(tmp_path: Path, settings: Any) -> None:
    settings.STRIPE_SECRET_KEY = "sk_test_local_restart"

    def start() -> tuple[subprocess.Popen[bytes], Emulator]:
        (tmp_path / "url").unlink(missing_ok=True)
        process = subprocess.Popen(
            [sys.executable, "-m", "devtools.stripe_emulator", "--data-dir", str(tmp_path), "--port", "0"],
            cwd=Path(settings.BASE_DIR),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for(lambda: (tmp_path / "url").exists(), timeout=30)
        base = (tmp_path / "url").read_text().strip()

        def up() -> bool:
            try:
                requests.get(f"{base}/_config/checkout/pay/none", timeout=2)
            except requests.ConnectionError:
                return False
            return True

        wait_for(up, timeout=30)
        return process, Emulator(base)

    def stop(process: subprocess.Popen[bytes]) -> None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)

    process, emulator = start()
    try:
        price = emulator.monthly_price("Pro", 2_000)
        session = subscription_checkout(emulator, price, customer_email="restart@example.com")
        assert emulator.pay(session["url"]).status_code == 303
        sub_id = get(emulator, f"/v1/checkout/sessions/{session['id']}")["subscription"]
        emulator.advance_subscription(sub_id, "failed")
        before = get(emulator, f"/v1/subscriptions/{sub_id}")
    finally:
        stop(process)
    process, emulator = start()
    try:
        assert get(emulator, f"/v1/subscriptions/{sub_id}") == before
        assert before["status"] == "past_due"
        assert get(emulator, "/v1/invoices", subscription=sub_id)["total_count"] == 2
        assert emulator.advance_subscription(sub_id)["subscription"]["status"] == "active"
    finally:
        stop(process)
