"""Shared helpers for the billing tests: sessions to charge, accounts with money."""

from __future__ import annotations

import itertools

import pytest

from billing import services
from billing.models import Account, LedgerLine
from hubsite.models import User
from training.models import Dataset, EpochRecord, InstanceType, TrainingSession, YoloModel

# US$3.60 an hour: one second costs exactly 1_000 micro-dollars, which keeps the
# arithmetic in the tests readable.
PRICE_PER_HOUR = 3_600_000
WORKER = "test-worker"  # the worker that owns the sessions make_session creates
_names = itertools.count()


def make_instance_type(price_per_hour_micros: int = PRICE_PER_HOUR, reference_epoch_seconds: int = 10) -> InstanceType:
    n = next(_names)
    return InstanceType.objects.create(
        slug=f"test-gpu-{n}",
        name=f"Test GPU {n}",
        gpu="Test GPU",
        price_per_hour_micros=price_per_hour_micros,
        reference_epoch_seconds=reference_epoch_seconds,
    )


def make_model(owner: User, name: str = "detector") -> YoloModel:
    dataset = Dataset.objects.create(owner=owner, name=f"data {next(_names)}", status=Dataset.Status.READY)
    return YoloModel.objects.create(owner=owner, name=name, dataset=dataset, architecture="yolo11n")


def make_session(
    owner: User,
    *,
    model: YoloModel | None = None,
    instance_type: InstanceType | None = None,
    mode: str = TrainingSession.Mode.EPOCHS,
    time_budget_seconds: int | None = None,
    status: str = TrainingSession.Status.TRAINING,
    worker_id: str = WORKER,
) -> TrainingSession:
    return TrainingSession.objects.create(
        model=model or make_model(owner),
        owner=owner,
        instance_type=instance_type or make_instance_type(),
        mode=mode,
        target_epochs=10,
        time_budget_seconds=time_budget_seconds,
        status=status,
        worker_id=worker_id,
    )


def record_epoch(session: TrainingSession, epoch: int, duration_ms: int) -> EpochRecord:
    from django.utils import timezone

    now = timezone.now()
    return EpochRecord.objects.create(
        session=session,
        model_id=session.model_id,
        epoch=epoch,
        started_at=now,
        finished_at=now,
        duration_ms=duration_ms,
        metrics={},
    )


def fund(user: User, micros: int, reference: str | None = None) -> Account:
    account = services.account_for(user)
    services.credit_top_up(account.pk, micros, reference=reference or f"test-top-up-{next(_names)}")
    account.refresh_from_db()
    return account


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


@pytest.fixture
def funded_user(user: User) -> User:
    fund(user, 20_000_000)
    return user
