-- The console's closing-day figures per department, kept as the statistics
-- facts change (decision 0032), so each refresh reads a few rows per day
-- instead of every fact of 14 days: kesu_stats() over 14 days read 75k
-- buffers (170-220 ms) twice a refresh at 2 million cases a year, and a
-- province closes ~120,000 cases a day (1.7 million in 14 days).
--
-- Only additive figures are kept (closed, judged on time, timed, evaluated,
-- satisfied); GET /v1/stats and kesuctl stats still aggregate the facts
-- (averages, the 90th percentile, every grouping). A fact counts here the way
-- kesu_stats() counts it: on its closing day (China time) and department;
-- on time when its stored judgement says so. kesu_stats() judges a fact closed
-- before its resolve timer was recorded from the timer when it reads;
-- kesu_stats_judge_late() stores that judgement (the archiver runs it every
-- minute), so the two agree from then on.
--
-- As with case_status_counts (0022, decision 0031) each database session
-- adds to its own rows (writer = pg_backend_pid()): two archivers never wait
-- for each other here; the sum over the writers is the figure.
CREATE TABLE case_stats_daily (
    day        date   NOT NULL,           -- the closing day, Asia/Shanghai
    department text   NOT NULL,           -- '' none
    writer     int    NOT NULL,           -- the backend that added it; 0 folded
    closed     bigint NOT NULL,
    on_time    bigint NOT NULL,
    timed      bigint NOT NULL,           -- closed with a judgement (on_time not null)
    evaluated  bigint NOT NULL,
    satisfied  bigint NOT NULL,           -- satisfaction 4 or 5
    PRIMARY KEY (day, department, writer)
) WITH (fillfactor = 50);

-- A fact's old contribution out, its new one in (one row per key: a change
-- within the same day and department nets out in one upsert).
CREATE FUNCTION case_stats_count_daily() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO case_stats_daily AS d (day, department, writer, closed, on_time, timed,
                                       evaluated, satisfied)
    SELECT x.day, x.department, pg_backend_pid(), sum(x.k),
           COALESCE(sum(x.k) FILTER (WHERE x.on_time), 0),
           COALESCE(sum(x.k) FILTER (WHERE x.on_time IS NOT NULL), 0),
           COALESCE(sum(x.k) FILTER (WHERE x.satisfaction IS NOT NULL), 0),
           COALESCE(sum(x.k) FILTER (WHERE x.satisfaction >= 4), 0)
      FROM (SELECT (OLD.closed_at AT TIME ZONE 'Asia/Shanghai')::date AS day,
                   OLD.department, OLD.on_time, OLD.satisfaction, -1::bigint AS k
             WHERE OLD.closed_at IS NOT NULL
            UNION ALL
            SELECT (NEW.closed_at AT TIME ZONE 'Asia/Shanghai')::date,
                   NEW.department, NEW.on_time, NEW.satisfaction, 1::bigint
             WHERE NEW.closed_at IS NOT NULL) x
     GROUP BY x.day, x.department
     ORDER BY x.day, x.department
    ON CONFLICT (day, department, writer) DO UPDATE
       SET closed = d.closed + excluded.closed, on_time = d.on_time + excluded.on_time,
           timed = d.timed + excluded.timed, evaluated = d.evaluated + excluded.evaluated,
           satisfied = d.satisfied + excluded.satisfied;
    RETURN NULL;
END $$;

-- Facts not closed (received, classified, assigned, resolved) do not count.
CREATE TRIGGER case_stats_daily_insert AFTER INSERT ON case_stats
    FOR EACH ROW WHEN (NEW.closed_at IS NOT NULL)
    EXECUTE FUNCTION case_stats_count_daily();
CREATE TRIGGER case_stats_daily_update AFTER UPDATE ON case_stats
    FOR EACH ROW WHEN ((OLD.closed_at IS NOT NULL OR NEW.closed_at IS NOT NULL)
        AND (OLD.closed_at IS DISTINCT FROM NEW.closed_at
             OR OLD.department IS DISTINCT FROM NEW.department
             OR OLD.on_time IS DISTINCT FROM NEW.on_time
             OR OLD.satisfaction IS DISTINCT FROM NEW.satisfaction))
    EXECUTE FUNCTION case_stats_count_daily();
CREATE TRIGGER case_stats_daily_delete AFTER DELETE ON case_stats
    FOR EACH ROW WHEN (OLD.closed_at IS NOT NULL)
    EXECUTE FUNCTION case_stats_count_daily();

-- The facts there are (CREATE TRIGGER's lock keeps the archiver out until
-- this commits).
-- What case_stats_daily holds, from the facts themselves: this fill, kesuctl
-- verify and an operator's recount (docs/operations.md) read it.
CREATE FUNCTION kesu_stats_daily_counted()
RETURNS TABLE (day date, department text, closed bigint, on_time bigint, timed bigint,
               evaluated bigint, satisfied bigint) LANGUAGE sql STABLE AS $$
    SELECT (s.closed_at AT TIME ZONE 'Asia/Shanghai')::date, s.department, count(*),
           count(*) FILTER (WHERE s.on_time), count(*) FILTER (WHERE s.on_time IS NOT NULL),
           count(*) FILTER (WHERE s.satisfaction IS NOT NULL),
           count(*) FILTER (WHERE s.satisfaction >= 4)
      FROM case_stats s WHERE s.closed_at IS NOT NULL GROUP BY 1, 2
$$;
INSERT INTO case_stats_daily (day, department, writer, closed, on_time, timed, evaluated,
                              satisfied)
SELECT day, department, 0, closed, on_time, timed, evaluated, satisfied
  FROM kesu_stats_daily_counted();

-- Facts closed without a judgement (no resolve timer recorded yet when the
-- case closed): the judge pass below finds the recent ones through this.
CREATE INDEX case_stats_unjudged ON case_stats (closed_at)
    WHERE on_time IS NULL AND resolved_at IS NOT NULL AND closed_at IS NOT NULL;

-- Store the judgement kesu_stats() would make when it reads, for up to
-- p_limit facts closed in the last p_days days whose timer is there now;
-- returns how many were judged.
CREATE FUNCTION kesu_stats_judge_late(p_days int, p_limit int) RETURNS bigint
LANGUAGE sql AS $$
    WITH late AS (
        SELECT s.case_id, kesu_resolve_due(s.case_id) AS due
          FROM case_stats s
         WHERE s.on_time IS NULL AND s.resolved_at IS NOT NULL AND s.closed_at IS NOT NULL
           AND s.closed_at > now() - make_interval(days => p_days)
           -- only those whose timer is there: the ones that never get one
           -- (no limit applied to the case) must not fill every pass
           AND EXISTS (SELECT 1 FROM sla_timers t WHERE t.case_id = s.case_id
                         AND t.kind = 'resolve')
         ORDER BY s.closed_at LIMIT p_limit),
    judged AS (
        UPDATE case_stats s SET on_time = s.resolved_at <= late.due, resolve_due_at = late.due
          FROM late WHERE s.case_id = late.case_id AND late.due IS NOT NULL
        RETURNING 1)
    SELECT count(*) FROM judged
$$;

-- Fold the rows of sessions that have ended into writer 0 (as
-- kesu_status_counts_fold does for 0022); returns how many were folded.
CREATE FUNCTION kesu_stats_daily_fold() RETURNS bigint LANGUAGE sql AS $$
    WITH gone AS (
        DELETE FROM case_stats_daily
         WHERE writer <> 0 AND writer NOT IN (SELECT pid FROM pg_stat_activity
                                               WHERE pid IS NOT NULL)
        RETURNING *),
    sums AS (SELECT day, department, sum(closed) AS closed, sum(on_time) AS on_time,
                    sum(timed) AS timed, sum(evaluated) AS evaluated, sum(satisfied) AS satisfied
               FROM gone GROUP BY 1, 2),
    up AS (
        INSERT INTO case_stats_daily AS d (day, department, writer, closed, on_time, timed,
                                           evaluated, satisfied)
        SELECT day, department, 0, closed, on_time, timed, evaluated, satisfied
          FROM sums ORDER BY day, department
        ON CONFLICT (day, department, writer) DO UPDATE
           SET closed = d.closed + excluded.closed, on_time = d.on_time + excluded.on_time,
               timed = d.timed + excluded.timed, evaluated = d.evaluated + excluded.evaluated,
               satisfied = d.satisfied + excluded.satisfied
        RETURNING 1)
    SELECT count(*) FROM gone
$$;

-- Row-level security (as case_stats, 0009): a handler reads its department.
ALTER TABLE case_stats_daily ENABLE ROW LEVEL SECURITY;
CREATE POLICY case_stats_daily_read ON case_stats_daily FOR SELECT TO kesu_api
    USING (kesu_case_visible(NULLIF(department, ''), NULL, NULL));
GRANT SELECT ON case_stats_daily TO kesu_api;
