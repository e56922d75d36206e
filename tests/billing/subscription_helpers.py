"""Plans, a customer, and Stripe's subscription, invoice and event shapes, for the subscription tests."""

from __future__ import annotations

import json
import time
from typing import Any

from django.conf import settings

from billing.models import Account, Plan
from hubsite.models import User

PRO_PRICE = "price_test_pro"


def free_plan() -> Plan:
    plan, _ = Plan.objects.get_or_create(
        slug="free",
        defaults={"name": "Free", "monthly_price_cents": 0, "is_default": True, "concurrent_sessions": 0},
    )
    return plan


def pro_plan(stripe_price_id: str = PRO_PRICE) -> Plan:
    """Pro (seeded by the migration, or made here after a flush), with a known Stripe price."""
    free_plan()
    plan, _ = Plan.objects.get_or_create(
        slug="pro",
        defaults={
            "name": "Pro",
            "monthly_price_cents": 2_000,
            "allows_cloud_training": True,
            "concurrent_sessions": 3,
            "display_order": 1,
        },
    )
    Plan.objects.filter(pk=plan.pk).update(stripe_price_id=stripe_price_id)
    plan.refresh_from_db()
    return plan


def customer_of(user: User, customer_id: str = "cus_test_1") -> Account:
    Account.objects.filter(user=user).update(stripe_customer_id=customer_id)
    return Account.objects.get(user=user)


def subscription_object(account: Account, **changes: Any) -> dict[str, Any]:
    """Stripe's subscription (the pinned API version: the period is on the item)."""
    now = int(time.time())
    obj: dict[str, Any] = {
        "id": "sub_test_1",
        "object": "subscription",
        "customer": account.stripe_customer_id,
        "status": "active",
        "cancel_at_period_end": False,
        "canceled_at": None,
        "ended_at": None,
        "trial_end": None,
        "created": now,
        "metadata": {"hubsite_account": str(account.pk), "hubsite_plan": "pro", "hubsite_checkout": "1"},
        "items": {
            "object": "list",
            "data": [
                {
                    "id": "si_test_1",
                    "price": {"id": PRO_PRICE, "object": "price"},
                    "current_period_start": now,
                    "current_period_end": now + 30 * 86_400,
                }
            ],
        },
    }
    obj.update(changes)
    return obj


def invoice_object(account: Account, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    obj: dict[str, Any] = {
        "id": "in_test_1",
        "object": "invoice",
        "customer": account.stripe_customer_id,
        "status": "paid",
        "amount_due": 2000,
        "amount_paid": 2000,
        "currency": "usd",
        "hosted_invoice_url": "https://invoice.stripe.com/i/test_1",
        "period_start": now,
        "period_end": now + 30 * 86_400,
        "created": now,
        "status_transitions": {"paid_at": now},
        "parent": {"type": "subscription_details", "subscription_details": {"subscription": "sub_test_1"}},
    }
    obj.update(changes)
    return obj


def event(event_type: str, obj: dict[str, Any], *, event_id: str, created: int, api_version: str = "") -> bytes:
    """A webhook payload whose ``created`` the test chooses (the order of events)."""
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": event_type,
            "api_version": api_version or settings.STRIPE_API_VERSION,
            "created": created,
            "data": {"object": obj},
        }
    ).encode()
