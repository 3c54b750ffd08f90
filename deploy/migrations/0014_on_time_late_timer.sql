-- On time (按时办结) is judged from the case's resolve timer, which the SLA
-- monitor records when it reads CaseAssigned from the dispatcher's topic. The
-- archiver closes the case's statistics when it reads CaseClosed, in history
-- order, but from other topics: when the monitor is behind (restarted, or a
-- topic's first messages slower than another's), the archiver judges before
-- the timer exists and on_time stays NULL although the monitor then records
-- the timer (settled at the real resolve time). Both judgements now use one
-- function, and kesu_stats judges a closed case without a stored judgement
-- from the timer recorded since, when it reads.

-- The due of the resolve timer that judges a case's last resolution: the
-- latest cycle's (a reopened case has one per cycle), extensions and pauses
-- already in it. NULL: no resolve timer (yet).
CREATE FUNCTION kesu_resolve_due(p_case uuid) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT due_at FROM sla_timers WHERE case_id = p_case AND kind = 'resolve'
     ORDER BY started_at DESC, id DESC LIMIT 1
$$;

CREATE OR REPLACE FUNCTION kesu_stats(p_from date, p_to date, p_group text[],
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
               CASE WHEN f.kind <> 'c' OR f.on_time IS NOT NULL THEN f.on_time
                    WHEN f.resolved_at IS NOT NULL
                    THEN f.resolved_at <= kesu_resolve_due(f.case_id) END AS judged,
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
               count(*) FILTER (WHERE kind = 'c' AND judged) AS on_time,
               count(*) FILTER (WHERE kind = 'c' AND judged IS NOT NULL) AS timed,
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
