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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import Sum
from django.utils import timezone

from billing.models import Account, Hold, LedgerLine
from billing.money import MICROS_PER_CENT, format_usd
from billing.signals import balance_credited
from training.models import EpochRecord, InstanceType, TrainingSession

if TYPE_CHECKING:
    from hubsite.models import User

MS_PER_HOUR = 3_600_000
SECONDS_PER_HOUR = 3_600
RECENT_EPOCHS_FOR_ESTIMATE = 3

Kind = LedgerLine.Kind


class InsufficientBalance(Exception):
    """The available balance cannot pay for what was asked; says how much is missing."""

    def __init__(self, missing_micros: int, *, needed_for: str = "start training") -> None:
        self.missing_micros = missing_micros
        # Shown to people: rounded up to the cent, so topping up that much is enough.
        shown = -(-missing_micros // MICROS_PER_CENT) * MICROS_PER_CENT
        super().__init__(f"Your available balance is {format_usd(shown)} short to {needed_for}. Top up and try again.")


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
    else the instance type's ``reference_epoch_seconds``."""
    instance_type = session.instance_type
    return _expected_cost(
        session.pk,
        session.model_id,
        session.instance_type_id,
        instance_type.reference_epoch_seconds,
        instance_type.price_per_hour_micros,
    )


def _expected_cost(
    session_id: int, model_id: int, instance_type_id: int, reference_epoch_seconds: int, price_per_hour_micros: int
) -> int:
    longest = _scalar(f"SELECT {_RECENT_DURATION_SQL}", [session_id, model_id, instance_type_id])
    return _cost_from_recent(longest, reference_epoch_seconds, price_per_hour_micros)


def _cost_from_recent(longest_ms: int | None, reference_epoch_seconds: int, price_per_hour_micros: int) -> int:
    duration_ms = int(longest_ms) if longest_ms is not None else reference_epoch_seconds * 1000
    return epoch_cost_micros(duration_ms, price_per_hour_micros)


# The longest of the session's last three epochs, else of the model's last three on the
# same instance type; NULL when neither has any. Parameters: session, model, instance type.
_RECENT_DURATION_SQL = (
    f"COALESCE((SELECT MAX(d) FROM (SELECT duration_ms AS d FROM {EpochRecord._meta.db_table} "  # noqa: S608
    f"WHERE session_id = %s ORDER BY epoch DESC LIMIT {RECENT_EPOCHS_FOR_ESTIMATE}) recent), "
    f"(SELECT MAX(d) FROM (SELECT r.duration_ms AS d FROM {EpochRecord._meta.db_table} r "
    f"JOIN {TrainingSession._meta.db_table} o ON o.id = r.session_id WHERE r.model_id = %s "
    f"AND o.instance_type_id = %s ORDER BY r.epoch DESC LIMIT {RECENT_EPOCHS_FOR_ESTIMATE}) earlier))"
)


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


def require_start_balance(account: Account) -> None:
    """Epochs mode: Start and Resume need ``BILLING_MIN_START_BALANCE_MICROS`` available."""
    minimum: int = settings.BILLING_MIN_START_BALANCE_MICROS
    available = account.balance_micros - account.held_micros
    if available < minimum:
        raise InsufficientBalance(
            minimum - available, needed_for=f"start training (the minimum is {format_usd(minimum)})"
        )


# --- Epochs mode: hold, capture, release ----------------------------------------------


@dataclass(frozen=True)
class _Locked:
    """A session's owner's account, row-locked, and what billing needs of the session."""

    account: Account
    mode: str
    price_per_hour_micros: int
    model_id: int
    instance_type_id: int
    reference_epoch_seconds: int


_ACCOUNT_COLUMNS = [field.column for field in Account._meta.concrete_fields]


def _lock_for_session(session_id: int) -> _Locked:
    """Lock the account of the session's owner and read the session's billing facts.

    One plain SQL statement: this runs twice per epoch for every training session,
    and the ORM's query building cost more than the database work (see
    docs/benchmarks.md). SQLite (the demo) has no FOR UPDATE; its IMMEDIATE
    transactions take the write lock at BEGIN instead."""
    columns = ", ".join(f"a.{column}" for column in _ACCOUNT_COLUMNS)
    sql = (
        f"SELECT {columns}, s.mode, t.price_per_hour_micros, s.model_id, s.instance_type_id, "  # noqa: S608
        f"t.reference_epoch_seconds FROM {Account._meta.db_table} a "
        f"JOIN {TrainingSession._meta.db_table} s ON s.owner_id = a.user_id "
        f"JOIN {InstanceType._meta.db_table} t ON t.id = s.instance_type_id WHERE s.id = %s"
    )
    if connection.features.has_select_for_update:
        sql += " FOR UPDATE OF a"
    with connection.cursor() as cursor:
        cursor.execute(sql, [session_id])
        row = cursor.fetchone()
    if row is None:  # no account yet (a user from before billing), or no such session (.get raises)
        _lock_user_account(TrainingSession.objects.values_list("owner_id", flat=True).get(pk=session_id))
        return _lock_for_session(session_id)
    width = len(_ACCOUNT_COLUMNS)
    account = Account.from_db(connection.alias, [f.attname for f in Account._meta.concrete_fields], row[:width])
    mode, price, model_id, instance_type_id, reference_seconds = row[width:]
    return _Locked(account, mode, price, model_id, instance_type_id, reference_seconds)


def _epoch_state(locked: _Locked, session_id: int, epoch: int) -> tuple[int | None, str | None, bool, int | None]:
    """(hold id, hold status, already charged, longest recent epoch ms) for one epoch,
    in one statement, read after the lock."""
    hold, line = Hold._meta.db_table, LedgerLine._meta.db_table
    sql = (
        f"SELECT (SELECT id FROM {hold} WHERE session_id = %s AND epoch = %s), "  # noqa: S608
        f"(SELECT status FROM {hold} WHERE session_id = %s AND epoch = %s), "
        f"EXISTS (SELECT 1 FROM {line} WHERE kind = %s AND session_id = %s AND epoch = %s), "
        f"{_RECENT_DURATION_SQL}"
    )
    params: list[int | str] = [session_id, epoch, session_id, epoch, Kind.EPOCH_CHARGE, session_id, epoch]
    params += [session_id, locked.model_id, locked.instance_type_id]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        hold_id, status, charged, longest = cursor.fetchone()
    return hold_id, status, bool(charged), longest


def hold_epoch(session_id: int, epoch: int) -> bool:
    """Reserve the expected cost of ``epoch`` before it starts (its own transaction).

    True when the epoch may run: a hold is open (new or from an earlier call), the
    epoch was already charged, or the session is Timed (prepaid). False, and no hold,
    when the available balance cannot cover the expected cost: the engine pauses."""
    with transaction.atomic():
        locked = _lock_for_session(session_id)
        if locked.mode == TrainingSession.Mode.TIMED:
            return True
        account = locked.account
        hold_id, hold_status, charged, longest_ms = _epoch_state(locked, session_id, epoch)
        if charged or hold_status in (Hold.Status.OPEN, Hold.Status.CAPTURED):
            return True  # a repeated call, or already charged: nothing more to reserve
        cost = _cost_from_recent(longest_ms, locked.reference_epoch_seconds, locked.price_per_hour_micros)
        if account.balance_micros - account.held_micros < cost:
            return False
        held = account.held_micros + cost
        if hold_id is None:
            hold = Hold(account=account, session_id=session_id, epoch=epoch, amount_micros=cost)
            _insert(hold, then_save=account, held_micros=held)
        else:  # released earlier (a crash before the epoch completed), needed again on redelivery
            Hold.objects.filter(pk=hold_id).update(status=Hold.Status.OPEN, amount_micros=cost, closed_at=None)
            _save_account(account, held_micros=held)
        return True


def capture_epoch(session_id: int, epoch: int, duration_ms: int) -> LedgerLine | None:
    """Charge a completed epoch at its actual cost and close its hold (own transaction).

    Idempotent: a second call for the same session and epoch returns the first line.
    A cost above the balance writes off the shortfall first (its own line). Timed
    sessions are prepaid: nothing is charged and None is returned."""
    with transaction.atomic():
        locked = _lock_for_session(session_id)
        if locked.mode == TrainingSession.Mode.TIMED:
            return None
        account = locked.account
        held = account.held_micros
        captured = _capture_open_hold(session_id, epoch)
        if captured is None:
            # No open hold: either a redelivery of a charged epoch (return its line) or
            # an epoch that ran without a hold. An open hold proves it was not charged:
            # a capture closes the hold in the same transaction as the charge.
            existing = LedgerLine.objects.filter(kind=Kind.EPOCH_CHARGE, session_id=session_id, epoch=epoch).first()
            if existing is not None:
                return existing
        else:
            held -= captured
        cost = epoch_cost_micros(duration_ms, locked.price_per_hour_micros)
        reference = f"session {session_id} epoch {epoch}"
        balance = account.balance_micros
        shortfall = cost - balance
        if shortfall > 0:
            balance += shortfall
            write_off = LedgerLine(
                account=account,
                kind=Kind.WRITE_OFF,
                amount_micros=shortfall,
                balance_after_micros=balance,
                session_id=session_id,
                epoch=epoch,
                reference=reference,
                reason="The balance could not cover the whole epoch; the rest is written off.",
            )
            _insert(write_off)
        balance -= cost
        charge = LedgerLine(
            account=account,
            kind=Kind.EPOCH_CHARGE,
            amount_micros=-cost,
            balance_after_micros=balance,
            session_id=session_id,
            epoch=epoch,
            duration_ms=duration_ms,
            price_per_hour_micros=locked.price_per_hour_micros,
            reference=reference,
        )
        _insert(charge, then_save=account, balance_micros=balance, held_micros=max(0, held))
        return charge


def _capture_open_hold(session_id: int, epoch: int) -> int | None:
    """Mark the open hold of (session, epoch) captured; its amount, or None if none was
    open. One statement (UPDATE ... RETURNING, PostgreSQL and SQLite alike)."""
    table = Hold._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET status = %s, closed_at = %s "  # noqa: S608 - table name from the model
            "WHERE session_id = %s AND epoch = %s AND status = %s RETURNING amount_micros",
            [Hold.Status.CAPTURED, timezone.now(), session_id, epoch, Hold.Status.OPEN],
        )
        row = cursor.fetchone()
    return None if row is None else int(row[0])


def release_holds(session_id: int) -> None:
    """Release every open hold of a session (stop, fail, pause, crash). Idempotent."""
    with transaction.atomic():
        account = _lock_for_session(session_id).account
        holds = Hold.objects.filter(session_id=session_id, status=Hold.Status.OPEN)
        total = int(holds.aggregate(total=Sum("amount_micros"))["total"] or 0)
        if not holds.update(status=Hold.Status.RELEASED, closed_at=timezone.now()):
            return
        _save_account(account, held_micros=max(0, account.held_micros - total))


# --- Timed mode ----------------------------------------------------------------------


def prepay_timed(session: TrainingSession) -> LedgerLine:
    """Pay a Timed session's price from the balance: one ``timed_prepayment`` line.

    Runs inside the caller's transaction (the Start, or the Stripe Pay Now webhook
    right after its top-up) and locks the account. Idempotent per session. Raises
    InsufficientBalance when the available balance cannot pay."""
    if session.mode != TrainingSession.Mode.TIMED or not session.time_budget_seconds:
        raise ValueError("only a Timed session with a time budget is prepaid")
    with transaction.atomic():
        account = _lock_user_account(session.owner_id)
        existing = LedgerLine.objects.filter(kind=Kind.TIMED_PREPAYMENT, session_id=session.pk).first()
        if existing is not None:
            return existing
        price_per_hour = session.instance_type.price_per_hour_micros
        price = timed_price_micros(session.time_budget_seconds, price_per_hour)
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
    when the session has no prepayment."""
    with transaction.atomic():
        account = _lock_for_session(session_id).account
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
        return _append(
            account,
            Kind.TIMED_REFUND,
            refund,
            session_id=session_id,
            duration_ms=(budget_seconds - used) * 1000,
            price_per_hour_micros=price_per_hour,
            reference=f"session {session_id} refund ({used} s used)",
        )


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


def _lock_user_account(user_id: int) -> Account:
    account, _ = Account.objects.select_for_update().get_or_create(user_id=user_id)
    return account


_ACCOUNT_UPDATE_SQL = (
    f"UPDATE {Account._meta.db_table} SET balance_micros = %s, held_micros = %s, "  # noqa: S608
    "updated_at = %s WHERE id = %s"
)


def _account_update(account: Account, values: dict[str, int]) -> list[Any]:
    """Set the locked account's new balance and/or held amount; the UPDATE's parameters."""
    for name, value in values.items():
        setattr(account, name, value)
    account.updated_at = timezone.now()
    return [account.balance_micros, account.held_micros, account.updated_at, account.pk]


def _save_account(account: Account, **values: int) -> None:
    """Write the locked account's new balance and/or held amount (one UPDATE)."""
    params = _account_update(account, values)
    with connection.cursor() as cursor:
        cursor.execute(_ACCOUNT_UPDATE_SQL, params)


def _insert(obj: models.Model, *, then_save: Account | None = None, **account_values: int) -> None:
    """INSERT one new row, as ``obj.save()`` would, without the ORM's query building
    (the epoch hot path inserts a hold and a line per epoch; see docs/benchmarks.md).
    Fills ``auto_now_add`` fields and sets the new primary key.

    With ``then_save``, also writes that locked account's new amounts: on PostgreSQL
    in the same statement (a data-modifying WITH), saving a round trip per charge."""
    meta = obj._meta
    fields = [field for field in meta.concrete_fields if not field.primary_key]
    if not connection.features.can_return_columns_from_insert:  # pragma: no cover - old SQLite only
        obj.save(force_insert=True)
        if then_save is not None:
            _save_account(then_save, **account_values)
        return
    values = [field.get_db_prep_save(field.pre_save(obj, True), connection) for field in fields]
    columns = ", ".join(connection.ops.quote_name(field.column or field.attname) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    pk = meta.pk
    assert pk is not None
    insert = (
        f"INSERT INTO {connection.ops.quote_name(meta.db_table)} ({columns}) "  # noqa: S608
        f"VALUES ({placeholders}) RETURNING {connection.ops.quote_name(pk.column or pk.attname)}"
    )
    with connection.cursor() as cursor:
        if then_save is not None and connection.vendor == "postgresql":
            update = _account_update(then_save, account_values)
            statement = f"WITH ins AS ({insert}), upd AS ({_ACCOUNT_UPDATE_SQL}) SELECT * FROM ins"  # noqa: S608
            cursor.execute(statement, values + update)
            obj.pk = cursor.fetchone()[0]
        else:
            cursor.execute(insert, values)
            obj.pk = cursor.fetchone()[0]
            if then_save is not None:
                cursor.execute(_ACCOUNT_UPDATE_SQL, _account_update(then_save, account_values))
    obj._state.adding = False
    obj._state.db = connection.alias


def _scalar(sql: str, params: list[int]) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else row[0]


def _append(account: Account, kind: str, amount_micros: int, **fields: object) -> LedgerLine:
    """Append one line and move the (locked) account's balance by its amount."""
    balance = account.balance_micros + amount_micros
    line = LedgerLine(account=account, kind=kind, amount_micros=amount_micros, balance_after_micros=balance, **fields)
    _insert(line, then_save=account, balance_micros=balance)
    return line


def _announce_credit(account: Account) -> None:
    """After commit, tell listeners (auto-resume after a top-up) that money arrived."""
    account_id, user_id = account.pk, account.user_id
    transaction.on_commit(lambda: balance_credited.send(sender=Account, account_id=account_id, user_id=user_id))
