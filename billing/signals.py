"""Billing's signals: how billing tells other apps about money without calling them.

- ``balance_credited`` is sent after the commit of a top-up or a positive adjustment,
  with ``account_id`` and ``user_id``: the training engine listens to it to resume a
  paused session whose owner asked for "resume after a top-up".
- ``pay_now_paid`` is sent when Stripe confirms a Pay Now (a Timed session paid by
  card), inside the transaction that credits the payment and under the lock on its
  checkout row, in a savepoint of its own; with ``checkout_id``, ``user``, ``model``,
  ``instance_type``, ``time_budget_seconds`` and ``target_epochs``. Exactly one
  receiver (``training.payments``) starts the Timed session (its prepayment comes
  from the credited balance) and returns it, or raises ``StartRefusedAfterPayment``:
  the savepoint rolls back the start only, and the payment stays on the balance.
- ``pay_now_taken_back`` is sent when a refund or dispute takes back a Pay Now whose
  session started, inside the webhook's transaction after the checkout row's lock and
  before the account's; with ``checkout_id`` and ``session_id``. Training's receiver
  stops the session if it still runs; its end then settles the money.
"""

from __future__ import annotations

from typing import Any

from django.dispatch import Signal

from billing.models import Account

balance_credited = Signal()
pay_now_paid = Signal()
pay_now_taken_back = Signal()


class StartRefusedAfterPayment(Exception):
    """A paid Pay Now's session cannot start; the message says why, in the user's words."""


def create_account(sender: type[Any], instance: Any, created: bool, raw: bool = False, **kwargs: Any) -> None:
    """Every new user gets an account (balance zero, one concurrent session)."""
    if created and not raw:
        Account.objects.get_or_create(user_id=instance.pk)
