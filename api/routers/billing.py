"""Balance and ledger, read with the ``billing`` scope. The numbers are the Billing
page's: the same account (``billing.services.account_for``), the same lines in the
same order, amounts in integer micro-dollars with the page's formatting beside them."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet
from django.http import HttpRequest
from ninja import Router, Schema
from ninja.pagination import paginate

from api.auth import BILLING, owner_of
from api.pagination import Pages
from billing.models import LedgerLine
from billing.money import format_usd
from billing.plans.standing import standing_of
from billing.services import account_for

router = Router(tags=["Billing"], auth=BILLING)


class BalanceOut(Schema):
    balance_micros: int
    held_micros: int
    available_micros: int
    balance: str
    held: str
    available: str


class PlanOut(Schema):
    """The plan in force, as the Train step shows it (null ``plan`` when plans are off)."""

    plan: str | None  # the plan's name
    source: str  # "off", "grant", "subscription" or "default"
    allows_cloud_training: bool
    concurrent_sessions: int | None
    storage_quota_bytes: int | None  # null: unlimited
    status: str  # the subscription's Stripe status ("" without one)
    current_period_end: datetime | None
    cancel_at_period_end: bool
    grace_ends_at: datetime | None  # past_due: when Cloud Training stops


class LedgerLineOut(Schema):
    id: int
    kind: str
    description: str
    amount_micros: int
    balance_after_micros: int
    session_id: int | None
    model_id: int | None
    epoch: int | None
    reference: str
    reason: str
    created_at: datetime

    @staticmethod
    def resolve_description(line: LedgerLine) -> str:
        return line.get_kind_display()

    @staticmethod
    def resolve_model_id(line: LedgerLine) -> int | None:
        return line.session.model_id if line.session is not None else None


@router.get("/balance", response=BalanceOut, summary="Balance, held for running epochs, and available")
def balance(request: HttpRequest) -> BalanceOut:
    account = account_for(owner_of(request))
    return BalanceOut(
        balance_micros=account.balance_micros,
        held_micros=account.held_micros,
        available_micros=account.available_micros,
        balance=format_usd(account.balance_micros),
        held=format_usd(account.held_micros),
        available=format_usd(account.available_micros),
    )


@router.get("/plan", response=PlanOut, summary="The plan in force: which, where from, what it allows")
def plan(request: HttpRequest) -> PlanOut:
    standing = standing_of(account_for(owner_of(request)))
    subscription = standing.subscription
    in_force = standing.plan
    return PlanOut(
        plan=in_force.name if in_force else None,
        source=standing.source,
        allows_cloud_training=in_force is None or in_force.allows_cloud_training,
        concurrent_sessions=in_force.concurrent_sessions if in_force else None,
        storage_quota_bytes=in_force.storage_quota_bytes if in_force else None,
        status=subscription.status if subscription else "",
        current_period_end=subscription.current_period_end if subscription else None,
        cancel_at_period_end=bool(subscription and subscription.cancel_at_period_end),
        grace_ends_at=standing.grace_ends_at,
    )


@router.get("/ledger", response=list[LedgerLineOut], summary="The account's ledger lines, newest first")
@paginate(Pages)
def ledger(request: HttpRequest) -> QuerySet[LedgerLine]:
    account = account_for(owner_of(request))
    return LedgerLine.objects.filter(account=account).select_related("session").order_by("-created_at", "-id")
