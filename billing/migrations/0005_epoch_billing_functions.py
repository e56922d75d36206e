"""The per-epoch money path as PostgreSQL functions: billing_hold_epoch and
billing_capture_epoch (called by billing.services.hold_epoch / capture_epoch), and
billing_expected_epoch_ms, the estimate a hold reserves (also behind
billing.services.expected_epoch_cost).

They run twice per epoch for every training session; as functions each is one round
trip and one transaction instead of about five (see docs/benchmarks.md, "Epoch
charges"). The rules are those of billing/services.py's module docstring: lock the
account first, then read; an epoch is charged once; a charge never takes the balance
below zero (the shortfall is written off first, as its own line).

Each statement inside a function takes a fresh snapshot (READ COMMITTED), so what
is read after the account lock includes everything committed before the lock was
granted, as in the Python verbs.

A later change to any of them is a new migration with CREATE OR REPLACE.
"""

from django.db import migrations

# The account of a session's owner, row-locked, with the session's billing facts.
# NULL account id when the owner has no account yet (the caller creates it).
LOCK = """
    SELECT a.id, a.balance_micros, a.held_micros, s.mode, t.price_per_hour_micros,
           s.model_id, s.instance_type_id, t.reference_epoch_seconds
      INTO v_account_id, v_balance, v_held, v_session_mode, v_price_per_hour, v_model_id, v_instance_type_id, v_reference_seconds
      FROM billing_account a
      JOIN training_trainingsession s ON s.owner_id = a.user_id
      JOIN training_instancetype t ON t.id = s.instance_type_id
     WHERE s.id = p_session_id
       FOR UPDATE OF a;
    -- Taken after the lock (now() would be the transaction's start), so an account's
    -- lines are in the same order by time as by balance.
    v_now := clock_timestamp();
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

# How long the next epoch of a session will probably take, to hold its cost: the
# longest of the session's last three epochs, else of the model's last three on the
# same instance type (a resume), else the instance type's reference time.
EXPECTED_EPOCH_MS = """
CREATE FUNCTION billing_expected_epoch_ms(
    p_session_id bigint, p_model_id bigint, p_instance_type_id bigint, p_reference_seconds integer
) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(
        (SELECT max(d) FROM (SELECT r.duration_ms AS d FROM training_epochrecord r
                              WHERE r.session_id = p_session_id ORDER BY r.epoch DESC LIMIT 3) recent),
        (SELECT max(d) FROM (SELECT r.duration_ms AS d FROM training_epochrecord r
                               JOIN training_trainingsession o ON o.id = r.session_id
                              WHERE r.model_id = p_model_id AND o.instance_type_id = p_instance_type_id
                              ORDER BY r.epoch DESC LIMIT 3) earlier),
        p_reference_seconds * 1000::bigint)
$$;
"""

HOLD_EPOCH = f"""
CREATE FUNCTION billing_hold_epoch(p_session_id bigint, p_epoch integer) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    {LOCK_VARIABLES}
    v_hold_id bigint;
    v_hold_status text;
    v_expected_ms bigint;
    v_cost bigint;
BEGIN
    {LOCK}
    IF v_account_id IS NULL THEN
        RETURN NULL;
    END IF;
    IF v_session_mode = 'timed' THEN
        RETURN true;  -- prepaid
    END IF;
    SELECT h.id, h.status INTO v_hold_id, v_hold_status
      FROM billing_hold h WHERE h.session_id = p_session_id AND h.epoch = p_epoch;
    IF v_hold_status IN ('open', 'captured') OR EXISTS (
        SELECT 1 FROM billing_ledgerline l
         WHERE l.kind = 'epoch_charge' AND l.session_id = p_session_id AND l.epoch = p_epoch
    ) THEN
        RETURN true;  -- a repeated call, or already charged: nothing more to reserve
    END IF;
    v_expected_ms := billing_expected_epoch_ms(p_session_id, v_model_id, v_instance_type_id, v_reference_seconds);
    v_cost := v_expected_ms * v_price_per_hour / 3600000;  -- rounded down, as epoch_cost_micros
    IF v_balance - v_held < v_cost THEN
        RETURN false;
    END IF;
    IF v_hold_id IS NULL THEN
        INSERT INTO billing_hold (account_id, session_id, epoch, amount_micros, status, created_at)
        VALUES (v_account_id, p_session_id, p_epoch, v_cost, 'open', v_now);
    ELSE  -- released earlier (a crash before the epoch completed), needed again on redelivery
        UPDATE billing_hold SET status = 'open', amount_micros = v_cost, closed_at = NULL WHERE id = v_hold_id;
    END IF;
    UPDATE billing_account SET held_micros = v_held + v_cost, updated_at = v_now WHERE id = v_account_id;
    RETURN true;
END
$$;
"""

CAPTURE_EPOCH = f"""
CREATE FUNCTION billing_capture_epoch(p_session_id bigint, p_epoch integer, p_duration_ms bigint)
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
    UPDATE billing_account SET balance_micros = v_balance, held_micros = greatest(0, v_held - v_captured), updated_at = v_now
     WHERE id = v_account_id;
    RETURN NEXT v_line;
END
$$;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0004_leaner_indexes"),
        ("training", "0002_seed_instance_types"),
    ]

    operations = [
        migrations.RunSQL(
            EXPECTED_EPOCH_MS, "DROP FUNCTION billing_expected_epoch_ms(bigint, bigint, bigint, integer);"
        ),
        migrations.RunSQL(HOLD_EPOCH, "DROP FUNCTION billing_hold_epoch(bigint, integer);"),
        migrations.RunSQL(CAPTURE_EPOCH, "DROP FUNCTION billing_capture_epoch(bigint, integer, bigint);"),
    ]
