"""Issue 11, money, with real workers and real training: an epoch that outlasts its
hold grows it or pauses, and a requeued Timed session trains only the time left."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from billing.models import Account, Hold, LedgerLine
from hubsite.models import User
from tests.billing.helpers import assert_ledger_consistent
from tests.factories import cpu_instance, fund, make_model, make_ready_dataset
from tests.helpers import WorkerFactory, wait_for
from training import sessions
from training.models import EpochRecord, TrainingSession
from training.presence import live_queues

pytestmark = [pytest.mark.training, pytest.mark.django_db(transaction=True)]

Status = TrainingSession.Status
Kind = LedgerLine.Kind


def finished(session: TrainingSession, timeout: float = 240) -> TrainingSession:
    final = TrainingSession.FINAL_STATUSES
    wait_for(lambda: TrainingSession.objects.get(pk=session.pk).status in final, timeout=timeout, interval=0.2)
    return TrainingSession.objects.get(pk=session.pk)


def price_cpu(price_per_hour_micros: int) -> None:
    """The CPU type costs this much, and its reference epoch costs nothing: the first
    hold of a new model is zero, so every epoch outlasts its first hold."""
    cpu = cpu_instance()
    cpu.price_per_hour_micros = price_per_hour_micros
    cpu.reference_epoch_seconds = 0
    cpu.save()


@pytest.fixture
def billing_worker(start_worker: WorkerFactory, fast_workers: dict[str, str], settings: Any) -> None:
    settings.BILLING_MIN_START_BALANCE_MICROS = 0
    start_worker("default", "train.cpu", extra_env={**fast_workers, "BILLING_HOLD_STEP_SECONDS": "1"})
    wait_for(lambda: "train.cpu" in live_queues(), timeout=20)


def test_each_epoch_is_held_in_full_before_it_is_charged(user: User, tmp_path: Path, billing_worker: None) -> None:
    price_cpu(36_000_000)  # US$0.01 a second
    fund(user, 20_000_000, as_adjustment=True)
    model = make_model(user, make_ready_dataset(user, tmp_path), epochs=2)
    session = sessions.start_session(user, model, sessions.StartRequest(instance_type=cpu_instance()))

    session = finished(session)

    assert session.status == Status.COMPLETED, session.failure_reason
    charges = LedgerLine.objects.filter(session=session, kind=Kind.EPOCH_CHARGE).order_by("epoch")
    assert [charge.epoch for charge in charges] == [1, 2]
    for charge in charges:
        hold = Hold.objects.get(session=session, epoch=charge.epoch or 0)
        assert hold.status == Hold.Status.CAPTURED
        assert hold.amount_micros >= -charge.amount_micros > 0  # grown from zero to cover the epoch
    assert not LedgerLine.objects.filter(kind=Kind.WRITE_OFF).exists()
    account = Account.objects.get(user=user)
    assert account.held_micros == 0
    assert_ledger_consistent(account)


def test_an_epoch_the_balance_cannot_cover_pauses_the_session_unbilled(
    user: User, tmp_path: Path, billing_worker: None
) -> None:
    price_cpu(36_000_000_000)  # US$10 a second: US$5 buys half a second of an epoch
    fund(user, 5_000_000, as_adjustment=True)
    model = make_model(user, make_ready_dataset(user, tmp_path), epochs=2)
    session = sessions.start_session(user, model, sessions.StartRequest(instance_type=cpu_instance()))

    session = finished(session)

    assert session.status == Status.PAUSED, session.failure_reason
    assert "Paused during epoch 1" in session.status_detail
    assert not EpochRecord.objects.filter(model=model).exists()
    assert not LedgerLine.objects.exclude(kind=Kind.ADJUSTMENT).exists()  # no charge, no write-off
    account = Account.objects.get(user=user)
    assert (account.balance_micros, account.held_micros) == (5_000_000, 0)
    assert Hold.objects.get(session=session).status == Hold.Status.RELEASED


def test_a_requeued_timed_session_trains_only_the_time_left_and_refunds_the_rest(
    user: User, tmp_path: Path, start_worker: WorkerFactory, fast_workers: dict[str, str]
) -> None:
    fund(user, as_adjustment=True)
    model = make_model(user, make_ready_dataset(user, tmp_path), epochs=3)  # short epochs: 2 batches
    doomed = start_worker("train.cpu", extra_env=fast_workers)
    wait_for(lambda: "train.cpu" in live_queues(), timeout=20)
    budget = 45  # ultralytics trains a Timed session until its time is up, whatever the epochs
    request = sessions.StartRequest(instance_type=cpu_instance(), mode="timed", time_budget_seconds=budget)
    session = sessions.start_session(user, model, request)
    # killed past the model's 3 epochs: a Timed run trains on until its time is up, and
    # its resume must not read "training to 3 epochs is finished, nothing to resume"
    wait_for(lambda: EpochRecord.objects.filter(session=session).count() >= 4, timeout=180, interval=0.1)
    time.sleep(0.3)

    os.killpg(doomed.pid, signal.SIGKILL)
    doomed.wait()
    used_before_the_kill_ms = sum(EpochRecord.objects.filter(session=session).values_list("duration_ms", flat=True))
    first_runs_tail = TrainingSession.objects.get(pk=session.pk).log_tail
    start_worker("default", "train.cpu", extra_env=fast_workers)
    told = f"trains for at most {budget - used_before_the_kill_ms // 1000} s more"

    # The console keeps the last 300 lines, and a Timed run trains epochs until its time is
    # up, so by the end the line may have scrolled out: read it from the tail the requeued
    # run's heartbeat writes while it is young.
    def told_by_the_requeued_run() -> bool:
        tail = TrainingSession.objects.get(pk=session.pk).log_tail
        return tail != first_runs_tail and told in tail

    wait_for(told_by_the_requeued_run, timeout=180, interval=0.1)
    session = finished(session)

    assert session.status == Status.COMPLETED, session.failure_reason
    used_seconds = sum(EpochRecord.objects.filter(session=session).values_list("duration_ms", flat=True)) // 1000
    refund = LedgerLine.objects.get(session=session, kind=Kind.TIMED_REFUND)
    prepayment = LedgerLine.objects.get(session=session, kind=Kind.TIMED_PREPAYMENT)
    assert refund.amount_micros == -prepayment.amount_micros - used_seconds * 200_000 // 3600
    assert_ledger_consistent(Account.objects.get(user=user))
