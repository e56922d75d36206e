"""The ledger invariants, checked at run time (docs/billing.md, "Invariants checked at run time").

For every account:

- ``balance_micros`` equals the sum of its ledger lines, and the last line's
  ``balance_after_micros`` (last by ``created_at``, ``id``; 0 when it has none);
- ``held_micros`` equals the sum of its open holds;
- no open hold belongs to a session that has ended.

``find_violations`` checks them in two queries over all accounts, each one statement,
so each rule is judged on one consistent snapshot even while money moves (every
service changes an account and its lines or holds in one transaction). Nothing here
repairs anything: ``check_ledger`` logs each violation as an error and stores what it
found in ``LedgerViolation`` for the admin. Run it with ``manage.py check_ledger``;
the light worker runs it every ``BILLING_LEDGER_CHECK_INTERVAL_SECONDS``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis
from django.conf import settings
from django.db import connection, transaction
from django.db.models import BigIntegerField, F, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from billing.models import Account, Hold, LedgerLine, LedgerViolation
from billing.money import format_usd
from hubsite.jobs import light_actor
from training.models import TrainingSession

logger = logging.getLogger(__name__)

Rule = LedgerViolation.Rule


@dataclass(frozen=True)
class Violation:
    account_id: int
    account_label: str
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.account_label}: {self.detail} (rule: {Rule(self.rule).label})"


def find_violations() -> list[Violation]:
    """Every broken invariant, accounts in id order."""
    violations = [*_account_total_violations(), *_open_holds_on_ended_sessions()]
    return sorted(violations, key=lambda v: (v.account_id, v.rule))


def check_ledger() -> list[Violation]:
    """Find the violations, log each one as an error, store them for the admin."""
    violations = find_violations()
    for violation in violations:
        logger.error("ledger invariant broken: %s", violation)
    record(violations)
    return violations


def record(violations: list[Violation]) -> None:
    """Replace the stored violations with ``violations`` (what the last check found)."""
    found_at = timezone.now()
    with transaction.atomic():
        # Two checks at once (the command beside the worker) must not interleave their
        # delete and insert; readers (the admin) are not blocked.
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {LedgerViolation._meta.db_table} IN SHARE ROW EXCLUSIVE MODE")
        LedgerViolation.objects.all().delete()
        LedgerViolation.objects.bulk_create(
            LedgerViolation(account_id=v.account_id, rule=v.rule, detail=v.detail[:500], found_at=found_at)
            for v in violations
        )


@light_actor(max_retries=0)
def check_ledger_invariants() -> None:
    """The light worker's periodic check (see ``maybe_schedule_ledger_check``)."""
    violations = check_ledger()
    if violations:
        logger.critical("ledger check: %d invariant violations; see the admin's ledger violations", len(violations))
    else:
        logger.info("ledger check: every account consistent")


def maybe_schedule_ledger_check() -> bool:
    """Enqueue ``check_ledger_invariants`` at most once per
    ``BILLING_LEDGER_CHECK_INTERVAL_SECONDS`` across every worker (a Redis key with
    that TTL decides; 0 turns the check off). True when it enqueued."""
    interval: int = settings.BILLING_LEDGER_CHECK_INTERVAL_SECONDS
    if interval <= 0:
        return False
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5)
    if client.set(f"{settings.DRAMATIQ_NAMESPACE}:ledger-check-due", "1", nx=True, ex=interval):
        check_ledger_invariants.send()
        return True
    return False


# --- the rules -----------------------------------------------------------------------


def _account_total_violations() -> list[Violation]:
    """Balance vs lines and held vs open holds, for every account in one query."""
    lines = LedgerLine.objects.filter(account=OuterRef("pk")).order_by()
    open_holds = Hold.objects.filter(account=OuterRef("pk"), status=Hold.Status.OPEN).order_by()
    lines_total = lines.values("account").annotate(total=Sum("amount_micros")).values("total")
    last_line = lines.order_by("-created_at", "-id")[:1]
    holds_total = open_holds.values("account").annotate(total=Sum("amount_micros")).values("total")
    zero = Value(0, output_field=BigIntegerField())
    accounts = (
        Account.objects.annotate(
            lines_total=Coalesce(Subquery(lines_total), zero),
            last_balance_after=Coalesce(Subquery(last_line.values("balance_after_micros")), zero),
            last_line_id=Subquery(last_line.values("id")),
            holds_total=Coalesce(Subquery(holds_total), zero),
        )
        .filter(
            ~Q(balance_micros=F("lines_total"))
            | ~Q(balance_micros=F("last_balance_after"))
            | ~Q(held_micros=F("holds_total"))
        )
        .order_by("pk")
        .values_list(
            "pk",
            "user__email",
            "balance_micros",
            "held_micros",
            "lines_total",
            "last_balance_after",
            "last_line_id",
            "holds_total",
        )
    )
    violations = []
    for account_id, email, balance, held, total, last_after, last_id, holds in accounts:
        label = _label(account_id, email)
        if balance != total:
            violations.append(
                Violation(
                    account_id,
                    label,
                    Rule.BALANCE_IS_SUM_OF_LINES,
                    f"balance {_usd(balance)} but its ledger lines sum to {_usd(total)} "
                    f"(off by {_usd(balance - total)})",
                )
            )
        if balance != last_after:
            last = "it has no ledger line" if last_id is None else f"its last ledger line (#{last_id}) says"
            violations.append(
                Violation(
                    account_id,
                    label,
                    Rule.BALANCE_IS_LAST_LINE,
                    f"balance {_usd(balance)} but {last} {_usd(last_after)}",
                )
            )
        if held != holds:
            violations.append(
                Violation(
                    account_id,
                    label,
                    Rule.HELD_IS_OPEN_HOLDS,
                    f"held {_usd(held)} but its open holds sum to {_usd(holds)} (off by {_usd(held - holds)})",
                )
            )
    return violations


def _open_holds_on_ended_sessions() -> list[Violation]:
    """Open holds whose session is no longer active (one query, one row per hold)."""
    holds = (
        Hold.objects.filter(status=Hold.Status.OPEN)
        .exclude(session__status__in=TrainingSession.ACTIVE_STATUSES)
        .order_by("account_id", "pk")
        .values_list(
            "account_id", "account__user__email", "pk", "amount_micros", "session_id", "epoch", "session__status"
        )
    )
    return [
        Violation(
            account_id,
            _label(account_id, email),
            Rule.NO_OPEN_HOLD_ON_ENDED_SESSION,
            f"hold #{hold_id} of {_usd(amount)} for session {session_id} epoch {epoch} is open, "
            f"but the session is {status}",
        )
        for account_id, email, hold_id, amount, session_id, epoch, status in holds
    ]


def _label(account_id: int, email: str) -> str:
    return f"account {account_id} ({email})"


def _usd(micros: int) -> str:
    return format_usd(micros, 6)
