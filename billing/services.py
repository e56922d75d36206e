"""Every money operation, as one verb function each. Nothing else writes ledger lines.

The rules (docs/billing.md has the long form):

- A balance changes only by appending a ``LedgerLine`` in the same transaction,
  with the account row locked (``SELECT ... FOR UPDATE``). Every function here
  locks the account first and only then reads holds and lines, so two of them on
  one account always run one after the other and never deadlock.
- Amounts are integer micro-dollars. An epoch costs
  ``duration_ms * price_per_hour_micros // 3_600_000``: rounded *down* to the whole
  micro-dollar, so a customer is never billed more than the exact price (the
  difference is below US$0.000001 per epoch). Timed prices use the same rule.
- A charge never takes the balance below zero: the part the balance cannot cover is
  written off first, as its own ``write_off`` line (a credit), and the charge line
  then records the full cost. Sum of lines == balance, at every line.
- Each epoch is charged once (unique key on session and epoch); a second call of
  ``capture_epoch`` returns the first line. Prepayment, refund and top-up are
  idempotent the same way.

The two verbs that run for every epoch, ``hold_epoch`` and ``capture_epoch``, are
PostgreSQL functions (``billing/migrations/0006_bounded_epoch_holds.py``) that
follow these rules; one call each is one round trip and one transaction, which is
what the charges benchmark needs (docs/benchmarks.md, "Epoch charges").
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Sum
from django.utils import timezone

from billing.models import Account, CheckoutSession, Hold, LedgerLine
from billing.money import MICROS_PER_CENT, cents_to_micros, format_usd
from billing.signals import balance_credited
from training.models import TrainingSession

if TYPE_CHECKING:
    from hubsite.models import User

MS_PER_HOUR = 3_600_000
SECONDS_PER_HOUR = 3_600

Kind = LedgerLine.Kind


SESSION_NOT_ACTIVE_SQLSTATE = "HS403"


class SessionNotActive(Exception):
    """A worker asked to hold or charge for a session it no longer runs (requeued,
    stopped or ended meanwhile): nothing was held or charged."""


class InsufficientBalance(Exception):
    """The available balance cannot pay for what was asked; says how much is missing."""

    def __init__(self, missing_micros: int, *, needed_for: str = "start training") -> None:
        self.missing_micros = missing_micros
        # Shown to people: rounded up to the cent, so topping up that much is enough.
        shown = -(-missing_micros // MICROS_PER_CENT) * MICROS_PER_CENT
        super().__init__(f"Your available balance is {format_usd(shown)} short to {needed_for}. Top up and try again.")


class SpendingCapReached(Exception):
    """A hold or prepayment would pass a spending cap the user set; nothing was held or
    charged. A top-up does not help: only a higher cap (or none) does."""

    def __init__(self, message: str, *, cap_micros: int, spent_micros: int) -> None:
        super().__init__(message)
        self.cap_micros = cap_micros
        self.spent_micros = spent_micros


class SessionCapReached(SpendingCapReached):
    """The session's charges and open holds would pass its own cap: the session stops."""

    def __init__(self, *, cap_micros: int, spent_micros: int) -> None:
        super().__init__(
            f"It would pass this session's spending cap of {format_usd(cap_micros)} "
            f"({format_usd(spent_micros)} spent).",
            cap_micros=cap_micros,
            spent_micros=spent_micros,
        )


class MonthlyCapReached(SpendingCapReached):
    """This calendar month's (UTC) spend would pass the account's monthly cap."""

    def __init__(self, *, cap_micros: int, spent_micros: int, needed_micros: int = 0) -> None:
        if needed_micros:
            message = (
                f"This would pass this month's spending cap of {format_usd(cap_micros)} "
                f"({format_usd(spent_micros)} spent, {format_usd(needed_micros)} more needed). "
                "Raise it on the Billing page and try again."
            )
        else:
            message = (
                f"This month's spending cap of {format_usd(cap_micros)} is reached "
                f"({format_usd(spent_micros)} spent). Raise it on the Billing page and try again."
            )
        super().__init__(message, cap_micros=cap_micros, spent_micros=spent_micros)


# Why billing_hold_epoch refused a hold (it returns the amount held otherwise).
_REFUSED_FOR_BALANCE, _REFUSED_FOR_SESSION_CAP, _REFUSED_FOR_MONTHLY_CAP = -1, -2, -3


# --- prices ---------------------------------------------------------------------------


def epoch_cost_micros(duration_ms: int, price_per_hour_micros: int) -> int:
    """The cost of an epoch that took ``duration_ms`` of wall time (rounded down)."""
    if duration_ms < 0 or price_per_hour_micros < 0:
        raise ValueError("duration and price must not be negative")
    return duration_ms * price_per_hour_micros // MS_PER_HOUR


def timed_price_micros(seconds: int, price_per_hour_micros: int) -> int:
    """Hours x hourly price for a Timed session of ``seconds`` (exact for whole and
    half hours at any price in whole cents; otherwise rounded down)."""
    if seconds < 0 or price_per_hour_micros < 0:
        raise ValueError("seconds and price must not be negative")
    return seconds * price_per_hour_micros // SECONDS_PER_HOUR


def expected_epoch_cost(session: TrainingSession) -> int:
    """What the next epoch of ``session`` will probably cost, to hold before it starts.

    The longest of the session's last three epochs; for a session that has none yet,
    the longest of the model's last three epochs on the same instance type (a resume);
    else the instance type's ``reference_epoch_seconds``. The same PostgreSQL
    function as ``hold_epoch`` decides it (``billing_expected_epoch_ms``)."""
    instance_type = session.instance_type
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT billing_expected_epoch_ms(%s, %s, %s, %s)",
            [session.pk, session.model_id, instance_type.pk, instance_type.reference_epoch_seconds],
        )
        duration_ms = int(cursor.fetchone()[0])
    return epoch_cost_micros(duration_ms, session.price_per_hour_micros)


# --- accounts -------------------------------------------------------------------------


def account_for(user: User) -> Account:
    """The user's account, created on first use."""
    account, _ = Account.objects.get_or_create(user=user)
    return account


def lock_account(user_id: int) -> Account:
    """The user's account, row-locked until the caller's transaction ends.

    Must run inside ``transaction.atomic()``; the training engine's start uses it to
    serialize Starts per account and to read ``concurrent_session_limit``."""
    _require_transaction("lock_account")
    account, _ = Account.objects.select_for_update().get_or_create(user_id=user_id)
    return account


def month_spend_micros(account: Account) -> int:
    """What the account spent on training this calendar month (UTC): epoch charges and
    Timed prepayments less Timed refunds since the month began, plus every open hold.
    The PostgreSQL function ``billing_month_spend_micros`` decides it, the same one
    ``hold_epoch`` checks against the monthly cap."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT billing_month_spend_micros(%s, clock_timestamp())", [account.pk])
        return int(cursor.fetchone()[0] or 0)


def require_within_monthly_cap(account: Account, needed_micros: int = 0) -> None:
    """Start and Resume: refused when the month's spend has reached the account's cap
    (``needed_micros`` 0, Epochs mode: each hold is checked as it comes) or would pass
    it with ``needed_micros`` more (a Timed prepayment). Call it with the account
    row locked (``lock_account``) so that no hold slips in between."""
    cap = account.monthly_spending_cap_micros
    if cap is None:
        return
    spent = month_spend_micros(account)
    if spent + needed_micros > cap or (not needed_micros and spent >= cap):
        raise MonthlyCapReached(cap_micros=cap, spent_micros=spent, needed_micros=needed_micros)


def session_spend_micros(session_id: int) -> int:
    """A session's epoch charges plus its open holds: what its spending cap bounds."""
    charged = LedgerLine.objects.filter(kind=Kind.EPOCH_CHARGE, session_id=session_id).aggregate(
        total=Sum("amount_micros")
    )["total"]
    held = Hold.objects.filter(session_id=session_id, status=Hold.Status.OPEN).aggregate(total=Sum("amount_micros"))[
        "total"
    ]
    return -int(charged or 0) + int(held or 0)


def require_start_balance(account: Account) -> None:
    """Epochs mode: Start and Resume need ``BILLING_MIN_START_BALANCE_MICROS`` available."""
    minimum: int = settings.BILLING_MIN_START_BALANCE_MICROS
    available = account.balance_micros - account.held_micros
    if available < minimum:
        raise InsufficientBalance(
            minimum - available, needed_for=f"start training (the minimum is {format_usd(minimum)})"
        )


# --- Epochs mode: hold, capture, release ----------------------------------------------


def hold_epoch(session_id: int, epoch: int, *, worker_id: str, at_least_micros: int | None = None) -> int | None:
    """Reserve money for ``epoch`` of a session this worker runs (its own transaction,
    or the caller's); returns the amount now held for it, or None when the available
    balance cannot cover it (no hold is opened or grown: the engine pauses). Raises
    SessionCapReached (the engine stops the session) or MonthlyCapReached (it pauses)
    when the new amount would pass a spending cap; nothing is held then either.

    Without ``at_least_micros`` it opens the epoch's hold at its expected cost (before
    the epoch starts); with it, it grows the open hold to at least that much (while
    the epoch runs, so the hold always covers the time spent). An epoch already
    charged returns its charge, a Timed session (prepaid) 0. Raises SessionNotActive
    when the session is not active on ``worker_id``, checked under the account lock.
    One call of the PostgreSQL function ``billing_hold_epoch`` (billing/sql/)."""
    with _session_must_be_active(), connection.cursor() as cursor:
        cursor.execute("SELECT billing_hold_epoch(%s, %s, %s, %s)", [session_id, worker_id, epoch, at_least_micros])
        held = cursor.fetchone()[0]
    if held is None:  # the owner has no account yet
        _account_of_session_owner(session_id)
        return hold_epoch(session_id, epoch, worker_id=worker_id, at_least_micros=at_least_micros)
    if held == _REFUSED_FOR_SESSION_CAP:
        cap = TrainingSession.objects.values_list("spending_cap_micros", flat=True).get(pk=session_id)
        raise SessionCapReached(cap_micros=int(cap or 0), spent_micros=session_spend_micros(session_id))
    if held == _REFUSED_FOR_MONTHLY_CAP:
        account = Account.objects.get(user__training_sessions=session_id)
        raise MonthlyCapReached(
            cap_micros=int(account.monthly_spending_cap_micros or 0), spent_micros=month_spend_micros(account)
        )
    return None if held < 0 else int(held)


# The function returns ledger rows; select their columns in the model's field order.
_LINE_FIELD_NAMES = [field.attname for field in LedgerLine._meta.concrete_fields]
_LINE_COLUMNS = ", ".join(str(field.column) for field in LedgerLine._meta.concrete_fields)
_CAPTURE_EPOCH_SQL = f"SELECT {_LINE_COLUMNS} FROM billing_capture_epoch(%s, %s, %s, %s)"  # noqa: S608 - column names


def capture_epoch(session_id: int, epoch: int, duration_ms: int, *, worker_id: str) -> LedgerLine | None:
    """Charge a completed epoch at its actual cost and close its hold (its own
    transaction, or the caller's).

    Idempotent: a second call for the same session and epoch returns the first line.
    A cost above the balance writes off the shortfall first (its own line). Timed
    sessions are prepaid: nothing is charged and None is returned. Raises
    SessionNotActive like ``hold_epoch``. One call of the PostgreSQL function
    ``billing_capture_epoch`` (billing/sql/)."""
    if duration_ms < 0:
        raise ValueError("duration must not be negative")
    with _session_must_be_active(), connection.cursor() as cursor:
        cursor.execute(_CAPTURE_EPOCH_SQL, [session_id, worker_id, epoch, duration_ms])
        row = cursor.fetchone()
    if row is not None:
        return LedgerLine.from_db(connection.alias, _LINE_FIELD_NAMES, row)
    if not Account.objects.filter(user__training_sessions=session_id).exists():  # the owner has no account yet
        _account_of_session_owner(session_id)
        return capture_epoch(session_id, epoch, duration_ms, worker_id=worker_id)
    return None  # a Timed session


@contextlib.contextmanager
def _session_must_be_active() -> Iterator[None]:
    """Turn the functions' SQLSTATE HS403 into SessionNotActive."""
    try:
        yield
    except DatabaseError as error:
        if getattr(error.__cause__, "sqlstate", None) == SESSION_NOT_ACTIVE_SQLSTATE:
            raise SessionNotActive(str(error.__cause__)) from error
        raise


def _account_of_session_owner(session_id: int) -> Account:
    owner_id = TrainingSession.objects.values_list("owner_id", flat=True).get(pk=session_id)
    account, _ = Account.objects.get_or_create(user_id=owner_id)
    return account


def release_holds(session_id: int) -> None:
    """Release every open hold of a session (stop, fail, pause, crash). Idempotent."""
    with transaction.atomic():
        account = _lock_session_owner_account(session_id)
        holds = Hold.objects.filter(session_id=session_id, status=Hold.Status.OPEN)
        total = int(holds.aggregate(total=Sum("amount_micros"))["total"] or 0)
        if not holds.update(status=Hold.Status.RELEASED, closed_at=timezone.now()):
            return
        _save_account(account, held_micros=account.held_micros - total)


# --- Timed mode ----------------------------------------------------------------------


def prepay_timed(session: TrainingSession) -> LedgerLine:
    """Pay a Timed session's price from the balance: one ``timed_prepayment`` line.

    Runs inside the caller's transaction (the Start, or the Stripe Pay Now webhook
    right after its top-up) and locks the account. Idempotent per session. Raises
    InsufficientBalance when the available balance cannot pay, MonthlyCapReached
    when the price would take this month's spend past the account's cap."""
    if session.mode != TrainingSession.Mode.TIMED or not session.time_budget_seconds:
        raise ValueError("only a Timed session with a time budget is prepaid")
    with transaction.atomic():
        account = _lock_user_account(session.owner_id)
        existing = LedgerLine.objects.filter(kind=Kind.TIMED_PREPAYMENT, session_id=session.pk).first()
        if existing is not None:
            return existing
        price_per_hour = session.price_per_hour_micros
        price = timed_price_micros(session.time_budget_seconds, price_per_hour)
        require_within_monthly_cap(account, price)
        available = account.balance_micros - account.held_micros
        if available < price:
            raise InsufficientBalance(price - available, needed_for="pay for this Timed session")
        return _append(
            account,
            Kind.TIMED_PREPAYMENT,
            -price,
            session_id=session.pk,
            duration_ms=session.time_budget_seconds * 1000,
            price_per_hour_micros=price_per_hour,
            reference=f"session {session.pk} prepayment",
        )


def refund_timed(session_id: int, used_seconds: int) -> LedgerLine | None:
    """Refund the unused part of a Timed session's prepayment (own transaction).

    unused = price - price of ``used_seconds`` (training time), never negative and
    never above the price. Exactly one ``timed_refund`` line per session, even when
    it is zero (the line marks the session settled); a second call returns it. None
    when the session has no prepayment.

    A Pay Now session whose card payment was refunded or disputed in Stripe while it
    ran gets the same line, followed in the same transaction by the take-back of that
    refund or dispute (``take_back_payment``, deferred until now): the card refund
    replaces the balance refund, so the customer is never paid twice."""
    with transaction.atomic():
        account = _lock_session_owner_account(session_id)
        existing = LedgerLine.objects.filter(kind=Kind.TIMED_REFUND, session_id=session_id).first()
        if existing is not None:
            return existing
        prepayment = LedgerLine.objects.filter(kind=Kind.TIMED_PREPAYMENT, session_id=session_id).first()
        if prepayment is None:
            return None
        price = -prepayment.amount_micros
        budget_seconds = (prepayment.duration_ms or 0) // 1000
        used = min(max(0, used_seconds), budget_seconds)
        price_per_hour = prepayment.price_per_hour_micros or 0
        refund = min(price, max(0, price - timed_price_micros(used, price_per_hour)))
        line = _append(
            account,
            Kind.TIMED_REFUND,
            refund,
            session_id=session_id,
            duration_ms=(budget_seconds - used) * 1000,
            price_per_hour_micros=price_per_hour,
            reference=f"session {session_id} refund ({used} s used)",
        )
        _take_back_stripe_payment_of(session_id)
        return line


def _take_back_stripe_payment_of(session_id: int) -> None:
    """The take-backs a Pay Now's refund or dispute deferred until its session ended.

    Read under the account lock that the Stripe webhook also takes before it decides
    to defer, so each refund or dispute is taken back once: here or by the webhook."""
    payment = CheckoutSession.objects.filter(
        training_session_id=session_id, purpose=CheckoutSession.Purpose.TIMED_PAY_NOW
    ).first()
    if payment is None:
        return
    deferred = (
        (Kind.PAYMENT_REFUND, payment.refunded_cents, payment.refund_reference, "refunded"),
        (
            Kind.DISPUTE,
            payment.disputed_cents if payment.dispute_takes_money else 0,
            payment.dispute_reference,
            "disputed",
        ),
    )
    for kind, cents, reference, happened in deferred:
        if cents:
            take_back_payment(
                payment.account_id,
                cents_to_micros(cents),
                kind=kind,
                reference=reference(),
                reason=f"Card payment {happened} in Stripe (checkout {payment.pk}) while the session ran",
                session_id=session_id,
            )


# --- Stripe refunds and disputes -----------------------------------------------------

_TAKE_BACK_KINDS = (Kind.PAYMENT_REFUND, Kind.DISPUTE, Kind.DISPUTE_REVERSAL)


def take_back_payment(
    account_id: int, amount_micros: int, *, kind: str, reference: str, reason: str, session_id: int | None = None
) -> LedgerLine | None:
    """Take back what a card payment bought when Stripe refunds or disputes
    ``amount_micros`` of it (own transaction, or the caller's).

    - A top-up (``session_id`` None): the amount, from the balance. Never below zero:
      what the balance cannot cover (the customer spent it) is written off first, as
      its own line.
    - A Pay Now (``session_id``: the Timed session it prepaid): at most the session's
      unused time, i.e. its balance refund less what earlier refunds and disputes of
      the payment took; the training time already used is not charged again. While
      the session has not ended (no ``timed_refund`` line yet) nothing is written and
      None is returned: ``refund_timed`` takes it back when the session ends.

    ``kind`` is ``payment_refund`` or ``dispute``. One line per (kind, ``reference``),
    written even when it takes nothing (it records the event); a second call returns it."""
    if kind not in (Kind.PAYMENT_REFUND, Kind.DISPUTE):
        raise ValueError("only a payment refund or a dispute is taken back")
    if amount_micros <= 0:
        raise ValueError("the amount taken back must be positive")
    with transaction.atomic():
        account = Account.objects.select_for_update().get(pk=account_id)
        existing = LedgerLine.objects.filter(kind=kind, reference=reference).first()
        if existing is not None:
            return existing
        take = amount_micros
        if session_id is not None:
            balance_refund = LedgerLine.objects.filter(kind=Kind.TIMED_REFUND, session_id=session_id).first()
            if balance_refund is None:
                return None  # still running: its end takes it back (refund_timed)
            taken = -int(
                LedgerLine.objects.filter(kind__in=_TAKE_BACK_KINDS, session_id=session_id).aggregate(
                    total=Sum("amount_micros")
                )["total"]
                or 0
            )
            take = min(amount_micros, max(0, balance_refund.amount_micros - taken))
            if take < amount_micros:
                reason = f"{reason}; {format_usd(amount_micros - take, 4)} of it paid for training already done"
        shortfall = take - account.balance_micros
        if shortfall > 0:
            _append(account, Kind.WRITE_OFF, shortfall, reference=reference, reason=f"Already spent: {reason}"[:500])
        return _append(account, kind, -take, session_id=session_id, reference=reference, reason=reason[:500])


def reverse_dispute(account_id: int, *, reference: str, reason: str) -> LedgerLine | None:
    """Return what a dispute took once it closes in the seller's favour (own
    transaction, or the caller's): one ``dispute_reversal`` line of what the
    ``dispute`` line with ``reference`` took from the balance, its write-off excluded
    (money the customer had already spent is not handed back). None when the dispute
    took nothing yet (a Pay Now whose session has not ended; it now never will);
    a second call returns the first line."""
    with transaction.atomic():
        account = Account.objects.select_for_update().get(pk=account_id)
        existing = LedgerLine.objects.filter(kind=Kind.DISPUTE_REVERSAL, reference=reference).first()
        if existing is not None:
            return existing
        dispute = LedgerLine.objects.filter(kind=Kind.DISPUTE, reference=reference, account=account).first()
        if dispute is None:
            return None
        written_off = int(
            LedgerLine.objects.filter(kind=Kind.WRITE_OFF, reference=reference, account=account).aggregate(
                total=Sum("amount_micros")
            )["total"]
            or 0
        )
        line = _append(
            account,
            Kind.DISPUTE_REVERSAL,
            -dispute.amount_micros - written_off,
            session_id=dispute.session_id,
            reference=reference,
            reason=reason[:500],
        )
        if line.amount_micros > 0:
            _announce_credit(account)
        return line


# --- credits and adjustments ---------------------------------------------------------


def credit_top_up(account_id: int, amount_micros: int, *, reference: str) -> LedgerLine:
    """Credit a paid top-up (own transaction, or the caller's). Idempotent per
    ``reference`` (the Stripe Checkout Session id): a second call returns the line."""
    if amount_micros <= 0:
        raise ValueError("a top-up must be positive")
    if not reference:
        raise ValueError("a top-up needs a reference")
    with transaction.atomic():
        account = Account.objects.select_for_update().get(pk=account_id)
        existing = LedgerLine.objects.filter(kind=Kind.TOP_UP, reference=reference).first()
        if existing is not None:
            if existing.account_id != account_id:
                raise ValueError(f"top-up {reference} was already credited to another account")
            return existing
        line = _append(account, Kind.TOP_UP, amount_micros, reference=reference)
        _announce_credit(account)
        return line


def adjust(
    account_id: int, amount_micros: int, *, staff_user: User | None, reason: str, reference: str = ""
) -> LedgerLine:
    """A manual correction by staff (or the demo seed), with a reason.

    A negative adjustment larger than the balance writes off what the balance cannot
    cover (its own line first), so the balance ends at zero, never below. With a
    ``reference``, a second call with the same one returns the first line."""
    reason = reason.strip()
    if amount_micros == 0:
        raise ValueError("an adjustment must not be zero")
    if not reason:
        raise ValueError("an adjustment needs a reason")
    with transaction.atomic():
        account = Account.objects.select_for_update().get(pk=account_id)
        if reference:
            existing = LedgerLine.objects.filter(account=account, kind=Kind.ADJUSTMENT, reference=reference).first()
            if existing is not None:
                return existing
        shortfall = -(account.balance_micros + amount_micros)
        if shortfall > 0:
            _append(
                account,
                Kind.WRITE_OFF,
                shortfall,
                reference=reference or "adjustment",
                reason=f"Adjustment larger than the balance: {reason}"[:500],
                created_by=staff_user,
            )
        line = _append(
            account, Kind.ADJUSTMENT, amount_micros, reference=reference, reason=reason[:500], created_by=staff_user
        )
        if amount_micros > 0:
            _announce_credit(account)
        return line


# --- internals -----------------------------------------------------------------------


def _require_transaction(name: str) -> None:
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError(f"{name} must run inside transaction.atomic()")


def _lock_session_owner_account(session_id: int) -> Account:
    return _lock_user_account(TrainingSession.objects.values_list("owner_id", flat=True).get(pk=session_id))


def _lock_user_account(user_id: int) -> Account:
    account, _ = Account.objects.select_for_update().get_or_create(user_id=user_id)
    return account


def _save_account(account: Account, **values: int) -> None:
    """Write the locked account's new balance and/or held amount."""
    for name, value in values.items():
        setattr(account, name, value)
    account.save(update_fields=[*values, "updated_at"])


def _append(account: Account, kind: str, amount_micros: int, **fields: object) -> LedgerLine:
    """Append one line and move the (locked) account's balance by its amount."""
    balance = account.balance_micros + amount_micros
    line = LedgerLine.objects.create(
        account=account, kind=kind, amount_micros=amount_micros, balance_after_micros=balance, **fields
    )
    _save_account(account, balance_micros=balance)
    return line


def _announce_credit(account: Account) -> None:
    """After commit, tell listeners (auto-resume after a top-up) that money arrived."""
    account_id, user_id = account.pk, account.user_id
    transaction.on_commit(lambda: balance_credited.send(sender=Account, account_id=account_id, user_id=user_id))
