"""Issue 16, spending caps, with a real worker and real (tiny, CPU) training: a session
stops at its own cap and a monthly cap pauses it, with nothing charged past either."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from billing import services as billing
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


def price_cpu(price_per_hour_micros: int, reference_epoch_seconds: int) -> None:
    cpu = cpu_instance()
    cpu.price_per_hour_micros = price_per_hour_micros
    cpu.reference_epoch_seconds = reference_epoch_seconds
    cpu.save()


@pytest.fixture
def billing_worker(start_worker: WorkerFactory, fast_workers: dict[str, str], settings: Any) -> None:
    settings.BILLING_MIN_START_BALANCE_MICROS = 0
    start_worker("default", "train.cpu", extra_env={**fast_workers, "BILLING_HOLD_STEP_SECONDS": "1"})
    wait_for(lambda: "train.cpu" in live_queues(), timeout=20)


def start(user: User, tmp_path: Path, epochs: int, cap_micros: int | None = None) -> TrainingSession:
    model = make_model(user, make_ready_dataset(user, tmp_path), epochs=epochs)
    request = sessions.StartRequest(instance_type=cpu_instance(), spending_cap_micros=cap_micros)
    return sessions.start_session(user, model, request)


def test_training_stops_at_the_session_cap_and_charges_nothing_past_it(
    user: User, tmp_path: Path, billing_worker: None
) -> None:
    price_cpu(180_000_000, reference_epoch_seconds=0)  # US$0.05 a second; the first hold starts at zero
    fund(user, 20_000_000, as_adjustment=True)
    cap = 500_000  # US$0.50: about ten seconds of training, of the 50 epochs asked for

    session = finished(start(user, tmp_path, epochs=50, cap_micros=cap))

    assert session.status == Status.STOPPED, session.failure_reason
    match = re.fullmatch(
        r"Stopped (before|during) epoch (\d+): it would pass this session's spending cap of US\$0\.50 "
        r"\(US\$\d+\.\d\d spent\)\.( The unfinished epoch is not charged\.)?",
        session.status_detail,
    )
    assert match, session.status_detail
    stopped_at = int(match.group(2))
    charges = LedgerLine.objects.filter(session=session, kind=Kind.EPOCH_CHARGE)
    assert sorted(epoch or 0 for epoch in charges.values_list("epoch", flat=True)) == list(range(1, stopped_at))
    assert sorted(EpochRecord.objects.filter(session=session).values_list("epoch", flat=True)) == list(
        range(1, stopped_at)
    )
    assert -sum(charges.values_list("amount_micros", flat=True)) <= cap
    assert not Hold.objects.filter(session=session, status=Hold.Status.OPEN).exists()
    assert not LedgerLine.objects.filter(kind=Kind.WRITE_OFF).exists()
    assert session.status_detail in session.log_tail
    account = Account.objects.get(user=user)
    assert account.held_micros == 0
    assert_ledger_consistent(account)


def test_an_epoch_whose_expected_cost_passes_the_cap_never_starts(
    user: User, tmp_path: Path, billing_worker: None
) -> None:
    price_cpu(36_000_000, reference_epoch_seconds=100)  # the first epoch is expected to cost US$1.00
    fund(user, 20_000_000, as_adjustment=True)

    session = finished(start(user, tmp_path, epochs=2, cap_micros=500_000))

    assert session.status == Status.STOPPED, session.failure_reason
    assert session.status_detail == (
        "Stopped before epoch 1: it would pass this session's spending cap of US$0.50 (US$0.00 spent)."
    )
    assert not EpochRecord.objects.filter(session=session).exists()
    assert not Hold.objects.filter(session=session).exists()
    assert not LedgerLine.objects.exclude(kind=Kind.ADJUSTMENT).exists()


def test_the_monthly_cap_pauses_training_and_a_top_up_does_not_resume_it(
    user: User, tmp_path: Path, billing_worker: None
) -> None:
    price_cpu(36_000_000, reference_epoch_seconds=100)  # US$1.00 expected for the first epoch
    account = fund(user, 20_000_000, as_adjustment=True)
    account.monthly_spending_cap_micros = 900_000
    account.save(update_fields=["monthly_spending_cap_micros"])
    model = make_model(user, make_ready_dataset(user, tmp_path), epochs=2)
    request = sessions.StartRequest(instance_type=cpu_instance(), resume_after_top_up=True)

    session = finished(sessions.start_session(user, model, request))

    assert session.status == Status.PAUSED, session.failure_reason
    assert session.status_detail == (
        "Paused before epoch 1: this month's spending cap of US$0.90 is reached. "
        "Raise it on the Billing page, then Resume."
    )
    assert session.resume_after_top_up is False
    billing.credit_top_up(account.pk, 5_000_000, reference="cs_after_the_cap")
    assert sessions.resume_paused_after_top_up(user.pk) is None
    assert TrainingSession.objects.filter(model=model).count() == 1
    assert not LedgerLine.objects.exclude(kind__in=[Kind.ADJUSTMENT, Kind.TOP_UP]).exists()
