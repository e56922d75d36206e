-- billing_hold_epoch: reserve money for one epoch (billing.services.hold_epoch).
-- Locks the session owner's account first, then requires the session to be active on
-- p_worker_id (else SQLSTATE HS403). Opens the epoch's hold at its expected cost, or
-- grows an open hold to at least p_at_least. Returns the amount now held, or, when the
-- new amount is refused (nothing changes), why: -2 when the session's charges and open
-- holds would pass its spending cap, -3 when the month's spend would pass the account's
-- monthly cap (billing_month_spend_micros), -1 when the available balance cannot cover
-- it; checked in that order (docs/billing.md, "Spending caps"). For an epoch already charged,
-- its captured hold or its charge; 0 for a Timed session; NULL when the owner has no
-- account yet.
--
-- The current definition: edit it here, then add the migration that applies it
-- (docs/billing.md, "How to change a money function"); tests/test_billing_sql.py
-- checks that the migrated database has exactly this function.

CREATE OR REPLACE FUNCTION billing_hold_epoch(p_session_id bigint, p_worker_id text, p_epoch integer, p_at_least bigint)
RETURNS bigint
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
    v_session_cap bigint;
    v_month_cap bigint;

    v_hold_id bigint;
    v_hold_status text;
    v_hold_amount bigint;
    v_charged bigint;
    v_wanted bigint;
    v_extra bigint;
BEGIN
    
    SELECT a.id, a.balance_micros, a.held_micros, s.mode, s.price_per_hour_micros,
           s.model_id, s.instance_type_id, t.reference_epoch_seconds, s.spending_cap_micros,
           a.monthly_spending_cap_micros
      INTO v_account_id, v_balance, v_held, v_session_mode, v_price_per_hour, v_model_id, v_instance_type_id,
           v_reference_seconds, v_session_cap, v_month_cap
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
    IF v_session_cap IS NOT NULL AND v_extra > v_session_cap - (
        SELECT COALESCE(SUM(h.amount_micros), 0) FROM billing_hold h
         WHERE h.session_id = p_session_id AND h.status = 'open'
    ) - (
        SELECT COALESCE(-SUM(l.amount_micros), 0) FROM billing_ledgerline l
         WHERE l.kind = 'epoch_charge' AND l.session_id = p_session_id
    ) THEN
        RETURN -2;  -- the session stops: a top-up would not help
    END IF;
    IF v_month_cap IS NOT NULL AND v_extra > v_month_cap - billing_month_spend_micros(v_account_id, v_now) THEN
        RETURN -3;  -- the session pauses until the cap is raised
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
