"""Spending caps (issue 16): a session's own cap and the account's monthly cap, checked
by ``billing_hold_epoch`` and ``prepay_timed`` under the account lock. The concurrency
tests run real threads, each on its own PostgreSQL connection (transactional_db)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from django.db import connection

from billing import services
from billing.models import Account, Hold, LedgerLine
from hubsite.models import User
from tests.billing.helpers import assert_ledger_consistent, run_at_once, set_monthly_cap
from tests.factories import WORKER, fund, make_session
from training.models import TrainingSession

Kind = LedgerLine.Kind
EXPECTED = 10_000  # make_session's instance type: a 10 s reference epoch at US$3.60/h (1 ms = 1 micro-dollar)


def capped_session(user: User, cap_micros: int | None) -> TrainingSession:
    session = make_session(user)
    session.spending_cap_micros = cap_micros
    session.save(update_fields=["spending_cap_micros"])
    return session


def month_spend(user: User) -> int:
    return services.month_spend_micros(Account.objects.get(user=user))


# --- the session's cap ----------------------------------------------------------------


@pytest.mark.django_db
def test_a_session_holds_up_to_its_cap_and_is_refused_past_it(user: User) -> None:
    account = fund(user, 1_000_000)
    session = capped_session(user, 2 * EXPECTED + 500)
    assert services.hold_epoch(session.pk, 1, worker_id=WORKER) == EXPECTED
    services.capture_epoch(session.pk, 1, 9_000, worker_id=WORKER)  # charged 9_000
    assert services.hold_epoch(session.pk, 2, worker_id=WORKER) == EXPECTED  # 19_000 of 20_500

    with pytest.raises(services.SessionCapReached) as refused:
        services.hold_epoch(session.pk, 2, worker_id=WORKER, at_least_micros=EXPECTED + 1_501)

    assert (refused.value.cap_micros, refused.value.spent_micros) == (20_500, 19_000)
    assert "would pass this session's spending cap of US$" in str(refused.value)
    assert Hold.objects.get(session=session, epoch=2).amount_micros == EXPECTED  # unchanged
    assert services.hold_epoch(session.pk, 2, worker_id=WORKER, at_least_micros=EXPECTED + 1_500) == 11_500
    account.refresh_from_db()
    assert account.held_micros == 11_500
    assert services.session_spend_micros(session.pk) == 20_500  # exactly at the cap, never past it


@pytest.mark.django_db
def test_the_session_cap_is_checked_before_the_balance_and_counts_only_its_own_session(user: User) -> None:
    fund(user, 15_000)
    other = make_session(user)
    assert services.hold_epoch(other.pk, 1, worker_id=WORKER) == EXPECTED  # another session's hold: not counted
    capped = capped_session(user, EXPECTED - 1)

    with pytest.raises(services.SessionCapReached):
        services.hold_epoch(capped.pk, 1, worker_id=WORKER)  # the balance would refuse it too
    assert not Hold.objects.filter(session=capped).exists()
    assert services.hold_epoch(capped_session(user, EXPECTED).pk, 1, worker_id=WORKER) is None  # the balance


@pytest.mark.django_db(transaction=True)
def test_racing_growth_steps_of_a_capped_session_never_pass_its_cap(user: User) -> None:
    account = fund(user, 10_000_000)
    session = capped_session(user, 55_000)
    services.capture_epoch(session.pk, 1, 20_000, worker_id=WORKER)  # 20_000 spent: 35_000 left
    assert services.hold_epoch(session.pk, 2, worker_id=WORKER) == EXPECTED
    outcomes: list[int | str] = []

    def grow(to: int) -> None:
        try:
            outcomes.append(services.hold_epoch(session.pk, 2, worker_id=WORKER, at_least_micros=to) or 0)
        except services.SessionCapReached:
            outcomes.append("capped")

    jobs: list[Callable[[], object]] = [partial(grow, to) for to in range(15_000, 60_001, 5_000)]
    assert run_at_once(jobs) == []

    assert outcomes.count("capped") == 5  # 40_000 .. 60_000: each would pass 55_000
    hold = Hold.objects.get(session=session, epoch=2)
    assert hold.amount_micros == 35_000
    account.refresh_from_db()
    assert account.held_micros == 35_000
    assert services.session_spend_micros(session.pk) == 55_000


# --- the monthly cap ------------------------------------------------------------------


@pytest.mark.django_db
def test_the_month_spend_counts_charges_prepayments_less_refunds_and_open_holds(user: User) -> None:
    fund(user, 1_000_000)
    epochs = make_session(user)
    services.capture_epoch(epochs.pk, 1, 7_000, worker_id=WORKER)
    services.hold_epoch(epochs.pk, 2, worker_id=WORKER)
    timed = make_session(user, mode=TrainingSession.Mode.TIMED, time_budget_seconds=60)
    services.prepay_timed(timed)  # 60_000
    services.refund_timed(timed.pk, 20)  # 40_000 back

    assert month_spend(user) == 7_000 + EXPECTED + 60_000 - 40_000
    with connection.cursor() as cursor:  # next month: only the open hold is left
        cursor.execute(
            "SELECT billing_month_spend_micros(%s, %s)",
            [Account.objects.get(user=user).pk, datetime.now(UTC).replace(day=1) + timedelta(days=32)],
        )
        assert cursor.fetchone()[0] == EXPECTED


@pytest.mark.django_db
def test_a_hold_past_the_monthly_cap_is_refused_and_says_so(user: User) -> None:
    fund(user, 1_000_000)
    set_monthly_cap(user, 25_000)
    first, second = make_session(user), make_session(user)
    services.capture_epoch(first.pk, 1, 12_000, worker_id=WORKER)
    assert services.hold_epoch(first.pk, 2, worker_id=WORKER) == EXPECTED  # 22_000 of 25_000

    with pytest.raises(services.MonthlyCapReached) as refused:
        services.hold_epoch(second.pk, 1, worker_id=WORKER)

    assert (refused.value.cap_micros, refused.value.spent_micros) == (25_000, 22_000)
    assert not Hold.objects.filter(session=second).exists()
    set_monthly_cap(user, None)
    assert services.hold_epoch(second.pk, 1, worker_id=WORKER) == EXPECTED


@pytest.mark.django_db
def test_a_timed_prepayment_past_the_monthly_cap_is_refused_and_charges_nothing(user: User) -> None:
    account = fund(user, 1_000_000)
    set_monthly_cap(user, 59_999)
    timed = make_session(user, mode=TrainingSession.Mode.TIMED, time_budget_seconds=60)  # 60_000

    with pytest.raises(services.MonthlyCapReached, match="would pass this month's spending cap"):
        services.prepay_timed(timed)

    assert not LedgerLine.objects.filter(session=timed).exists()
    set_monthly_cap(user, 60_000)
    assert services.prepay_timed(timed).amount_micros == -60_000
    assert_ledger_consistent(account)


@pytest.mark.django_db(transaction=True)
def test_concurrent_holds_of_many_sessions_never_pass_the_monthly_cap(user: User) -> None:
    account = fund(user, 10_000_000)
    set_monthly_cap(user, 45_000)  # room for four holds of 10_000, not five
    sessions = [make_session(user) for _ in range(10)]
    outcomes: list[int | str] = []

    def hold(session_id: int) -> None:
        try:
            outcomes.append(services.hold_epoch(session_id, 1, worker_id=WORKER) or 0)
        except services.MonthlyCapReached:
            outcomes.append("capped")

    assert run_at_once([partial(hold, session.pk) for session in sessions]) == []

    assert sorted(outcomes, key=str) == [EXPECTED] * 4 + ["capped"] * 6
    account.refresh_from_db()
    assert account.held_micros == 40_000 == sum(Hold.objects.values_list("amount_micros", flat=True))
    assert month_spend(user) == 40_000


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("round_", range(5))
def test_a_timed_prepayment_racing_epoch_holds_never_passes_the_monthly_cap(user: User, round_: int) -> None:
    account = fund(user, 10_000_000)
    set_monthly_cap(user, 25_000)
    timed = make_session(user, mode=TrainingSession.Mode.TIMED, time_budget_seconds=20)  # 20_000
    epochs = [make_session(user) for _ in range(2)]  # 10_000 each
    outcomes: dict[str, str] = {}

    def prepay() -> None:
        try:
            services.prepay_timed(timed)
            outcomes["timed"] = "paid"
        except services.MonthlyCapReached:
            outcomes["timed"] = "capped"

    def hold(session_id: int) -> None:
        try:
            services.hold_epoch(session_id, 1, worker_id=WORKER)
            outcomes[str(session_id)] = "held"
        except services.MonthlyCapReached:
            outcomes[str(session_id)] = "capped"

    assert run_at_once([prepay, *(partial(hold, session.pk) for session in epochs)]) == []

    spent = month_spend(user)
    assert spent <= 25_000
    paid = 20_000 if outcomes["timed"] == "paid" else 0
    held = 10_000 * sum(outcomes[str(session.pk)] == "held" for session in epochs)
    assert spent == paid + held
    assert spent == 20_000  # whichever came first, what fits next is refused: never both kinds past the cap
    assert_ledger_consistent(account)
