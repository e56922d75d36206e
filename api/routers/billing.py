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
from billing.services import account_for

router = Router(tags=["Billing"], auth=BILLING)


class BalanceOut(Schema):
    balance_micros: int
    held_micros: int
    available_micros: int
    balance: str
    held: str
    available: str


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


@router.get("/ledger", response=list[LedgerLineOut], summary="The account's ledger lines, newest first")
@paginate(Pages)
def ledger(request: HttpRequest) -> QuerySet[LedgerLine]:
    account = account_for(owner_of(request))
    return LedgerLine.objects.filter(account=account).select_related("session").order_by("-created_at", "-id")
