-- Indexes found with pg_stat_statements / pg_stat_user_tables under load
-- (docs/performance.md).

-- The notifier's due pass walks pending notices in send order and stops at
-- its LIMIT, instead of sorting every pending row.
CREATE INDEX notifications_send_order ON notifications (urgent DESC, next_attempt_at, id)
    WHERE state = 'pending';
DROP INDEX IF EXISTS notifications_due;

-- "the open assignments of this case" (superseded on re-dispatch): the old
-- (department, state) partial index matched the predicate and was chosen,
-- reading every open assignment of the province per dispatch.
DROP INDEX IF EXISTS case_assignments_open;
CREATE INDEX case_assignments_open ON case_assignments (case_id) WHERE state = 'open';

-- Queue-like tables: rows are inserted and deleted (outbox) or only
-- inserted and read by key (inbox) thousands of times a second. Vacuum them
-- after a fixed number of dead rows instead of a fraction of the table, so
-- the dead index entries a sweep has to step over stay few.
ALTER TABLE outbox SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000,
                        autovacuum_vacuum_cost_delay = 0);
ALTER TABLE public_feed_pending SET (autovacuum_vacuum_scale_factor = 0,
                                     autovacuum_vacuum_threshold = 1000);
-- Statistics of the case table follow its growth closely (plans, decision
-- 0018); analyze samples a fixed number of rows, so this is cheap.
ALTER TABLE cases SET (autovacuum_analyze_scale_factor = 0.05);

