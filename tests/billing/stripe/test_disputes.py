"""Refunds and disputes made in Stripe, in every order of events, through the local
Stripe emulator and signed webhooks to the live server: the customer is never paid
twice, a dispute freezes its amount, and the ledger always adds up.

Prices: the test instance type costs US$3.60 an hour, so a 0.5 h Pay Now is a
US$1.80 card payment, and 600 s of training use US$0.60 of it (US$1.20 unused).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
import redis
from django.db import connection, connections, transaction
from django.test import Client
from pytest_django.live_server_helper import LiveServer

from billing import services
from billing.models import Account, CheckoutSession, LedgerLine, StripeEvent
from hubsite.models import User
from tests.billing.helpers import assert_ledger_consistent, balance
from tests.billing.stripe.emulator import DEAD_URL, Emulator
from tests.factories import WORKER, make_instance_type, make_model, record_epoch
from tests.helpers import wait_for
from training import sessions
from training.models import TrainingSession
from training.presence import announce

pytestmark = pytest.mark.django_db(transaction=True)

Status = TrainingSession.Status
OTHER_MONEY = 5_000_000  # the customer's own balance, which a Pay Now refund must not touch
PAID = 1_800_000
USED = 600_000  # 600 s of training
UNUSED = PAID - USED


@pytest.fixture
def customer(user: User, redis_client: redis.Redis) -> User:
    services.adjust(services.account_for(user).pk, OTHER_MONEY, staff_user=None, reason="earlier credit")
    return user


def lines(user: User, *kinds: str) -> list[tuple[str, int]]:
    query = LedgerLine.objects.filter(account__user=user).order_by("created_at", "id")
    if kinds:
        query = query.filter(kind__in=kinds)
    return list(query.values_list("kind", "amount_micros"))


def pay_now(client: Client, user: User, emulator: Emulator) -> tuple[CheckoutSession, TrainingSession]:
    """Pay a 0.5 h Timed session by card; returns our record and the queued session."""
    instance_type = make_instance_type()
    model = make_model(user)
    announce({instance_type.queue_name}, WORKER)
    response = client.post(f"/models/{model.uid}/train/pay-now/", {"instance_type": instance_type.slug, "hours": "0.5"})
    assert response.status_code == 303
    record = CheckoutSession.objects.get(model=model)
    assert emulator.pay(record.url).status_code == 303
    session: TrainingSession = wait_for(lambda: TrainingSession.objects.filter(model=model).first(), timeout=15)
    record.refresh_from_db()
    assert record.status == "complete"
    return record, session


def train_600_seconds(session: TrainingSession) -> None:
    """A worker claims the session and completes one 600 s epoch."""
    assert sessions.claim(session.pk, WORKER)
    assert sessions.mark_training(session.pk, WORKER)
    record_epoch(session, 0, 600_000)


def status_of(session: TrainingSession) -> str:
    return TrainingSession.objects.values_list("status", flat=True).get(pk=session.pk)


def processed(event_type: str) -> Callable[[], bool]:
    return lambda: StripeEvent.objects.filter(type=event_type, status="processed").exists()


def top_up(client: Client, emulator: Emulator, user: User, cents: int) -> CheckoutSession:
    before = balance(user)
    assert client.post("/billing/stripe/top-up/", {"preset": cents}).status_code == 303
    record = CheckoutSession.objects.filter(purpose="top_up").latest("id")
    assert emulator.pay(record.url).status_code == 303
    wait_for(lambda: balance(user) == before + cents * 10_000, timeout=15)
    record.refresh_from_db()
    return record


# -- refunds of a Pay Now ------------------------------------------------------------


def test_a_card_refund_while_training_stops_the_session_and_replaces_its_balance_refund(
    owner_client: Client, customer: User, stripe_live: Emulator
) -> None:
    record, session = pay_now(owner_client, customer, stripe_live)
    train_600_seconds(session)
    stripe_live.refund(str(record.stripe_session_id))
    wait_for(lambda: status_of(session) == Status.STOPPING, timeout=15)
    assert StripeEvent.objects.get(type="charge.refunded").status == "processed"
    assert not lines(customer, "payment_refund")  # nothing to take yet: the session has not ended
    assert balance(customer) == OTHER_MONEY

    assert sessions.finish(session.pk, WORKER, Status.STOPPED)  # the worker notices the stop

    assert lines(customer, "timed_refund", "payment_refund") == [("timed_refund", UNUSED), ("payment_refund", -UNUSED)]
    assert balance(customer) == OTHER_MONEY  # the card refund replaced the US$1.20 balance refund
    assert_ledger_consistent(Account.objects.get(user=customer))


def test_a_partial_card_refund_while_training_takes_only_its_amount_from_the_unused_time(
    owner_client: Client, customer: User, stripe_live: Emulator
) -> None:
    record, session = pay_now(owner_client, customer, stripe_live)
    train_600_seconds(session)
    stripe_live.refund(str(record.stripe_session_id), 50)
    wait_for(lambda: status_of(session) == Status.STOPPING, timeout=15)
    assert sessions.finish(session.pk, WORKER, Status.STOPPED)
    assert lines(customer, "timed_refund", "payment_refund") == [("timed_refund", UNUSED), ("payment_refund", -500_000)]
    assert balance(customer) == OTHER_MONEY + UNUSED - 500_000
    assert_ledger_consistent(Account.objects.get(user=customer))


def test_a_card_refund_of_a_queued_pay_now_ends_it_at_once_and_refunds_nothing_to_the_balance(
    owner_client: Client, customer: User, stripe_live: Emulator
) -> None:
    record, session = pay_now(owner_client, customer, stripe_live)
    stripe_live.refund(str(record.stripe_session_id))
    wait_for(processed("charge.refunded"), timeout=15)
    assert status_of(session) == Status.STOPPED
    assert lines(customer, "timed_refund", "payment_refund") == [("timed_refund", PAID), ("payment_refund", -PAID)]
    assert balance(customer) == OTHER_MONEY
    assert_ledger_consistent(Account.objects.get(user=customer))


def test_a_card_refund_after_the_session_ended_takes_back_its_balance_refund_and_no_more(
    owner_client: Client, customer: User, stripe_live: Emulator
) -> None:
    record, session = pay_now(owner_client, customer, stripe_live)
    train_600_seconds(session)
    assert sessions.finish(session.pk, WORKER, Status.COMPLETED)
    assert balance(customer) == OTHER_MONEY + UNUSED

    stripe_live.refund(str(record.stripe_session_id))
    wait_for(processed("charge.refunded"), timeout=15)

    # The US$0.60 of training already done is not charged to the customer's own money.
    [line] = LedgerLine.objects.filter(kind="payment_refund")
    assert (line.amount_micros, line.session_id) == (-UNUSED, session.pk)
    assert "US$0.6000 of it paid for training already done" in line.reason
    assert balance(customer) == OTHER_MONEY
    assert_ledger_consistent(Account.objects.get(user=customer))


def test_a_card_refund_of_a_balance_refund_already_spent_writes_off_what_is_missing(
    owner_client: Client, customer: User, stripe_live: Emulator
) -> None:
    record, session = pay_now(owner_client, customer, stripe_live)
    train_600_seconds(session)
    assert sessions.finish(session.pk, WORKER, Status.COMPLETED)
    account = Account.objects.get(user=customer)
    services.adjust(account.pk, -(OTHER_MONEY + 1_000_000), staff_user=None, reason="spent")  # US$0.20 left

    stripe_live.refund(str(record.stripe_session_id))
    wait_for(processed("charge.refunded"), timeout=15)

    assert lines(customer)[-2:] == [("write_off", 1_000_000), ("payment_refund", -UNUSED)]
    assert balance(customer) == 0
    assert_ledger_consistent(account)


# -- refunds of a top-up -------------------------------------------------------------


def test_refunds_of_a_top_up_take_each_new_part_back_from_the_balance(
    owner_client: Client, user: User, stripe_live: Emulator
) -> None:
    record = top_up(owner_client, stripe_live, user, 2_000)
    stripe_live.refund(str(record.stripe_session_id), 500)
    wait_for(lambda: balance(user) == 15_000_000, timeout=15)
    stripe_live.refund(str(record.stripe_session_id), 700)
    wait_for(lambda: balance(user) == 8_000_000, timeout=15)
    assert lines(user, "payment_refund") == [("payment_refund", -5_000_000), ("payment_refund", -7_000_000)]
    assert list(LedgerLine.objects.filter(kind="payment_refund").values_list("reference", flat=True)) == [
        f"stripe refund {record.stripe_session_id} total 500",
        f"stripe refund {record.stripe_session_id} total 1200",
    ]
    record.refresh_from_db()
    assert record.refunded_cents == 1_200
    assert_ledger_consistent(Account.objects.get(user=user))


# -- disputes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("opened", "closed"), [("needs_response", "won"), ("warning_needs_response", "warning_closed")]
)
def test_a_dispute_of_a_top_up_freezes_it_and_a_win_returns_what_it_took(
    owner_client: Client, user: User, stripe_live: Emulator, opened: str, closed: str
) -> None:
    record = top_up(owner_client, stripe_live, user, 2_000)
    account = Account.objects.get(user=user)
    services.adjust(account.pk, -15_000_000, staff_user=None, reason="spent")  # US$5.00 left

    dispute = stripe_live.dispute(str(record.stripe_session_id), status=opened)
    wait_for(processed("charge.dispute.created"), timeout=15)
    assert lines(user)[-2:] == [("write_off", 15_000_000), ("dispute", -20_000_000)]
    assert balance(user) == 0  # frozen: nothing left to spend
    record.refresh_from_db()
    assert (record.stripe_dispute_id, record.dispute_status, record.disputed_cents) == (
        dispute["dispute"],
        "open",
        2000,
    )

    stripe_live.close_dispute(dispute["dispute"], closed)
    wait_for(processed("charge.dispute.closed"), timeout=15)
    # Only the US$5.00 the customer still had comes back, not the US$15.00 they had spent.
    assert lines(user)[-1] == ("dispute_reversal", 5_000_000)
    assert balance(user) == 5_000_000
    record.refresh_from_db()
    assert record.dispute_status == "won"
    assert_ledger_consistent(account)


def test_a_lost_dispute_keeps_the_amount_taken(owner_client: Client, user: User, stripe_live: Emulator) -> None:
    record = top_up(owner_client, stripe_live, user, 2_000)
    dispute = stripe_live.dispute(str(record.stripe_session_id), amount_cents=1_500)
    wait_for(processed("charge.dispute.created"), timeout=15)
    assert balance(user) == 5_000_000
    stripe_live.close_dispute(dispute["dispute"], "lost")
    wait_for(processed("charge.dispute.closed"), timeout=15)
    assert lines(user, "dispute", "dispute_reversal") == [("dispute", -15_000_000)]
    assert balance(user) == 5_000_000
    record.refresh_from_db()
    assert record.dispute_status == "lost"
    assert_ledger_consistent(Account.objects.get(user=user))


def test_a_dispute_of_a_pay_now_while_training_stops_it_and_withholds_its_balance_refund_until_won(
    owner_client: Client, customer: User, stripe_live: Emulator
) -> None:
    record, session = pay_now(owner_client, customer, stripe_live)
    train_600_seconds(session)
    dispute = stripe_live.dispute(str(record.stripe_session_id))
    wait_for(lambda: status_of(session) == Status.STOPPING, timeout=15)
    assert sessions.finish(session.pk, WORKER, Status.STOPPED)
    assert lines(customer, "timed_refund", "dispute") == [("timed_refund", UNUSED), ("dispute", -UNUSED)]
    assert balance(customer) == OTHER_MONEY

    stripe_live.close_dispute(dispute["dispute"], "won")
    wait_for(processed("charge.dispute.closed"), timeout=15)
    assert lines(customer)[-1] == ("dispute_reversal", UNUSED)
    assert balance(customer) == OTHER_MONEY + UNUSED
    assert_ledger_consistent(Account.objects.get(user=customer))


def test_a_dispute_closed_before_its_creation_arrives_takes_nothing(
    owner_client: Client, user: User, stripe_live: Emulator, live_server: LiveServer
) -> None:
    record = top_up(owner_client, stripe_live, user, 2_000)
    stripe_live.register_webhook(DEAD_URL)  # both events are sent while our endpoint is away
    dispute = stripe_live.dispute(str(record.stripe_session_id))
    closed = stripe_live.close_dispute(dispute["dispute"], "won")
    stripe_live.register_webhook(f"{live_server.url}/billing/stripe/webhook/")
    assert stripe_live.redeliver(closed["event"], times=1) == [200]
    assert stripe_live.redeliver(dispute["event"], times=1) == [200]
    assert balance(user) == 20_000_000
    assert not lines(user, "dispute", "dispute_reversal", "write_off")
    record.refresh_from_db()
    assert record.dispute_status == "won"


# -- redeliveries --------------------------------------------------------------------


def test_each_refund_and_dispute_event_is_applied_once_however_often_it_arrives(
    owner_client: Client, user: User, stripe_live: Emulator
) -> None:
    record = top_up(owner_client, stripe_live, user, 2_000)
    refund = stripe_live.refund(str(record.stripe_session_id), 500)
    wait_for(processed("charge.refunded"), timeout=15)
    dispute = stripe_live.dispute(str(record.stripe_session_id))
    wait_for(processed("charge.dispute.created"), timeout=15)
    closed = stripe_live.close_dispute(dispute["dispute"], "won")
    wait_for(processed("charge.dispute.closed"), timeout=15)
    expected = [("payment_refund", -5_000_000), ("dispute", -15_000_000), ("dispute_reversal", 15_000_000)]
    assert lines(user, "payment_refund", "dispute", "dispute_reversal") == expected

    for event_id in (refund["event"], dispute["event"], closed["event"]):
        assert stripe_live.redeliver(event_id, times=5) == [200] * 5

    assert lines(user, "payment_refund", "dispute", "dispute_reversal") == expected
    assert balance(user) == 15_000_000
    assert StripeEvent.objects.count() == 4  # the top-up and the three above, each stored once
    assert_ledger_consistent(Account.objects.get(user=user))


# -- the webhook racing the session's end --------------------------------------------


def _in_thread(target: Callable[[], Any], results: list[Any]) -> threading.Thread:
    def run() -> None:
        try:
            results.append(target())
        except BaseException as error:  # reported by the test
            results.append(error)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _race(*actions: tuple[float, Callable[[], Any]]) -> list[Any]:
    """Run (delay, action) pairs in threads that start together, each action after its
    delay; returns their results in the order they finished."""
    start = threading.Barrier(len(actions))

    def after_start(delay: float, action: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            start.wait(10)
            time.sleep(delay)
            return action()

        return run

    results: list[Any] = []
    threads = [_in_thread(after_start(delay, action), results) for delay, action in actions]
    for thread in threads:
        thread.join(30)
    return results


def _waiting_on_locks() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return int(cursor.fetchone()[0])


def test_a_refund_that_commits_after_the_session_settled_still_takes_the_balance_refund_back(
    owner_client: Client, customer: User, stripe_live: Emulator
) -> None:
    """The hardest interleaving, forced: the session's end reads the payment before
    the refund webhook commits, so the webhook must see the balance refund."""
    record, session = pay_now(owner_client, customer, stripe_live)
    train_600_seconds(session)
    account = Account.objects.get(user=customer)
    locked, release = threading.Event(), threading.Event()

    def hold_account_lock() -> None:
        with transaction.atomic():
            Account.objects.select_for_update().get(pk=account.pk)
            locked.set()
            release.wait(10)

    results: list[Any] = []
    holder = _in_thread(hold_account_lock, results)
    assert locked.wait(10)
    ender = _in_thread(lambda: sessions.finish(session.pk, WORKER, Status.COMPLETED), results)
    wait_for(lambda: _waiting_on_locks() >= 1, timeout=10)  # the end holds the session row, waits for the account
    stripe_live.refund(str(record.stripe_session_id))
    wait_for(lambda: _waiting_on_locks() >= 2, timeout=10)  # the webhook waits for the session row
    release.set()
    for thread in (holder, ender):
        thread.join(15)
    wait_for(processed("charge.refunded"), timeout=15)
    assert sorted(map(repr, results)) == ["None", "True"]

    assert lines(customer, "timed_refund", "payment_refund") == [("timed_refund", UNUSED), ("payment_refund", -UNUSED)]
    assert balance(customer) == OTHER_MONEY
    assert_ledger_consistent(account)


@pytest.mark.parametrize("event", ["refund", "dispute"])
def test_a_refund_or_dispute_racing_the_sessions_end_never_pays_twice(
    owner_client: Client, customer: User, stripe_live: Emulator, live_server: LiveServer, event: str
) -> None:
    webhook_url = f"{live_server.url}/billing/stripe/webhook/"
    account = Account.objects.get(user=customer)
    # The webhook goes through the emulator over HTTP; delaying the session's end by
    # more and more lets the iterations cover "end first", overlap and "webhook first".
    for end_delay in (0.0, 0.03, 0.06, 0.1, 0.2, 0.4):
        record, session = pay_now(owner_client, customer, stripe_live)
        train_600_seconds(session)
        stripe_live.register_webhook(DEAD_URL)  # keep the event back, then send it at the session's end
        if event == "refund":
            sent, kind = stripe_live.refund(str(record.stripe_session_id)), "payment_refund"
        else:
            sent, kind = stripe_live.dispute(str(record.stripe_session_id)), "dispute"
        stripe_live.register_webhook(webhook_url)

        results = _race(
            (end_delay, partial(sessions.finish, session.pk, WORKER, Status.COMPLETED)),
            (0.0, partial(stripe_live.redeliver, sent["event"], times=1)),
        )
        assert sorted(map(str, results)) == ["True", "[200]"]

        assert lines(customer, "timed_refund", kind)[-2:] == [("timed_refund", UNUSED), (kind, -UNUSED)]
        assert balance(customer) == OTHER_MONEY
        assert_ledger_consistent(account)
