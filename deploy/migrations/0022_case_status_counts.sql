-- The number of cases per department and status, kept as cases change
-- (decision 0031), so the console's per-status counts read a few hundred
-- rows instead of every case: counting 2 million cases took 1.0-1.9 s a
-- refresh (a sequential scan; 220 ms as an index-only scan), and a province
-- adds some 44 million a year.
--
-- Each database session adds its changes to its own rows (writer =
-- pg_backend_pid()), so two services changing cases never wait for each
-- other on a counter row; the sum over the writers is the count, exact and
-- in the same transaction as the change. Rows of sessions that have ended
-- are folded into writer 0 by kesu_status_counts_fold() (the archiver calls
-- it now and then); nothing depends on when.
--
-- Cases in 'received' and 'classified' are not kept here. Every case is
-- inserted in 'received', so counting it would put an upsert of one row, many
-- times over in one group-commit transaction, on intake's hot path (measured:
-- 0.11 ms a case); and every case passes through both on its way to a
-- department within milliseconds, so keeping them would cost two of the
-- three counter changes of every case for statuses that hold a handful. The
-- console counts those two from cases_status (api_console.c names the same
-- two statuses).
CREATE TABLE case_status_counts (
    department text   NOT NULL,          -- '' while not assigned
    status     text   NOT NULL CHECK (status NOT IN ('received', 'classified')),
    writer     int    NOT NULL,          -- the backend that added it; 0 folded
    n          bigint NOT NULL,
    PRIMARY KEY (department, status, writer)
) WITH (fillfactor = 50);

-- runs as the owner whoever changes the case (intake's staff actions run as
-- kesu_api under row-level security, which must not hide a counter row from
-- the count it belongs to); the old key -1, the new +1, in key order, one
-- row per key (a department going from NULL to '' is the same key: it nets
-- out rather than changing one row twice in one upsert, which is an error)
CREATE FUNCTION cases_count_status() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO case_status_counts AS c (department, status, writer, n)
    SELECT d, s, pg_backend_pid(), sum(k) FROM (VALUES
        (COALESCE(OLD.department, ''), OLD.status, -1::bigint),
        (COALESCE(NEW.department, ''), NEW.status, 1::bigint)) v(d, s, k)
    WHERE s IS NOT NULL AND s NOT IN ('received', 'classified')
    GROUP BY d, s ORDER BY d, s
    ON CONFLICT (department, status, writer) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END $$;

-- an update's WHEN leaves out changes of neither status nor department and
-- the changes between the statuses not kept (received -> classified: no
-- counter changes, no call); a delete has NEW null, so only its old key counts
CREATE TRIGGER cases_count_update AFTER UPDATE OF status, department ON cases
    FOR EACH ROW WHEN ((OLD.status IS DISTINCT FROM NEW.status
                        OR OLD.department IS DISTINCT FROM NEW.department)
                       AND (OLD.status NOT IN ('received', 'classified')
                            OR NEW.status NOT IN ('received', 'classified')))
    EXECUTE FUNCTION cases_count_status();
CREATE TRIGGER cases_count_delete AFTER DELETE ON cases
    FOR EACH ROW WHEN (OLD.status NOT IN ('received', 'classified'))
    EXECUTE FUNCTION cases_count_status();

-- The cases there are. CREATE TRIGGER above holds a lock that keeps every
-- writer of cases out until this migration commits, so no change falls
-- between the count and the triggers.
-- What case_status_counts counts, from the cases themselves: this fill,
-- kesuctl verify and an operator's recount (docs/operations.md) read it.
CREATE FUNCTION kesu_status_counts_counted()
RETURNS TABLE (department text, status text, n bigint) LANGUAGE sql STABLE AS $$
    SELECT COALESCE(c.department, ''), c.status, count(*) FROM cases c
     WHERE c.status NOT IN ('received', 'classified') GROUP BY 1, 2
$$;
INSERT INTO case_status_counts (department, status, writer, n)
SELECT department, status, 0, n FROM kesu_status_counts_counted();

-- Fold the rows of sessions that have ended into writer 0, in key order;
-- returns how many rows were folded.
CREATE FUNCTION kesu_status_counts_fold() RETURNS bigint LANGUAGE sql AS $$
    WITH gone AS (
        DELETE FROM case_status_counts
         WHERE writer <> 0 AND writer NOT IN (SELECT pid FROM pg_stat_activity
                                               WHERE pid IS NOT NULL)
        RETURNING department, status, n),
    sums AS (SELECT department, status, sum(n) AS n FROM gone GROUP BY 1, 2),
    up AS (
        INSERT INTO case_status_counts AS c (department, status, writer, n)
        SELECT department, status, 0, n FROM sums ORDER BY department, status
        ON CONFLICT (department, status, writer) DO UPDATE SET n = c.n + excluded.n
        RETURNING 1)
    SELECT count(*) FROM gone
$$;

-- Row-level security (0005): a handler counts its own department's cases.
ALTER TABLE case_status_counts ENABLE ROW LEVEL SECURITY;
CREATE POLICY case_status_counts_read ON case_status_counts FOR SELECT TO kesu_api
    USING (kesu_case_visible(NULLIF(department, ''), NULL, NULL));
GRANT SELECT ON case_status_counts TO kesu_api;
