-- billing_capture_epoch: charge a completed epoch at its actual cost and close its
-- hold (billing.services.capture_epoch). Same account lock and worker check as
-- billing_hold_epoch. Returns the epoch_charge line (the first one again on a
-- redelivery), no row for a Timed session or an owner without an account. A cost
-- above the balance writes off the shortfall first, as its own line.
--
-- The current definition: edit it here, then add the migration that applies it
-- (docs/billing.md, "How to change a money function"); tests/test_billing_sql.py
-- checks that the migrated database has exactly this function.

CREATE OR REPLACE FUNCTION billing_capture_epoch(p_session_id bigint, p_worker_id text, p_epoch integer, p_duration_ms bigint)
RETURNS SETOF billing_ledgerline
LANGUAGE plpgsql AS $$
DECLARE
    
    v_account_id bigint;
    v_balance bigint;
    v_held bigint;
    v_session_mode text;
    v_price_per_hour bigint;
    v_model_id bigint;
    v_instance_type_id bigint;
    v_reference_seconds integer;
    v_now timestamptz;

    v_captured bigint;
    v_cost bigint;
    v_shortfall bigint;
    v_line billing_ledgerline;
    v_reference text := format('session %s epoch %s', p_session_id, p_epoch);
BEGIN
    
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
