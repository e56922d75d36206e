"""Which plan a user is on now, and what it allows (docs/plans.md).

The plan in force, first match wins:

1. ``PLANS_ENABLED`` off: no plan, nothing is limited by plans (a lab's own site).
2. A staff grant (the account's newest ``PlanGrant`` with a plan, not expired).
3. The newest subscription that is trialing or active (a cancellation takes effect at
   the period's end: Stripe keeps it active until then), or past_due (within
   ``PLANS_PAST_DUE_GRACE_DAYS`` the plan holds; after it, Cloud Training is refused
   with the reason, and the rest of the plan still applies until Stripe ends it).
4. The default plan (Free).

Only reads: subscriptions change in ``billing.stripe.subscriptions`` (verified webhooks
and reconciliation), grants in the admin.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q, prefetch_related_objects
from django.urls import reverse
from django.utils import timezone

from billing.models import Account, Plan, PlanGrant, Subscription

LIVE_STATUSES = (Subscription.Status.TRIALING, Subscription.Status.ACTIVE, Subscription.Status.PAST_DUE)


class PlanRefusal(Exception):
    """The plan does not allow this. ``message`` is for people; ``upgrade`` says whether
    a better plan (or paying the overdue invoice) would allow it."""

    def __init__(self, message: str, *, upgrade: bool = True, needed_plan: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.upgrade = upgrade
        self.needed_plan = needed_plan  # the cheapest plan that would allow it, "" if none

    @property
    def upgrade_url(self) -> str:
        return reverse("plans:index") if self.upgrade else ""


@dataclass(frozen=True)
class Standing:
    """The plan in force for an account and where it comes from."""

    plan: Plan | None  # None: plans are off, or no plan exists at all
    source: str  # "off", "grant", "subscription", "default"
    subscription: Subscription | None = None
    grant: PlanGrant | None = None
    grace_ends_at: datetime | None = None  # past_due: when Cloud Training stops

    @property
    def enforced(self) -> bool:
        return self.plan is not None

    @property
    def payment_overdue(self) -> bool:
        return self.subscription is not None and self.subscription.status == Subscription.Status.PAST_DUE

    @property
    def grace_over(self) -> bool:
        return self.grace_ends_at is not None and self.grace_ends_at <= timezone.now()


def plans_enabled() -> bool:
    return bool(settings.PLANS_ENABLED)


def default_plan() -> Plan | None:
    return Plan.objects.filter(is_default=True).first()


def offered_plans() -> list[Plan]:
    """The plans on the Plans page, in display order."""
    return list(Plan.objects.filter(is_public=True).prefetch_related("instance_types"))


def standing_of(account: Account, now: datetime | None = None) -> Standing:
    """The plan in force for ``account``, its instance types loaded once (the Train step
    checks each instance type against it)."""
    standing = _find_standing(account, now)
    if standing.plan is not None:
        prefetch_related_objects([standing.plan], "instance_types")
    return standing


def _find_standing(account: Account, now: datetime | None) -> Standing:
    if not plans_enabled():
        return Standing(plan=None, source="off")
    now = now or timezone.now()
    grant = PlanGrant.objects.filter(account=account).select_related("plan").first()
    if grant is not None and grant.plan is not None and (grant.until is None or grant.until > now):
        return Standing(plan=grant.plan, source="grant", grant=grant)
    subscription = (
        Subscription.objects.filter(account=account, status__in=LIVE_STATUSES)
        .filter(Q(current_period_end__isnull=True) | Q(current_period_end__gt=now) | ~Q(cancel_at_period_end=True))
        .select_related("plan")
        .first()
    )
    if subscription is not None:
        grace_ends_at = None
        if subscription.status == Subscription.Status.PAST_DUE:
            since = subscription.past_due_since or subscription.updated_at
            grace_ends_at = since + timedelta(days=settings.PLANS_PAST_DUE_GRACE_DAYS)
        return Standing(
            plan=subscription.plan, source="subscription", subscription=subscription, grace_ends_at=grace_ends_at
        )
    return Standing(plan=default_plan(), source="default")


def check_cloud_training(standing: Standing, instance_type_id: int, instance_type_name: str) -> None:
    """Raise PlanRefusal when the plan in force does not allow Cloud Training on this
    instance type (concurrent sessions are checked by training, under the account lock)."""
    plan = standing.plan
    if plan is None:
        return
    if not plan.allows_cloud_training:
        better = _cheapest_plan_allowing(instance_type_id)
        needed = better.name if better else "another plan"
        raise PlanRefusal(
            f"Cloud Training needs {needed}: your plan is {plan.name}.",
            upgrade=better is not None,
            needed_plan=better.name if better else "",
        )
    if standing.payment_overdue and standing.grace_over:
        raise PlanRefusal(
            f"Your {plan.name} payment is overdue, so Cloud Training is paused: pay the open invoice to continue.",
        )
    allowed = {instance_type.pk for instance_type in plan.instance_types.all()}
    if allowed and instance_type_id not in allowed:
        better = _cheapest_plan_allowing(instance_type_id)
        needed = f"needs {better.name}" if better else "is not in your plan"
        raise PlanRefusal(
            f"{instance_type_name} {needed}: your plan is {plan.name}.",
            upgrade=better is not None,
            needed_plan=better.name if better else "",
        )


def concurrent_session_limit(account: Account, standing: Standing) -> int:
    """Cloud Training sessions the account may run at once: the plan's, or (plans off) the account's own."""
    if standing.plan is None:
        return account.concurrent_session_limit
    return standing.plan.concurrent_sessions


def storage_quota_bytes(standing: Standing) -> int | None:
    """Bytes of datasets and weights the account may keep; None: unlimited."""
    return None if standing.plan is None else standing.plan.storage_quota_bytes


def _cheapest_plan_allowing(instance_type_id: int) -> Plan | None:
    for plan in Plan.objects.filter(is_public=True, allows_cloud_training=True).prefetch_related("instance_types"):
        allowed = {instance_type.pk for instance_type in plan.instance_types.all()}
        if not allowed or instance_type_id in allowed:
            return plan
    return None
