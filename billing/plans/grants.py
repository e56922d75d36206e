"""Plans given by hand by staff: each grant (or its end) is a new ``PlanGrant`` row that
names the staff user and the reason, so the history is the audit (``standing`` reads
the newest row of an account)."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from billing.models import Account, Plan, PlanGrant
from hubsite.models import User


class GrantRefused(ValueError):
    """The grant makes no sense (no reason, an end in the past); nothing was written."""


def grant_plan(
    account: Account, plan: Plan | None, until: datetime | None, reason: str, staff_user: User | None
) -> PlanGrant:
    """Append a grant of ``plan`` to ``account`` until ``until`` (None: until revoked);
    ``plan=None`` ends the grant in force. ``staff_user`` None only for commands."""
    reason = reason.strip()
    if not reason:
        raise GrantRefused("Say why: the reason is part of the audit.")
    if until is not None and until <= timezone.now():
        raise GrantRefused("The end of the grant must be in the future.")
    if plan is None and until is not None:
        raise GrantRefused("Ending a grant takes no end date.")
    return PlanGrant.objects.create(account=account, plan=plan, until=until, reason=reason[:500], granted_by=staff_user)
