"""Many writers on one account at once: real threads, each on its own PostgreSQL
connection, committing for real (transactional_db)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pytest

from billing import services
from billing.models import Account, Hold, LedgerLine
from hubsite.models import User
from tests.billing.helpers import assert_ledger_consistent, run_at_once
from tests.factories import WORKER, fund, make_session

Kind = LedgerLine.Kind


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_charges_and_top_ups_leave_the_exact_balance(user: User) -> None:
    account = fund(user, 1_000_000, reference="opening")
    session = make_session(user)  # US$3.60/h: 1 ms costs 1 micro-dollar
    jobs: list[Callable[[], object]] = []
    for i in range(25):
        jobs.append(partial(services.capture_epoch, session.pk, i + 1, 1_000 + i + 1, worker_id=WORKER))
        jobs.append(partial(services.credit_top_up, account.pk, 10_000 + i, reference=f"cs_{i}"))
    errors = run_at_once(jobs)
    assert errors == []

    charges = sum(1_000 + epoch for epoch in range(1, 26))
    top_ups = sum(10_000 + n for n in range(25))
    account.refresh_from_db()
    assert account.balance_micros == 1_000_000 + top_ups - charges
    assert LedgerLine.objects.filter(kind=Kind.EPOCH_CHARGE).count() == 25
    assert LedgerLine.objects.filter(kind=Kind.TOP_UP).count() == 26
    assert_ledger_consistent(account)


@pytest.mark.django_db(transaction=True)
def test_redelivered_charges_racing_each_other_charge_each_epoch_once(user: User) -> None:
    account = fund(user, 1_000_000)
    session = make_session(user)
    jobs: list[Callable[[], object]] = []
    for epoch in range(1, 11):
        for _copy in range(5):  # five deliveries of every epoch, all at once
            jobs.append(partial(services.capture_epoch, session.pk, epoch, 2_000, worker_id=WORKER))
    assert run_at_once(jobs) == []
    assert LedgerLine.objects.filter(kind=Kind.EPOCH_CHARGE).count() == 10
    account.refresh_from_db()
    assert account.balance_micros == 1_000_000 - 10 * 2_000
    assert_ledger_consistent(account)


@pytest.mark.django_db(transaction=True)
def test_concurrent_charges_beyond_the_balance_never_take_it_below_zero(user: User) -> None:
    account = fund(user, 25_000)
    sessions = [make_session(user) for _ in range(5)]
    jobs: list[Callable[[], object]] = [
        partial(services.capture_epoch, session.pk, epoch, 3_000, worker_id=WORKER)
        for session in sessions
        for epoch in range(1, 11)
    ]
    assert run_at_once(jobs) == []
    account.refresh_from_db()
    assert account.balance_micros == 0
    written_off = sum(LedgerLine.objects.filter(kind=Kind.WRITE_OFF).values_list("amount_micros", flat=True))
    assert written_off == 50 * 3_000 - 25_000
    assert_ledger_consistent(account)


@pytest.mark.django_db(transaction=True)
def test_concurrent_holds_never_reserve_more_than_the_balance(user: User) -> None:
    account = fund(user, 55_000)  # room for five holds of 10_000, not six
    sessions = [make_session(user) for _ in range(10)]
    results: list[int | None] = []

    def hold(session_id: int) -> None:
        results.append(services.hold_epoch(session_id, 1, worker_id=WORKER))

    jobs: list[Callable[[], object]] = [partial(hold, session.pk) for session in sessions]
    assert run_at_once(jobs) == []
    assert results.count(10_000) == 5
    assert results.count(None) == 5
    account.refresh_from_db()
    assert account.held_micros == 50_000 == sum(Hold.objects.values_list("amount_micros", flat=True))
    assert Account.objects.get(pk=account.pk).balance_micros == 55_000
