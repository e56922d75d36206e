from __future__ import annotations

from django.http import HttpRequest


def account_balance(request: HttpRequest) -> dict[str, object]:
    """The signed-in user's balance for the header, in whole micro-dollars.

    Billing has no ledger yet, so every account reads US$0.00."""
    if not request.user.is_authenticated:
        return {}
    return {"header_balance_display": "US$0.00"}
