"""Billing's signals.

``balance_credited`` is sent after the commit of a top-up or a positive adjustment,
with ``account_id`` and ``user_id``: the training engine listens to it to resume a
paused session whose owner asked for "resume after a top-up".
"""

from __future__ import annotations

from typing import Any

from django.dispatch import Signal

from billing.models import Account

balance_credited = Signal()


def create_account(sender: type[Any], instance: Any, created: bool, raw: bool = False, **kwargs: Any) -> None:
    """Every new user gets an account (balance zero, one concurrent session)."""
    if created and not raw:
        Account.objects.get_or_create(user_id=instance.pk)
