"""Plans for the tests of plans in training: the seeded Free and Pro (made again where a
transactional test flushed them), and ways to put a user on one."""

from __future__ import annotations

import importlib
from datetime import datetime, timedelta

from django.apps import apps as django_apps
from django.utils import timezone

from billing.models import Account, Plan, PlanGrant, Subscription
from billing.services import account_for
from hubsite.models import User


def ensure_plans() -> None:
    """Free (the default) and Pro as billing/0009_plans seeds them."""
    seed = importlib.import_module("billing.migrations.0009_plans").seed_plans
    seed(django_apps, None)


def plan(slug: str) -> Plan:
    ensure_plans()
    return Plan.objects.get(slug=slug)


def grant(user: User, slug: str = "pro") -> Account:
    """Put ``user`` on a plan by a staff grant (no staff user: as seed_demo does)."""
    account = account_for(user)
    PlanGrant.objects.create(account=account, plan=plan(slug), reason="test")
    return account


def subscribe(
    user: User, slug: str = "pro", *, status: str = Subscription.Status.ACTIVE, past_due_since: datetime | None = None
) -> Subscription:
    """A subscription row as the webhooks would leave it."""
    return Subscription.objects.create(
        account=account_for(user),
        plan=plan(slug),
        stripe_subscription_id=f"sub_test_{user.pk}_{status}",
        status=status,
        current_period_end=timezone.now() + timedelta(days=20),
        past_due_since=past_due_since,
    )
