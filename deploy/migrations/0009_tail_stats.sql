-- 0009: notifier channels, statistics, retention and erasure (issue 6).

-- notifications: language of the rendered text, urgency (an emergency is
-- never held by quiet hours and goes first), and when quiet hours last held
-- the notice (so an operator can see why an SMS went out in the morning).
ALTER TABLE notifications ADD COLUMN language text NOT NULL DEFAULT 'zh-CN';
ALTER TABLE notifications ADD COLUMN urgent boolean NOT NULL DEFAULT false;
ALTER TABLE notifications ADD COLUMN held_at timestamptz;
-- The outcome of an attempt (sent / failed) commits first, touching only the
-- notification; its history event (NotificationSent / NotificationFailed,
-- ReplySent) follows in a transaction of its own, which sets recorded_at.
-- So a delivered notice can never be rolled back into pending (and sent
-- again) by a deadlock on the case row. Rows decided before 0009 count as
-- recorded.
ALTER TABLE notifications ADD COLUMN recorded_at timestamptz;
UPDATE notifications SET recorded_at = COALESCE(sent_at, created_at) WHERE state <> 'pending';
CREATE INDEX notifications_unrecorded ON notifications (id)
    WHERE state <> 'pending' AND recorded_at IS NULL;

-- case_stats: one fact row per case, maintained by the archiver as it
-- publishes the case's events in history order (so exactly once per event).
-- Dimensions are the latest known values; empty string = not known yet.
CREATE TABLE case_stats (
    case_id        uuid PRIMARY KEY,
    received_at    timestamptz NOT NULL,
    channel        text NOT NULL DEFAULT '',
    district       text NOT NULL DEFAULT '',
    category       text NOT NULL DEFAULT '',
    department     text NOT NULL DEFAULT '',
    resolved_at    timestamptz,               -- last CaseResolved
    resolve_due_at timestamptz,               -- the resolve timer's due at close
    closed_at      timestamptz,               -- last CaseClosed
    on_time        boolean,                   -- resolved_at <= resolve_due_at; NULL: no timer
    handling_hours double precision,          -- received -> last resolved, working hours
    satisfaction   smallint,                  -- last feedback 1..5
    reopens        integer NOT NULL DEFAULT 0,
    returns        integer NOT NULL DEFAULT 0
);
CREATE INDEX case_stats_received ON case_stats (received_at);
CREATE INDEX case_stats_closed ON case_stats (closed_at) WHERE closed_at IS NOT NULL;

-- The statistics of a date range [p_from, p_to] (local days in p_tz),
-- grouped by any of day, department, category, channel, district (a
-- dimension not in p_group is NULL in the output). received counts cases
-- received in the range (by received day); every other figure counts cases
-- closed in the range (by closed day). docs/statistics.md defines each one.
CREATE FUNCTION kesu_stats(p_from date, p_to date, p_group text[],
                           p_tz text DEFAULT 'Asia/Shanghai')
RETURNS TABLE (day date, department text, category text, channel text, district text,
               received bigint, closed bigint, on_time bigint, on_time_rate numeric,
               avg_handling_hours numeric, p90_handling_hours numeric, evaluated bigint,
               satisfied bigint, satisfaction_rate numeric, follow_up_rate numeric,
               reopened bigint, reopen_rate numeric, returns bigint)
LANGUAGE sql STABLE AS $$
    WITH lo AS (SELECT p_from::timestamp AT TIME ZONE p_tz AS t),
         hi AS (SELECT (p_to + 1)::timestamp AT TIME ZONE p_tz AS t),
    facts AS (
        SELECT 'r' AS kind, (s.received_at AT TIME ZONE p_tz)::date AS d, s.*
          FROM case_stats s, lo, hi WHERE s.received_at >= lo.t AND s.received_at < hi.t
        UNION ALL
        SELECT 'c' AS kind, (s.closed_at AT TIME ZONE p_tz)::date AS d, s.*
          FROM case_stats s, lo, hi WHERE s.closed_at >= lo.t AND s.closed_at < hi.t
    ),
    keyed AS (
        SELECT f.*,
               CASE WHEN 'day' = ANY (p_group) THEN f.d END AS k_day,
               CASE WHEN 'department' = ANY (p_group) THEN f.department END AS k_department,
               CASE WHEN 'category' = ANY (p_group) THEN f.category END AS k_category,
               CASE WHEN 'channel' = ANY (p_group) THEN f.channel END AS k_channel,
               CASE WHEN 'district' = ANY (p_group) THEN f.district END AS k_district
          FROM facts f
    ),
    agg AS (
        SELECT k_day, k_department, k_category, k_channel, k_district,
               count(*) FILTER (WHERE kind = 'r') AS received,
               count(*) FILTER (WHERE kind = 'c') AS closed,
               count(*) FILTER (WHERE kind = 'c' AND on_time) AS on_time,
               count(*) FILTER (WHERE kind = 'c' AND on_time IS NOT NULL) AS timed,
               avg(handling_hours) FILTER (WHERE kind = 'c') AS avg_h,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY handling_hours)
                   FILTER (WHERE kind = 'c') AS p90_h,
               count(*) FILTER (WHERE kind = 'c' AND satisfaction IS NOT NULL) AS evaluated,
               count(*) FILTER (WHERE kind = 'c' AND satisfaction >= 4) AS satisfied,
               count(*) FILTER (WHERE kind = 'c' AND reopens > 0) AS reopened,
               COALESCE(sum(returns) FILTER (WHERE kind = 'c'), 0) AS returns
          FROM keyed
         GROUP BY k_day, k_department, k_category, k_channel, k_district
    )
    SELECT k_day, k_department, k_category, k_channel, k_district,
           received, closed, on_time,
           round(on_time::numeric / NULLIF(timed, 0), 4),
           round(avg_h::numeric, 2), round(p90_h::numeric, 2),
           evaluated, satisfied,
           round(satisfied::numeric / NULLIF(evaluated, 0), 4),
           round(evaluated::numeric / NULLIF(closed, 0), 4),
           reopened,
           round(reopened::numeric / NULLIF(closed, 0), 4),
           returns::bigint
      FROM agg
     ORDER BY k_day NULLS FIRST, k_department NULLS FIRST, k_category NULLS FIRST,
              k_channel NULLS FIRST, k_district NULLS FIRST
$$;

-- Erasure and retention: every purge of a complainant's contact data leaves
-- one append-only row (who, why, which cases), never the data itself.
CREATE TABLE pii_erasures (
    id             bigserial PRIMARY KEY,
    complainant_id uuid NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('request', 'retention')),
    actor          text NOT NULL,            -- operator / service, never the complainant's name
    reason         text,
    case_nos       text[] NOT NULL,
    at             timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION pii_erasures_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the erasure log is append-only' USING ERRCODE = 'check_violation';
END $$;
CREATE TRIGGER pii_erasures_no_update BEFORE UPDATE OR DELETE ON pii_erasures
    FOR EACH ROW EXECUTE FUNCTION pii_erasures_append_only();

-- The one purge: drop every ciphertext, the blind index and the masked
-- forms, mark purged_at, log it. Cases, history and archive records stay
-- (they never held contact data). Returns false when already purged.
CREATE FUNCTION kesu_complainant_purge(p_id uuid, p_kind text, p_actor text, p_reason text)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    UPDATE complainants
       SET name_enc = NULL, phone_enc = NULL, email_enc = NULL, id_no_enc = NULL,
           phone_index = NULL, phone_last4 = NULL, phone_mask = NULL, webhook_url = NULL,
           purged_at = now()
     WHERE id = p_id AND purged_at IS NULL;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    -- notices not yet sent to this complainant have nowhere left to go
    UPDATE notifications SET target = NULL
     WHERE audience = 'complainant' AND state = 'pending'
       AND case_id IN (SELECT id FROM cases WHERE complainant_id = p_id);
    INSERT INTO pii_erasures (complainant_id, kind, actor, reason, case_nos)
    VALUES (p_id, p_kind, p_actor, p_reason,
            ARRAY(SELECT case_no FROM cases WHERE complainant_id = p_id ORDER BY case_no));
    RETURN true;
END $$;

-- CSV of kesu_stats (header first), for GET /v1/stats?format=csv and
-- kesuctl stats --format csv. A field with a comma, quote, line break or a
-- leading = + - @ (a spreadsheet formula) is quoted.
CREATE FUNCTION kesu_csv_field(v text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN v IS NULL THEN ''
                WHEN v ~ '[",\r\n]' OR v ~ '^[=+@-]' THEN '"' || replace(v, '"', '""') || '"'
                ELSE v END
$$;

CREATE FUNCTION kesu_stats_csv(p_from date, p_to date, p_group text[],
                               p_tz text DEFAULT 'Asia/Shanghai')
RETURNS TABLE (line text) LANGUAGE sql STABLE AS $$
    SELECT line FROM (
        SELECT 0::bigint AS n,
               'day,department,category,channel,district,received,closed,on_time,on_time_rate,'
               'avg_handling_hours,p90_handling_hours,evaluated,satisfied,satisfaction_rate,'
               'follow_up_rate,reopened,reopen_rate,returns' AS line
        UNION ALL
        SELECT row_number() OVER (),
               concat_ws(',', kesu_csv_field(s.day::text), kesu_csv_field(s.department),
                         kesu_csv_field(s.category), kesu_csv_field(s.channel),
                         kesu_csv_field(s.district), s.received, s.closed, s.on_time,
                         COALESCE(s.on_time_rate::text, ''),
                         COALESCE(s.avg_handling_hours::text, ''),
                         COALESCE(s.p90_handling_hours::text, ''), s.evaluated, s.satisfied,
                         COALESCE(s.satisfaction_rate::text, ''),
                         COALESCE(s.follow_up_rate::text, ''), s.reopened,
                         COALESCE(s.reopen_rate::text, ''), s.returns)
          FROM kesu_stats(p_from, p_to, p_group, p_tz) s
    ) x ORDER BY n
$$;

-- Row-level security (0005): a handler reads its own department's archive
-- records and statistics only; the archiver (table owner) is not affected.
ALTER TABLE archive_records ENABLE ROW LEVEL SECURITY;
CREATE POLICY archive_records_read ON archive_records FOR SELECT TO kesu_api
    USING (kesu_case_visible(record -> 'case' ->> 'department', NULL, NULL));
ALTER TABLE case_stats ENABLE ROW LEVEL SECURITY;
CREATE POLICY case_stats_read ON case_stats FOR SELECT TO kesu_api
    USING (kesu_case_visible(NULLIF(department, ''), NULL, NULL));

-- intake's staff reads run as the role kesu_api (0005); new tables get
-- SELECT through its default privileges, the functions are spelled out.
GRANT SELECT ON case_stats, archive_records TO kesu_api;
GRANT EXECUTE ON FUNCTION kesu_stats(date, date, text[], text) TO kesu_api;
GRANT EXECUTE ON FUNCTION kesu_stats_csv(date, date, text[], text) TO kesu_api;
