"""The ledger invariants checked at run time (billing/invariants.py): each rule is
broken by writing the database behind the services' back, and the check must say so."""

from __future__ import annotations

import logging
from io import StringIO

import pytest
import redis
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db.models import F
from django.test import override_settings
from pytest_django import DjangoAssertNumQueries

from billing import services
from billing.invariants import Violation, check_ledger, find_violations, maybe_schedule_ledger_check
from billing.models import Account, Hold, LedgerLine, LedgerViolation
from hubsite.models import User
from tests.factories import PASSWORD, WORKER, fund, make_session
from tests.helpers import WorkerFactory, wait_for
from training.models import TrainingSession

Rule = LedgerViolation.Rule
Status = TrainingSession.Status


@pytest.fixture
def busy_account(user: User) -> Account:
    """An account with every kind of history: top-ups, a charged epoch, an open hold on
    a running session, a released hold, an adjustment and a write-off."""
    account = fund(user, 20_000_000)
    running = make_session(user)
    assert services.hold_epoch(running.pk, 1, worker_id=WORKER) is not None
    services.capture_epoch(running.pk, 1, 2_000, worker_id=WORKER)
    assert services.hold_epoch(running.pk, 2, worker_id=WORKER) is not None  # stays open: the session is training
    ended = make_session(user)
    assert services.hold_epoch(ended.pk, 1, worker_id=WORKER) is not None
    TrainingSession.objects.filter(pk=ended.pk).update(status=Status.STOPPED)
    services.release_holds(ended.pk)
    services.adjust(account.pk, -1_000_000, staff_user=None, reason="goodwill reversal")
    fund(user, 5_000_000)
    account.refresh_from_db()
    assert account.held_micros > 0
    return account


def rules_of(violations: list[Violation], account: Account) -> set[str]:
    return {v.rule for v in violations if v.account_id == account.pk}


def test_a_consistent_ledger_has_no_violation(busy_account: Account, outsider: User) -> None:
    fund(outsider, 1_000_000)  # and an account with no ledger line at all: the demo's staff user
    User.objects.create_user("empty@example.com", PASSWORD)
    assert find_violations() == []


def test_a_balance_changed_behind_the_ledgers_back_breaks_both_balance_rules(busy_account: Account) -> None:
    Account.objects.filter(pk=busy_account.pk).update(balance_micros=F("balance_micros") + 7)
    violations = find_violations()
    assert rules_of(violations, busy_account) == {Rule.BALANCE_IS_SUM_OF_LINES, Rule.BALANCE_IS_LAST_LINE}
    by_rule = {v.rule: v.detail for v in violations}
    assert "off by US$0.000007" in by_rule[Rule.BALANCE_IS_SUM_OF_LINES]
    assert "its last ledger line" in by_rule[Rule.BALANCE_IS_LAST_LINE]


def test_a_line_amount_changed_afterwards_breaks_the_sum_rule(busy_account: Account) -> None:
    first = LedgerLine.objects.filter(account=busy_account).order_by("created_at", "id").first()
    assert first is not None
    LedgerLine.objects.filter(pk=first.pk).update(amount_micros=F("amount_micros") - 5)
    violations = find_violations()
    assert rules_of(violations, busy_account) == {Rule.BALANCE_IS_SUM_OF_LINES}
    assert "off by US$0.000005" in violations[0].detail


def test_a_last_line_that_disagrees_with_the_balance_breaks_the_last_line_rule(busy_account: Account) -> None:
    last = LedgerLine.objects.filter(account=busy_account).order_by("-created_at", "-id").first()
    assert last is not None
    LedgerLine.objects.filter(pk=last.pk).update(balance_after_micros=F("balance_after_micros") + 1)
    violations = find_violations()
    assert rules_of(violations, busy_account) == {Rule.BALANCE_IS_LAST_LINE}
    assert f"#{last.pk}" in violations[0].detail


def test_the_last_line_is_the_newest_by_time_not_by_id(busy_account: Account) -> None:
    """Lines are ordered by (created_at, id), as the account page shows them."""
    last = LedgerLine.objects.filter(account=busy_account).order_by("-created_at", "-id").first()
    first = LedgerLine.objects.filter(account=busy_account).order_by("created_at", "id").first()
    assert last is not None
    assert first is not None
    LedgerLine.objects.filter(pk=last.pk).update(created_at=first.created_at)
    violations = find_violations()
    assert rules_of(violations, busy_account) == {Rule.BALANCE_IS_LAST_LINE}


def test_a_balance_without_any_ledger_line_is_a_violation(outsider: User) -> None:
    account = services.account_for(outsider)
    Account.objects.filter(pk=account.pk).update(balance_micros=3_000_000)
    violations = find_violations()
    assert rules_of(violations, account) == {Rule.BALANCE_IS_SUM_OF_LINES, Rule.BALANCE_IS_LAST_LINE}
    assert any("it has no ledger line" in v.detail for v in violations)
    assert all("outsider@example.com" in str(v) for v in violations)


def test_held_that_is_not_the_sum_of_open_holds_is_a_violation(busy_account: Account) -> None:
    Account.objects.filter(pk=busy_account.pk).update(held_micros=F("held_micros") + 3)
    violations = find_violations()
    assert rules_of(violations, busy_account) == {Rule.HELD_IS_OPEN_HOLDS}
    assert "off by US$0.000003" in violations[0].detail


def test_a_hold_reopened_behind_the_ledgers_back_breaks_the_held_rule(busy_account: Account) -> None:
    Hold.objects.filter(account=busy_account, status=Hold.Status.RELEASED).update(status=Hold.Status.OPEN)
    assert Rule.HELD_IS_OPEN_HOLDS in rules_of(find_violations(), busy_account)


@pytest.mark.parametrize("final", TrainingSession.FINAL_STATUSES)
def test_an_open_hold_on_an_ended_session_is_a_violation(funded_user: User, final: str) -> None:
    session = make_session(funded_user)
    assert services.hold_epoch(session.pk, 1, worker_id=WORKER) is not None
    hold = Hold.objects.get(session=session)
    TrainingSession.objects.filter(pk=session.pk).update(status=final)  # ended without settling
    violations = find_violations()
    assert [v.rule for v in violations] == [Rule.NO_OPEN_HOLD_ON_ENDED_SESSION]
    assert f"hold #{hold.pk}" in violations[0].detail
    assert f"session {session.pk} epoch 1" in violations[0].detail
    assert f"the session is {final}" in violations[0].detail


@pytest.mark.parametrize("active", TrainingSession.ACTIVE_STATUSES)
def test_an_open_hold_on_an_active_session_is_fine(funded_user: User, active: str) -> None:
    session = make_session(funded_user)
    assert services.hold_epoch(session.pk, 1, worker_id=WORKER) is not None
    TrainingSession.objects.filter(pk=session.pk).update(status=active)  # e.g. requeued while settling
    assert find_violations() == []


def test_the_check_is_a_fixed_number_of_queries_however_many_accounts(
    django_assert_num_queries: DjangoAssertNumQueries, busy_account: Account
) -> None:
    for n in range(5):
        other = User.objects.create_user(f"user{n}@example.com", PASSWORD)
        fund(other, 1_000_000)
        Account.objects.filter(user=other).update(balance_micros=F("balance_micros") + 1)
    with django_assert_num_queries(2):
        violations = find_violations()
    assert len(violations) == 10


def test_check_ledger_logs_each_violation_as_an_error_and_stores_them(
    busy_account: Account, caplog: pytest.LogCaptureFixture
) -> None:
    Account.objects.filter(pk=busy_account.pk).update(held_micros=F("held_micros") + 1)
    with caplog.at_level(logging.ERROR, logger="billing.invariants"):
        check_ledger()
    assert [r.levelno for r in caplog.records] == [logging.ERROR]
    assert "owner@example.com" in caplog.records[0].getMessage()
    stored = LedgerViolation.objects.get()
    assert (stored.account_id, stored.rule) == (busy_account.pk, Rule.HELD_IS_OPEN_HOLDS)

    Account.objects.filter(pk=busy_account.pk).update(held_micros=F("held_micros") - 1)
    check_ledger()
    assert not LedgerViolation.objects.exists()  # each check replaces what the last one found


def test_the_command_prints_each_violation_and_exits_1(busy_account: Account) -> None:
    Account.objects.filter(pk=busy_account.pk).update(balance_micros=F("balance_micros") + 1)
    out = StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("check_ledger", stdout=out)
    assert raised.value.returncode == 1
    assert "2 ledger invariant violations" in str(raised.value)
    printed = out.getvalue().splitlines()
    assert len(printed) == 2
    assert all(line.startswith(f"account {busy_account.pk} (owner@example.com): balance") for line in printed)
    assert LedgerViolation.objects.filter(account=busy_account).count() == 2


def test_the_command_exits_0_when_every_account_agrees(busy_account: Account) -> None:
    out = StringIO()
    call_command("check_ledger", stdout=out)  # no CommandError: exit status 0
    assert "agree" in out.getvalue()


def test_the_periodic_check_is_enqueued_at_most_once_per_interval(redis_client: redis.Redis) -> None:
    due_key = f"{settings.DRAMATIQ_NAMESPACE}:ledger-check-due"
    redis_client.delete(due_key)
    with override_settings(BILLING_LEDGER_CHECK_INTERVAL_SECONDS=600):
        assert maybe_schedule_ledger_check()
        assert not maybe_schedule_ledger_check()
    assert 0 < redis_client.ttl(due_key) <= 600
    redis_client.delete(due_key)
    with override_settings(BILLING_LEDGER_CHECK_INTERVAL_SECONDS=0):
        assert not maybe_schedule_ledger_check()  # 0 turns it off


def test_the_light_worker_runs_the_check_periodically(
    start_worker: WorkerFactory, redis_client: redis.Redis, user: User
) -> None:
    account = fund(user, 1_000_000)
    Account.objects.filter(pk=account.pk).update(balance_micros=F("balance_micros") + 1)
    start_worker(
        "default",
        extra_env={"BILLING_LEDGER_CHECK_INTERVAL_SECONDS": "1", "WORKER_PRESENCE_INTERVAL_SECONDS": "1"},
    )
    wait_for(lambda: LedgerViolation.objects.filter(account=account).count() == 2)

    Account.objects.filter(pk=account.pk).update(balance_micros=F("balance_micros") - 1)
    wait_for(lambda: not LedgerViolation.objects.exists())  # a later run found it repaired
