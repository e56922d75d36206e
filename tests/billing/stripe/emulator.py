"""The local Stripe emulator for tests, signed webhook payloads, and paying on the stand-in page.

``scripts/test`` starts one emulator for the whole run (STRIPE_API_BASE); a plain
``pytest`` starts its own (the ``stripe_emulator*`` fixtures in tests/conftest.py).
Tests always use the emulator, never a Stripe account named in the environment (the
one opt-in test reads STRIPE_TEST_SECRET_KEY).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

import requests
from django.conf import settings

WEBHOOK_SECRET = "whsec_tests_0123456789abcdef"
EVENTS = (
    "checkout.session.completed",
    "checkout.session.expired",
    "charge.refunded",
    "charge.dispute.created",
    "charge.dispute.closed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.paid",
    "invoice.payment_failed",
)
DEAD_URL = "http://127.0.0.1:9/nowhere/"  # the discard port: deliveries there are lost


@dataclass
class Emulator:
    base: str

    def register_webhook(self, url: str, secret: str = WEBHOOK_SECRET) -> None:
        data = [("url", url), ("secret", secret), *[("events[]", name) for name in EVENTS]]
        requests.post(f"{self.base}/_config/webhooks/hubsite", data=data, timeout=10).raise_for_status()

    def pay(self, url: str, card: str = "4242424242424242") -> requests.Response:
        """Submit the stand-in payment page, as a person would."""
        return requests.post(
            url, data={"card_number": card, "expiry": "12/34", "cvc": "123"}, allow_redirects=False, timeout=10
        )

    def events(self, event_type: str) -> list[dict[str, Any]]:
        response = requests.get(
            f"{self.base}/v1/events",
            params={"type": event_type, "limit": "100"},
            headers={"Authorization": f"Bearer {settings.STRIPE_SECRET_KEY}"},
            timeout=10,
        )
        response.raise_for_status()
        data: list[dict[str, Any]] = response.json()["data"]
        return data

    def redeliver(self, event_id: str, times: int) -> list[int]:
        response = requests.post(f"{self.base}/_config/events/{event_id}/deliver", data={"times": times}, timeout=60)
        response.raise_for_status()
        statuses: list[int] = response.json()["statuses"]
        return statuses

    def refund(self, session_id: str, amount_cents: int | None = None) -> dict[str, Any]:
        data = {} if amount_cents is None else {"amount": amount_cents}
        response = requests.post(f"{self.base}/_config/checkout/sessions/{session_id}/refund", data=data, timeout=10)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def dispute(self, session_id: str, amount_cents: int | None = None, status: str | None = None) -> dict[str, Any]:
        """The customer's bank disputes the session's charge (``charge.dispute.created``)."""
        data = {key: value for key, value in (("amount", amount_cents), ("status", status)) if value is not None}
        response = requests.post(f"{self.base}/_config/checkout/sessions/{session_id}/dispute", data=data, timeout=10)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def close_dispute(self, dispute_id: str, status: str) -> dict[str, Any]:
        """The dispute's outcome: ``won``, ``lost`` or ``warning_closed`` (``charge.dispute.closed``)."""
        response = requests.post(
            f"{self.base}/_config/disputes/{dispute_id}/close", data={"status": status}, timeout=10
        )
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    # -- the API with the tests' key, and the subscription controls -------------------

    def api(
        self, method: str, path: str, data: dict[str, Any] | None = None, params: dict[str, Any] | None = None
    ) -> requests.Response:
        """Call the emulator's Stripe API (``/v1/...``) with the tests' secret key and the
        site's pinned ``Stripe-Version``, as the ``stripe`` library would."""
        return requests.request(
            method,
            f"{self.base}{path}",
            data=data,
            params=params,
            headers={
                "Authorization": f"Bearer {settings.STRIPE_SECRET_KEY}",
                "Stripe-Version": settings.STRIPE_API_VERSION,
            },
            timeout=10,
        )

    def monthly_price(self, name: str, unit_amount_cents: int, currency: str = "usd") -> dict[str, Any]:
        """A product and its monthly price (the site creates its own; tests need one quickly)."""
        product = self.api("POST", "/v1/products", {"name": name})
        product.raise_for_status()
        price = self.api(
            "POST",
            "/v1/prices",
            {
                "product": product.json()["id"],
                "unit_amount": unit_amount_cents,
                "currency": currency,
                "recurring[interval]": "month",
            },
        )
        price.raise_for_status()
        result: dict[str, Any] = price.json()
        return result

    def advance_subscription(self, subscription_id: str, outcome: str = "paid") -> dict[str, Any]:
        """The test clock: the subscription's period ends now; its renewal is ``paid`` or
        ``failed``. Answers ``{"events": [ids in order], "subscription": {...}}``."""
        response = requests.post(
            f"{self.base}/_config/subscriptions/{subscription_id}/advance", data={"outcome": outcome}, timeout=10
        )
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def portal_action(
        self, portal_url: str, subscription_id: str, action: str, card: str = "4242424242424242"
    ) -> requests.Response:
        """Press a button on the customer portal stand-in: ``cancel``, ``keep`` or ``pay``
        (the overdue invoice, with ``card``), as a person would."""
        data = {"card_number": card, "expiry": "12/34", "cvc": "123"} if action == "pay" else {}
        return requests.post(
            f"{portal_url}/subscriptions/{subscription_id}/{action}", data=data, allow_redirects=False, timeout=10
        )


def signature_header(payload: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """Stripe's ``Stripe-Signature``: ``t=<unix time>,v1=<HMAC-SHA256 of "t.payload">``."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), b"%d.%s" % (timestamp, payload), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def event_payload(
    event_type: str, obj: dict[str, Any], *, event_id: str = "evt_test_1", api_version: str | None = None
) -> bytes:
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": event_type,
            "api_version": api_version or settings.STRIPE_API_VERSION,
            "created": int(time.time()),
            "data": {"object": obj},
        }
    ).encode()
