"""Issue 11, money: a running epoch's hold grows with its cost, holds and charges
need the worker's active session, the price is fixed at Start, drift is loud."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from django.db import IntegrityError, transaction
from django.test import override_settings

from billing import services
from billing.models import Account, Hold, LedgerLine
from hubsite.models import User
from tests.billing.helpers import assert_ledger_consistent, run_at_once
from tests.factories import WORKER, fund, make_instance_type, make_session
from training.engine.runner import RunningEpoch, hold_to_grow_to
from training.models import TrainingSession
from training.sessions import reaper

Status = TrainingSession.Status
Kind = LedgerLine.Kind


def test_a_hold_grows_to_at_least_the_amount_asked_and_never_shrinks(user: User) -> None:
    account = fund(user, 100_000)
    session = make_session(user)  # US$3.60/h, 10 s reference: the first hold is 10_000

    assert services.hold_epoch(session.pk, 1, worker_id=WORKER) == 10_000
    assert services.hold_epoch(session.pk, 1, worker_id=WORKER, at_least_micros=25_000) == 25_000
    assert services.hold_epoch(session.pk, 1, worker_id=WORKER, at_least_micros=20_000) == 25_000

    account.refresh_from_db()
    assert account.held_micros == 25_000 == Hold.objects.get(session=session, epoch=1).amount_micros
    assert Hold.objects.count() == 1


def test_a_hold_the_balance_cannot_grow_to_is_refused_and_left_as_it_was(user: User) -> None:
    account = fund(user, 30_000)
    session = make_session(user)
    assert services.hold_epoch(session.pk, 1, worker_id=WORKER) == 10_000

    assert services.hold_epoch(session.pk, 1, worker_id=WORKER, at_least_micros=30_001) is None

    account.refresh_from_db()
    assert account.held_micros == 10_000 == Hold.objects.get().amount_micros
    assert services.hold_epoch(session.pk, 1, worker_id=WORKER, at_least_micros=30_000) == 30_000


def test_an_epoch_charged_within_its_grown_hold_writes_nothing_off(user: User) -> None:
    account = fund(user, 40_000)
    session = make_session(user)
    services.hold_epoch(session.pk, 1, worker_id=WORKER)
    services.hold_epoch(session.pk, 1, worker_id=WORKER, at_least_micros=40_000)

    line = services.capture_epoch(session.pk, 1, 37_500, worker_id=WORKER)

    assert line is not None
    assert line.amount_micros == -37_500
    assert not LedgerLine.objects.filter(kind=Kind.WRITE_OFF).exists()
    account.refresh_from_db()
    assert (account.balance_micros, account.held_micros) == (2_500, 0)
    assert_ledger_consistent(account)


@pytest.mark.parametrize("status", [*TrainingSession.FINAL_STATUSES, Status.QUEUED])
def test_no_hold_or_charge_for_a_session_that_is_not_running(funded_user: User, status: str) -> None:
    session = make_session(funded_user, status=status)

    with pytest.raises(services.SessionNotActive), transaction.atomic():
        services.hold_epoch(session.pk, 1, worker_id=WORKER)
    with pytest.raises(services.SessionNotActive), transaction.atomic():
        services.capture_epoch(session.pk, 1, 5_000, worker_id=WORKER)

    assert not Hold.objects.exists()
    assert not LedgerLine.objects.exclude(kind=Kind.TOP_UP).exists()
    assert Account.objects.get(user=funded_user).held_micros == 0


def test_no_hold_or_charge_for_a_worker_that_no_longer_owns_the_session(funded_user: User) -> None:
    session = make_session(funded_user, worker_id="the-new-worker")

    with pytest.raises(services.SessionNotActive), transaction.atomic():
        services.hold_epoch(session.pk, 1, worker_id=WORKER)
    with pytest.raises(services.SessionNotActive), transaction.atomic():
        services.capture_epoch(session.pk, 1, 5_000, worker_id=WORKER)
    assert services.hold_epoch(session.pk, 1, worker_id="the-new-worker") == 10_000


def test_a_stopping_session_still_charges_its_completed_epochs(funded_user: User) -> None:
    session = make_session(funded_user, status=Status.STOPPING)
    assert services.hold_epoch(session.pk, 1, worker_id=WORKER) == 10_000
    assert services.capture_epoch(session.pk, 1, 5_000, worker_id=WORKER) is not None


def test_the_price_is_fixed_when_the_session_starts(funded_user: User) -> None:
    instance_type = make_instance_type(price_per_hour_micros=3_600_000)
    session = make_session(funded_user, instance_type=instance_type)
    instance_type.price_per_hour_micros = 36_000_000  # staff raise the price mid-run
    instance_type.save()

    assert services.hold_epoch(session.pk, 1, worker_id=WORKER) == 10_000
    line = services.capture_epoch(session.pk, 1, 5_000, worker_id=WORKER)

    assert line is not None
    assert (line.amount_micros, line.price_per_hour_micros) == (-5_000, 3_600_000)
    session.refresh_from_db()
    assert session.price_per_hour_micros == 3_600_000
    assert services.expected_epoch_cost(session) == 10_000  # the 10 s estimate at the old price too
    assert make_session(funded_user, instance_type=instance_type).price_per_hour_micros == 36_000_000


def test_a_timed_prepayment_uses_the_session_price(funded_user: User) -> None:
    instance_type = make_instance_type(price_per_hour_micros=3_600_000)
    session = make_session(funded_user, instance_type=instance_type, mode="timed", time_budget_seconds=3600)
    instance_type.price_per_hour_micros = 7_200_000
    instance_type.save()

    with transaction.atomic():
        assert services.prepay_timed(session).amount_micros == -3_600_000


def test_held_money_out_of_step_with_the_holds_fails_loudly_instead_of_being_clamped(funded_user: User) -> None:
    session = make_session(funded_user)
    services.hold_epoch(session.pk, 1, worker_id=WORKER)
    Account.objects.filter(user=funded_user).update(held_micros=0)  # drift, written behind the ledger's back

    with pytest.raises(IntegrityError, match="account_held_not_negative"):
        services.release_holds(session.pk)
    with pytest.raises(IntegrityError, match="account_held_not_negative"), transaction.atomic():
        services.capture_epoch(session.pk, 1, 5_000, worker_id=WORKER)


@override_settings(BILLING_HOLD_STEP_SECONDS=60)
def test_the_running_hold_stays_a_step_ahead_and_grows_once_a_step() -> None:
    price = 3_600_000  # one millisecond costs one micro-dollar
    started = 1_000.0
    fresh = RunningEpoch(epoch=3, started=started, held_micros=70_000)
    assert hold_to_grow_to(fresh, price, now=started + 5) is None  # 5 s + a 60 s step is held
    assert hold_to_grow_to(fresh, price, now=started + 10.5) == 120_000  # two whole steps past 10.5 s
    grown = RunningEpoch(epoch=3, started=started, held_micros=120_000)
    assert hold_to_grow_to(grown, price, now=started + 59) is None
    assert hold_to_grow_to(grown, price, now=started + 61) == 180_000


@pytest.mark.django_db(transaction=True)
def test_holds_racing_the_reaper_never_leave_money_held_for_a_requeued_session(user: User) -> None:
    """A worker growing its hold while the reaper requeues its session: afterwards no
    open hold belongs to a session that is not running, and held = sum of open holds."""
    account = fund(user, 10_000_000)
    racing = [make_session(user) for _ in range(12)]
    for session in racing:
        services.hold_epoch(session.pk, 1, worker_id=WORKER)

    def grow(session_id: int) -> None:
        for step in range(1, 6):
            try:
                services.hold_epoch(session_id, 1, worker_id=WORKER, at_least_micros=10_000 + step * 1_000)
            except services.SessionNotActive:
                return

    def requeue(session_id: int) -> Any:
        return reaper._requeue(session_id, WORKER, "train.test", progressed=False)

    jobs: list[Callable[[], object]] = [partial(job, session.pk) for session in racing for job in (grow, requeue)]
    assert run_at_once(jobs) == []

    assert not TrainingSession.objects.filter(status=Status.TRAINING).exists()
    assert not Hold.objects.filter(status=Hold.Status.OPEN).exists()
    account.refresh_from_db()
    assert account.held_micros == 0
    assert_ledger_consistent(account)
