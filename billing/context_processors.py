from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

from billing.models import Account
from billing.money import format_usd


def account_balance(request: HttpRequest) -> dict[str, object]:
    """The signed-in user's balance for the header: one indexed query, no writes."""
    if not request.user.is_authenticated:
        return {}
    balance = Account.objects.filter(user_id=request.user.pk).values_list("balance_micros", flat=True).first()
    return {"header_balance_display": format_usd(balance or 0)}


def plans(request: HttpRequest) -> dict[str, object]:
    """Whether plans apply on this site (the navigation links the Plans page only then)."""
    return {"plans_enabled": settings.PLANS_ENABLED}
