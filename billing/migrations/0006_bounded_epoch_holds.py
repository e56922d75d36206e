"""The per-epoch functions, version 2 (billing.services.hold_epoch / capture_epoch).

- ``billing_hold_epoch`` takes the worker and an amount: it opens the epoch's hold
  at its expected cost, or grows an open hold to at least ``p_at_least`` (the
  engine grows it in steps while the epoch runs, so spend stays bounded), and
  returns the amount now held, or -1 when the available balance cannot cover it.
- Both functions require the session to be active and owned by the calling worker,
  read after the account lock (a fresh snapshot), else raise SQLSTATE HS403: a
  worker whose session was requeued, stopped or ended can neither hold nor charge.
- The hourly price is the session's own, fixed at Start (training 0003), not the
  instance type's current one.
- The held amount is no longer clamped at zero: drift now fails the CHECK loudly.

The rules otherwise are those of 0005 and billing/services.py's docstring.
"""

from importlib import import_module

from django.db import migrations

# The account of a session's owner, row-locked, with the session's billing facts;
# NULL account id when the owner has no account yet (the caller creates it). Then,
# in a fresh snapshot taken after the lock, the session must be active on this worker.
LOCK = """
    SELECT a.id, a.balance_micros, a.held_micros, s.mode, s.price_per_hour_micros,
           s.model_id, s.instance_type_id, t.reference_epoch_seconds
      INTO v_account_id, v_balance, v_held, v_session_mode, v_price_per_hour, v_model_id, v_instance_type_id,
           v_reference_seconds
      FROM billing_account a
      JOIN training_trainingsession s ON s.owner_id = a.user_id
      JOIN training_instancetype t ON t.id = s.instance_type_id
     WHERE s.id = p_session_id
       FOR UPDATE OF a;
    -- Taken after the lock (now() would be the transaction's start), so an account's
    -- lines are in the same order by time as by balance.
    v_now := clock_timestamp();
    IF v_account_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM training_trainingsession s
         WHERE s.id = p_session_id AND s.worker_id = p_worker_id
           AND s.status IN ('initializing', 'training', 'stopping')
    ) THEN
        RAISE EXCEPTION 'session % is not active on worker %', p_session_id, p_worker_id USING ERRCODE = 'HS403';
    END IF;
"""

LOCK_VARIABLES = """
    v_account_id bigint;
    v_balance bigint;
    v_held bigint;
    v_session_mode text;
    v_price_per_hour bigint;
    v_model_id bigint;
    v_instance_type_id bigint;
    v_reference_seconds integer;
    v_now timestamptz;
"""

HOLD_EPOCH = f"""
CREATE FUNCTION billing_hold_epoch(p_session_id bigint, p_worker_id text, p_epoch integer, p_at_least bigint)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    {LOCK_VARIABLES}
    v_hold_id bigint;
    v_hold_status text;
    v_hold_amount bigint;
    v_charged bigint;
    v_wanted bigint;
    v_extra bigint;
BEGIN
    {LOCK}
    IF v_account_id IS NULL THEN
        RETURN NULL;
    END IF;
    IF v_session_mode = 'timed' THEN
        RETURN 0;  -- prepaid
    END IF;
    SELECT h.id, h.status, h.amount_micros INTO v_hold_id, v_hold_status, v_hold_amount
      FROM billing_hold h WHERE h.session_id = p_session_id AND h.epoch = p_epoch;
    IF v_hold_status = 'captured' THEN
        RETURN v_hold_amount;  -- charged already: nothing more to reserve
    END IF;
    SELECT -l.amount_micros INTO v_charged FROM billing_ledgerline l
     WHERE l.kind = 'epoch_charge' AND l.session_id = p_session_id AND l.epoch = p_epoch;
    IF FOUND THEN
        RETURN v_charged;
    END IF;
    v_wanted := COALESCE(
        p_at_least,
        -- rounded down, as epoch_cost_micros
        billing_expected_epoch_ms(p_session_id, v_model_id, v_instance_type_id, v_reference_seconds)
            * v_price_per_hour / 3600000);
    IF v_hold_status = 'open' THEN
        IF v_hold_amount >= v_wanted THEN
            RETURN v_hold_amount;
        END IF;
        v_extra := v_wanted - v_hold_amount;
    ELSE
        v_extra := v_wanted;
    END IF;
    IF v_balance - v_held < v_extra THEN
        RETURN -1;
    END IF;
    IF v_hold_id IS NULL THEN
        INSERT INTO billing_hold (account_id, session_id, epoch, amount_micros, status, created_at)
        VALUES (v_account_id, p_session_id, p_epoch, v_wanted, 'open', v_now);
    ELSE  -- grown, or released earlier (a crash before the epoch completed) and needed again
        UPDATE billing_hold SET status = 'open', amount_micros = v_wanted, closed_at = NULL WHERE id = v_hold_id;
    END IF;
    UPDATE billing_account SET held_micros = v_held + v_extra, updated_at = v_now WHERE id = v_account_id;
    RETURN v_wanted;
END
$$;
"""

CAPTURE_EPOCH = f"""
CREATE FUNCTION billing_capture_epoch(p_session_id bigint, p_worker_id text, p_epoch integer, p_duration_ms bigint)
RETURNS SETOF billing_ledgerline
LANGUAGE plpgsql AS $$
DECLARE
    {LOCK_VARIABLES}
    v_captured bigint;
    v_cost bigint;
    v_shortfall bigint;
    v_line billing_ledgerline;
    v_reference text := format('session %s epoch %s', p_session_id, p_epoch);
BEGIN
    {LOCK}
    IF v_account_id IS NULL OR v_session_mode = 'timed' THEN
        RETURN;  -- no row: the caller creates the account, or there is nothing to charge
    END IF;
    UPDATE billing_hold SET status = 'captured', closed_at = v_now
     WHERE session_id = p_session_id AND epoch = p_epoch AND status = 'open'
    RETURNING amount_micros INTO v_captured;
    IF v_captured IS NULL THEN
        -- No open hold: a redelivery of a charged epoch (return its line), or an epoch
        -- that ran without a hold. An open hold proves it was not charged: a capture
        -- closes the hold in the same transaction as the charge.
        SELECT * INTO v_line FROM billing_ledgerline l
         WHERE l.kind = 'epoch_charge' AND l.session_id = p_session_id AND l.epoch = p_epoch;
        IF FOUND THEN
            RETURN NEXT v_line;
            RETURN;
        END IF;
        v_captured := 0;
    END IF;
    v_cost := p_duration_ms * v_price_per_hour / 3600000;
    -- The engine never submits an epoch that costs more than its hold (it grows the
    -- hold or pauses first), so this only runs when staff took money held for a
    -- running epoch: the shortfall is written off, visibly, as its own line.
    v_shortfall := v_cost - v_balance;
    IF v_shortfall > 0 THEN
        v_balance := v_balance + v_shortfall;
        INSERT INTO billing_ledgerline (account_id, kind, amount_micros, balance_after_micros, session_id, epoch,
                                        reference, reason, created_at)
        VALUES (v_account_id, 'write_off', v_shortfall, v_balance, p_session_id, p_epoch, v_reference,
                'The balance could not cover the whole epoch; the rest is written off.', v_now);
    END IF;
    v_balance := v_balance - v_cost;
    INSERT INTO billing_ledgerline (account_id, kind, amount_micros, balance_after_micros, session_id, epoch,
                                    duration_ms, price_per_hour_micros, reference, reason, created_at)
    VALUES (v_account_id, 'epoch_charge', -v_cost, v_balance, p_session_id, p_epoch, p_duration_ms, v_price_per_hour,
            v_reference, '', v_now)
    RETURNING * INTO v_line;
    UPDATE billing_account SET balance_micros = v_balance, held_micros = v_held - v_captured, updated_at = v_now
     WHERE id = v_account_id;
    RETURN NEXT v_line;
END
$$;
"""

def _previous(name: str) -> str:
    """A function's 0005 definition, to restore it when this migration is reversed."""
    return str(getattr(import_module("billing.migrations.0005_epoch_billing_functions"), name))


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0005_epoch_billing_functions"),
        ("training", "0003_session_price"),
    ]

    operations = [
        migrations.RunSQL(
            "DROP FUNCTION billing_hold_epoch(bigint, integer);", _previous("HOLD_EPOCH")
        ),
        migrations.RunSQL(
            "DROP FUNCTION billing_capture_epoch(bigint, integer, bigint);", _previous("CAPTURE_EPOCH")
        ),
        migrations.RunSQL(HOLD_EPOCH, "DROP FUNCTION billing_hold_epoch(bigint, text, integer, bigint);"),
        migrations.RunSQL(CAPTURE_EPOCH, "DROP FUNCTION billing_capture_epoch(bigint, text, integer, bigint);"),
    ]
