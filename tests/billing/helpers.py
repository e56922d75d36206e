"""Helpers for the money tests: the ledger's own consistency, a balance, writers at once."""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.db import connection

from billing import services
from billing.models import Account, LedgerLine
from hubsite.models import User
from tests.factories import WORKER, make_session
from training.models import TrainingSession


def assert_ledger_consistent(account: Account) -> None:
    """The balance equals the sum of the lines, and each line's balance-after is the
    running sum up to it, in the order the account page shows them (by time)."""
    account.refresh_from_db()
    running = 0
    for line in LedgerLine.objects.filter(account=account).order_by("created_at", "id"):
        running += line.amount_micros
        assert line.balance_after_micros == running, line
        assert line.balance_after_micros >= 0
    assert account.balance_micros == running


def balance(user: User) -> int:
    return Account.objects.get(user=user).balance_micros


def run_at_once(jobs: list[Callable[[], object]]) -> list[BaseException]:
    """Start every job in its own thread, release them together, return the errors."""
    barrier = threading.Barrier(len(jobs))
    errors: list[BaseException] = []

    def run(job: Callable[[], object]) -> None:
        try:
            barrier.wait(timeout=30)
            job()
        except BaseException as error:  # reported by the test
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    return errors


def set_monthly_cap(user: User, cap_micros: int | None) -> Account:
    """The user's monthly spending cap, as the Billing page's form saves it."""
    account = Account.objects.get(user=user)
    account.monthly_spending_cap_micros = cap_micros
    account.save(update_fields=["monthly_spending_cap_micros"])
    return account


def spend_this_month(user: User, micros: int) -> None:
    """An epoch charge of ``micros`` (US$3.60/h: 1 ms costs 1 micro-dollar), its session stopped since."""
    session = make_session(user)
    services.capture_epoch(session.pk, 1, micros, worker_id=WORKER)
    TrainingSession.objects.filter(pk=session.pk).update(status=TrainingSession.Status.STOPPED)
