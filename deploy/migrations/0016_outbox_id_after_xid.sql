-- The relay's sweep starts after a low-water mark (decision 0022): an id it
-- moves past must not belong to a transaction still running. It knows which
-- transactions may still run from snapshots (transaction ids), so every
-- outbox row's transaction must have its id *before* the row takes its
-- number: nextval runs before the row is inserted, and a transaction whose
-- first write is its outbox row (a DLQ row, kesuctl) would otherwise get its
-- transaction id only after its outbox id. pg_current_xact_id() assigns it;
-- a CASE evaluates its condition first and its result only then, and costs
-- nothing like a function call per row.
ALTER TABLE outbox ALTER COLUMN id SET DEFAULT
    CASE WHEN pg_current_xact_id() IS NOT NULL THEN nextval('outbox_id_seq'::regclass) END;
