-- billing_month_spend_micros: what an account spent on training in the calendar month
-- (UTC) of p_now, for the monthly spending cap (docs/billing.md, "Spending caps"):
-- the month's epoch charges and Timed prepayments less its Timed refunds (ledger lines
-- since the month's start, on the (account, created_at, id) index), plus every open
-- hold (the account's held_micros). Read it with the account row locked, as
-- billing_hold_epoch and billing.services do, so that it cannot change meanwhile.
--
-- The current definition: edit it here, then add the migration that applies it
-- (docs/billing.md, "How to change a money function").

CREATE OR REPLACE FUNCTION billing_month_spend_micros(p_account_id bigint, p_now timestamptz)
RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT COALESCE((
        SELECT -SUM(l.amount_micros)
          FROM billing_ledgerline l
         WHERE l.account_id = p_account_id
           AND l.created_at >= date_trunc('month', p_now, 'UTC')
           AND l.kind IN ('epoch_charge', 'timed_prepayment', 'timed_refund')
    ), 0)::bigint + (SELECT a.held_micros FROM billing_account a WHERE a.id = p_account_id);
$$;
