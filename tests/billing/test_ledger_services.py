"""The money rules of billing/services.py, one by one, on PostgreSQL."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.db.models import F
from django.test import override_settings

from billing import services
from billing.models import Account, Hold, LedgerLine
from billing.services import InsufficientBalance
from hubsite.models import User
from tests.billing.helpers import assert_ledger_consistent
from tests.factories import PRICE_PER_HOUR, WORKER, fund, make_instance_type, make_session, record_epoch
from training.models import TrainingSession

Kind = LedgerLine.Kind


def test_every_new_user_gets_an_empty_account(user: User) -> None:
    account = Account.objects.get(user=user)
    assert (account.balance_micros, account.held_micros, account.concurrent_session_limit) == (0, 0, 1)
    assert services.account_for(user) == account


def test_epoch_cost_is_seconds_times_the_hourly_price_rounded_down() -> None:
    assert services.epoch_cost_micros(3_600_000, 690_000) == 690_000
    assert services.epoch_cost_micros(1_000, 3_600_000) == 1_000
    # 1 ms at US$0.69/h is 0.19166... micro-dollars: rounded down to 0
    assert services.epoch_cost_micros(1, 690_000) == 0
    assert services.epoch_cost_micros(12_345, 2_990_000) == 12_345 * 2_990_000 // 3_600_000
    with pytest.raises(ValueError, match="negative"):
        services.epoch_cost_micros(-1, 690_000)


@pytest.mark.parametrize(
    ("duration_ms", "price_per_hour"),
    [(0, 690_000), (1, 690_000), (12_345, 2_990_000), (3_599_999, 1), (86_400_000, 99_990_000)],
)
def test_holds_and_charges_use_the_same_rounding_as_epoch_cost_micros(
    user: User, duration_ms: int, price_per_hour: int
) -> None:
    """The per-epoch verbs are PostgreSQL functions: their arithmetic must match Python's."""
    fund(user, 3_000_000_000)
    instance_type = make_instance_type(price_per_hour_micros=price_per_hour, reference_epoch_seconds=7_777)
    session = make_session(user, instance_type=instance_type)
    assert services.hold_epoch(session.pk, 1, worker_id=WORKER) is not None
    assert Hold.objects.get(session=session).amount_micros == services.expected_epoch_cost(session)
    assert services.expected_epoch_cost(session) == services.epoch_cost_micros(7_777_000, price_per_hour)
    line = services.capture_epoch(session.pk, 1, duration_ms, worker_id=WORKER)
    assert line is not None
    assert line.amount_micros == -services.epoch_cost_micros(duration_ms, price_per_hour)
    assert_ledger_consistent(Account.objects.get(user=user))


def test_timed_price_is_hours_times_the_hourly_price() -> None:
    assert services.timed_price_micros(3 * 3600, 690_000) == 2_070_000
    assert services.timed_price_micros(1800, 1_990_000) == 995_000


def test_a_top_up_appends_a_line_and_moves_the_balance(user: User) -> None:
    account = services.account_for(user)
    line = services.credit_top_up(account.pk, 10_000_000, reference="cs_1")
    account.refresh_from_db()
    assert account.balance_micros == 10_000_000
    assert (line.kind, line.amount_micros, line.balance_after_micros, line.reference) == (
        Kind.TOP_UP,
        10_000_000,
        10_000_000,
        "cs_1",
    )


def test_a_top_up_is_credited_once_per_reference(user: User) -> None:
    account = services.account_for(user)
    first = services.credit_top_up(account.pk, 10_000_000, reference="cs_1")
    second = services.credit_top_up(account.pk, 10_000_000, reference="cs_1")
    assert first == second
    account.refresh_from_db()
    assert account.balance_micros == 10_000_000
    assert LedgerLine.objects.count() == 1


def test_a_top_up_refuses_zero_and_a_missing_reference(user: User) -> None:
    account = services.account_for(user)
    with pytest.raises(ValueError, match="positive"):
        services.credit_top_up(account.pk, 0, reference="cs_1")
    with pytest.raises(ValueError, match="reference"):
        services.credit_top_up(account.pk, 5, reference="")
    assert not LedgerLine.objects.exists()


def test_the_database_refuses_a_negative_balance(user: User) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Account.objects.filter(user=user).update(balance_micros=F("balance_micros") - 1)


def test_the_database_refuses_a_second_charge_for_one_epoch(funded_user: User) -> None:
    session = make_session(funded_user)
    line = services.capture_epoch(session.pk, 1, 1_000, worker_id=WORKER)
    assert line is not None
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerLine.objects.create(
            account=line.account,
            kind=Kind.EPOCH_CHARGE,
            amount_micros=-1,
            balance_after_micros=0,
            session=session,
            epoch=1,
        )


def test_start_needs_the_minimum_available_balance(user: User) -> None:
    account = fund(user, 4_000_000)
    with pytest.raises(InsufficientBalance) as refused:
        services.require_start_balance(account)
    assert refused.value.missing_micros == 1_000_000
    assert "US$1.00" in str(refused.value)
    fund(user, 1_000_000)
    account.refresh_from_db()
    services.require_start_balance(account)


def test_open_holds_count_against_the_start_minimum(user: User) -> None:
    account = fund(user, 6_000_000)
    Account.objects.filter(pk=account.pk).update(held_micros=2_000_000)
    account.refresh_from_db()
    with pytest.raises(InsufficientBalance) as refused:
        services.require_start_balance(account)
    assert refused.value.missing_micros == 1_000_000


@override_settings(BILLING_MIN_START_BALANCE_MICROS=0)
def test_the_start_minimum_is_a_setting(user: User) -> None:
    services.require_start_balance(services.account_for(user))


def test_lock_account_needs_a_transaction(transactional_db: None, user: User) -> None:
    with pytest.raises(RuntimeError, match="atomic"):
        services.lock_account(user.pk)
    with transaction.atomic():
        assert services.lock_account(user.pk).user_id == user.pk


def test_the_first_epoch_holds_the_instance_types_reference_cost(funded_user: User) -> None:
    session = make_session(funded_user, instance_type=make_instance_type(reference_epoch_seconds=10))
    assert services.expected_epoch_cost(session) == 10_000
    assert services.hold_epoch(session.pk, 1, worker_id=WORKER) is not None
    hold = Hold.objects.get(session=session, epoch=1)
    assert (hold.amount_micros, hold.status) == (10_000, Hold.Status.OPEN)
    account = Account.objects.get(user=funded_user)
    assert account.held_micros == 10_000
    assert account.balance_micros == 20_000_000  # a hold moves no money


def test_later_epochs_hold_the_longest_of_the_recent_epochs(funded_user: User) -> None:
    session = make_session(funded_user)
    for epoch, ms in enumerate([50_000, 20_000, 30_000, 25_000], start=1):
        record_epoch(session, epoch, ms)
    assert services.expected_epoch_cost(session) == 30_000  # epochs 2-4; epoch 1 is too old


def test_a_resumed_session_estimates_from_the_models_earlier_epochs(funded_user: User) -> None:
    first = make_session(funded_user, status=TrainingSession.Status.STOPPED)
    record_epoch(first, 1, 42_000)
    resumed = make_session(funded_user, model=first.model, instance_type=first.instance_type)
    assert services.expected_epoch_cost(resumed) == 42_000


def test_capture_charges_the_actual_cost_and_closes_the_hold(funded_user: User) -> None:
    session = make_session(funded_user)
    assert services.hold_epoch(session.pk, 1, worker_id=WORKER) is not None
    line = services.capture_epoch(session.pk, 1, 12_500, worker_id=WORKER)
    assert line is not None
    assert (line.kind, line.amount_micros, line.epoch, line.duration_ms, line.price_per_hour_micros) == (
        Kind.EPOCH_CHARGE,
        -12_500,
        1,
        12_500,
        PRICE_PER_HOUR,
    )
    account = Account.objects.get(user=funded_user)
    assert (account.balance_micros, account.held_micros) == (20_000_000 - 12_500, 0)
    assert Hold.objects.get(session=session, epoch=1).status == Hold.Status.CAPTURED
    assert_ledger_consistent(account)


def test_the_same_epoch_captured_twice_is_charged_once(funded_user: User) -> None:
    session = make_session(funded_user)
    services.hold_epoch(session.pk, 1, worker_id=WORKER)
    first = services.capture_epoch(session.pk, 1, 12_500, worker_id=WORKER)
    second = services.capture_epoch(session.pk, 1, 99_000, worker_id=WORKER)  # a redelivery
    assert first == second
    assert LedgerLine.objects.filter(kind=Kind.EPOCH_CHARGE).count() == 1
    assert Account.objects.get(user=funded_user).balance_micros == 20_000_000 - 12_500
    assert services.hold_epoch(session.pk, 1, worker_id=WORKER) is not None  # already charged: nothing more to hold
    assert Account.objects.get(user=funded_user).held_micros == 0


def test_a_hold_is_taken_once_per_epoch(funded_user: User) -> None:
    session = make_session(funded_user)
    assert services.hold_epoch(session.pk, 1, worker_id=WORKER) is not None
    assert services.hold_epoch(session.pk, 1, worker_id=WORKER) is not None
    assert Hold.objects.count() == 1
    assert Account.objects.get(user=funded_user).held_micros == 10_000


def test_an_unaffordable_epoch_is_refused_until_a_credit_arrives(user: User) -> None:
    account = fund(user, 5_000)
    session = make_session(user)  # expects 10 s = 10_000 micro-dollars
    assert services.hold_epoch(session.pk, 1, worker_id=WORKER) is None
    assert not Hold.objects.exists()
    account.refresh_from_db()
    assert account.held_micros == 0
    services.credit_top_up(account.pk, 5_000, reference="cs_more")
    assert services.hold_epoch(session.pk, 1, worker_id=WORKER) is not None
    account.refresh_from_db()
    assert account.held_micros == 10_000


def test_holds_of_other_epochs_reduce_what_is_available(user: User) -> None:
    fund(user, 15_000)
    first = make_session(user)
    second = make_session(user)
    assert services.hold_epoch(first.pk, 1, worker_id=WORKER) is not None
    assert services.hold_epoch(second.pk, 1, worker_id=WORKER) is None


def test_release_frees_the_open_holds_and_a_retry_may_hold_again(funded_user: User) -> None:
    session = make_session(funded_user)
    services.hold_epoch(session.pk, 1, worker_id=WORKER)
    services.release_holds(session.pk)
    services.release_holds(session.pk)  # idempotent
    assert Hold.objects.get().status == Hold.Status.RELEASED
    assert Account.objects.get(user=funded_user).held_micros == 0
    assert (
        services.hold_epoch(session.pk, 1, worker_id=WORKER) is not None
    )  # the redelivered session tries epoch 1 again
    assert Hold.objects.get().status == Hold.Status.OPEN
    assert Account.objects.get(user=funded_user).held_micros == 10_000
    assert not LedgerLine.objects.filter(kind=Kind.EPOCH_CHARGE).exists()


def test_a_charge_above_the_balance_writes_off_the_shortfall(user: User) -> None:
    account = fund(user, 7_000)
    session = make_session(user)
    line = services.capture_epoch(session.pk, 1, 10_000, worker_id=WORKER)
    assert line is not None
    write_off = LedgerLine.objects.get(kind=Kind.WRITE_OFF)
    assert (write_off.amount_micros, write_off.epoch, write_off.session_id) == (3_000, 1, session.pk)
    assert (line.amount_micros, line.balance_after_micros) == (-10_000, 0)
    assert write_off.id < line.id
    account.refresh_from_db()
    assert account.balance_micros == 0
    assert_ledger_consistent(account)


def test_a_charge_on_an_empty_balance_never_goes_negative(user: User) -> None:
    session = make_session(user)
    for epoch in range(1, 4):
        services.capture_epoch(session.pk, epoch, 5_000, worker_id=WORKER)
    account = Account.objects.get(user=user)
    assert account.balance_micros == 0
    assert LedgerLine.objects.filter(kind=Kind.WRITE_OFF).count() == 3
    assert_ledger_consistent(account)


def test_timed_sessions_hold_and_charge_nothing_per_epoch(funded_user: User) -> None:
    session = make_session(funded_user, mode=TrainingSession.Mode.TIMED, time_budget_seconds=3600)
    assert services.hold_epoch(session.pk, 1, worker_id=WORKER) is not None
    assert services.capture_epoch(session.pk, 1, 60_000, worker_id=WORKER) is None
    assert not Hold.objects.exists()
    assert not LedgerLine.objects.exclude(kind=Kind.TOP_UP).exists()


def test_a_timed_session_is_prepaid_once(funded_user: User) -> None:
    session = make_session(funded_user, mode=TrainingSession.Mode.TIMED, time_budget_seconds=2 * 3600)
    with transaction.atomic():
        line = services.prepay_timed(session)
    assert (line.kind, line.amount_micros, line.session_id) == (Kind.TIMED_PREPAYMENT, -7_200_000, session.pk)
    with transaction.atomic():
        assert services.prepay_timed(session) == line
    assert Account.objects.get(user=funded_user).balance_micros == 20_000_000 - 7_200_000


def test_a_timed_prepayment_needs_the_whole_price_available(user: User) -> None:
    fund(user, 1_000_000)
    session = make_session(user, mode=TrainingSession.Mode.TIMED, time_budget_seconds=3600)
    with pytest.raises(InsufficientBalance) as refused, transaction.atomic():
        services.prepay_timed(session)
    assert refused.value.missing_micros == 2_600_000
    assert "US$2.60" in str(refused.value)
    assert not LedgerLine.objects.filter(kind=Kind.TIMED_PREPAYMENT).exists()


def test_an_epochs_session_cannot_be_prepaid(funded_user: User) -> None:
    with pytest.raises(ValueError, match="Timed"):
        services.prepay_timed(make_session(funded_user))


def test_the_unused_time_is_refunded_once(funded_user: User) -> None:
    session = make_session(funded_user, mode=TrainingSession.Mode.TIMED, time_budget_seconds=3600)
    with transaction.atomic():
        services.prepay_timed(session)
    refund = services.refund_timed(session.pk, 600)
    assert refund is not None
    assert (refund.kind, refund.amount_micros, refund.duration_ms) == (Kind.TIMED_REFUND, 3_000_000, 3_000_000)
    assert services.refund_timed(session.pk, 0) == refund
    account = Account.objects.get(user=funded_user)
    assert account.balance_micros == 20_000_000 - 600_000
    assert_ledger_consistent(account)


@pytest.mark.parametrize(("used_seconds", "refund"), [(-5, 3_600_000), (0, 3_600_000), (3600, 0), (9999, 0)])
def test_a_refund_is_never_negative_nor_above_the_price(funded_user: User, used_seconds: int, refund: int) -> None:
    session = make_session(funded_user, mode=TrainingSession.Mode.TIMED, time_budget_seconds=3600)
    with transaction.atomic():
        services.prepay_timed(session)
    line = services.refund_timed(session.pk, used_seconds)
    assert line is not None
    assert line.amount_micros == refund


def test_nothing_is_refunded_without_a_prepayment(funded_user: User) -> None:
    session = make_session(funded_user, mode=TrainingSession.Mode.TIMED, time_budget_seconds=3600)
    assert services.refund_timed(session.pk, 10) is None
    assert not LedgerLine.objects.filter(kind=Kind.TIMED_REFUND).exists()


def test_an_adjustment_records_the_staff_user_and_reason(user: User) -> None:
    staff = User.objects.create_user("staff@example.com", "x", is_staff=True)
    account = services.account_for(user)
    line = services.adjust(account.pk, 2_500_000, staff_user=staff, reason="  goodwill  ")
    assert (line.kind, line.amount_micros, line.created_by, line.reason) == (
        Kind.ADJUSTMENT,
        2_500_000,
        staff,
        "goodwill",
    )


def test_a_negative_adjustment_beyond_the_balance_writes_off_the_rest(user: User) -> None:
    account = fund(user, 1_000_000)
    line = services.adjust(account.pk, -1_500_000, staff_user=None, reason="chargeback")
    assert line.amount_micros == -1_500_000
    assert LedgerLine.objects.get(kind=Kind.WRITE_OFF).amount_micros == 500_000
    account.refresh_from_db()
    assert account.balance_micros == 0
    assert_ledger_consistent(account)


def test_an_adjustment_needs_an_amount_and_a_reason(user: User) -> None:
    account = services.account_for(user)
    with pytest.raises(ValueError, match="zero"):
        services.adjust(account.pk, 0, staff_user=None, reason="x")
    with pytest.raises(ValueError, match="reason"):
        services.adjust(account.pk, 5, staff_user=None, reason=" ")
    assert not LedgerLine.objects.exists()


def test_an_adjustment_with_a_reference_is_applied_once(user: User) -> None:
    account = services.account_for(user)
    first = services.adjust(account.pk, 20_000_000, staff_user=None, reason="demo credit", reference="demo-credit")
    second = services.adjust(account.pk, 20_000_000, staff_user=None, reason="demo credit", reference="demo-credit")
    assert first == second
    account.refresh_from_db()
    assert account.balance_micros == 20_000_000


def test_credits_announce_themselves_after_commit(user: User, django_capture_on_commit_callbacks: object) -> None:
    from billing.signals import balance_credited

    heard: list[int] = []

    def listener(sender: object, account_id: int, user_id: int, **kwargs: object) -> None:
        heard.append(user_id)

    balance_credited.connect(listener)
    try:
        with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
            fund(user, 1_000_000)
        assert heard == [user.pk]
    finally:
        balance_credited.disconnect(listener)
