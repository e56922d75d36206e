-- billing_expected_epoch_ms: how long the next epoch of a session will probably take,
-- in milliseconds, to hold its cost: the longest of the session's last three epochs,
-- else of the model's last three on the same instance type (a resume), else the
-- instance type's reference time. Called by billing_hold_epoch and by
-- billing.services.expected_epoch_cost.
--
-- The current definition: edit it here, then add the migration that applies it
-- (docs/billing.md, "How to change a money function"); tests/test_billing_sql.py
-- checks that the migrated database has exactly this function.

CREATE OR REPLACE FUNCTION billing_expected_epoch_ms(
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
