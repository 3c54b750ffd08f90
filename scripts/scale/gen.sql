-- Scale data for scripts/scale_audit.py (see its --help): run by
-- `scripts/scale_audit.py generate` on a freshly migrated database.
--
-- Model: N = 2,000,000 cases over the last 365 days (~5,480 a day), ids are
-- UUID v7-like (time ordered, as util_uuid makes them). ~20,000 open (the
-- last 18,000 received plus every 1000th older one, stuck), the rest closed
-- (2 % merged, 1 % rejected, 1 % withdrawn). 5 history rows a case, 2
-- notifications, 2.5 SLA timers (accept, resolve, every 2nd case reply) with
-- a start and a stop log row each, 1 stats row, 1 archive record per
-- closed case, inbox rows of the last 14 days + 1 hour (5.3 M).
\timing on
\set ON_ERROR_STOP 1
SET session_replication_role = replica;   -- no triggers, no FK checks
SET synchronous_commit = off;
SET maintenance_work_mem = '512MB';
SET work_mem = '256MB';
\if :{?n_cases}
\else
\set n_cases 2000000
\endif
\if :{?n_inbox}
\else
\set n_inbox 5300000
\endif
SELECT now() AS t_now \gset

-- a UUID v7 look-alike: 48-bit ms timestamp, version 7, a 12-bit tag, variant, 60-bit counter
CREATE FUNCTION pg_temp.u7(ts timestamptz, tag int, n bigint) RETURNS uuid
LANGUAGE sql IMMUTABLE AS $$
    SELECT (lpad(to_hex((extract(epoch FROM ts) * 1000)::bigint), 12, '0') || '7'
            || lpad(to_hex(tag), 3, '0') || '8' || lpad(to_hex(n), 15, '0'))::uuid
$$;

-- ------------------------------------------------------------ catalogue
INSERT INTO departments (code, name, emergency_desk, supervision)
SELECT 'd' || lpad(i::text, 2, '0'), 'Department ' || i, i = 0, i = 1
  FROM generate_series(0, 39) i;
INSERT INTO handlers (id, department, name, skills, capacity, open_load)
SELECT 'h' || lpad(d::text, 2, '0') || '_' || h, 'd' || lpad(d::text, 2, '0'), 'Handler', '{*}', 500, 50
  FROM generate_series(0, 39) d, generate_series(0, 9) h;
INSERT INTO dispatch_catalogue (document, source, sha256, rules)
SELECT '{"rules":[]}', 'catalogue.json', md5(i::text), 10 FROM generate_series(1, 3) i;

-- ------------------------------------------------------------ cases
INSERT INTO cases (id, case_no, access_code_hash, channel, status, version, event_seq, title, body,
                   district_code, anonymous, complainant_id, trace_id, created_at, updated_at,
                   domain, request_type, category, urgency, flags, confidence, classified_at,
                   department, handler, assigned_at, dispatch_attempt, accepted_at, resolved_at,
                   closed_at, close_reason, load_released, satisfaction)
SELECT pg_temp.u7(ct, 0, n), 'K' || lpad(n::text, 10, '0'), decode(md5(n::text), 'hex'),
       CASE WHEN n % 20 = 5 THEN 'open311' ELSE (ARRAY['phone','web','app','walk_in','letter'])[1 + n % 5] END,
       st, 5, 5, 'title ' || n, 'body of the complaint number ' || n,
       (110101 + n % 100)::text, n % 5 = 0, CASE WHEN n % 5 <> 0 THEN pg_temp.u7(ct, 1, n) END,
       md5(n::text), ct, COALESCE(cl, ct + interval '1 hour'),
       'dom' || n % 8, (ARRAY['consultation','help','complaint','report','suggestion'])[1 + n % 5],
       'cat' || n % 30,
       CASE WHEN n % 100 = 7 THEN 'emergency' WHEN n % 10 = 1 THEN 'urgent' ELSE 'normal' END,
       CASE WHEN n % 200 = 9 THEN '{public_safety}'::text[] ELSE '{}' END, 0.9,
       ct + interval '1 minute',
       CASE WHEN st NOT IN ('received', 'classified') THEN dept END,
       CASE WHEN st NOT IN ('received', 'classified') THEN 'h' || substr(dept, 2) || '_' || n % 10 END,
       CASE WHEN st NOT IN ('received', 'classified') THEN ct + interval '2 minutes' END, 1,
       CASE WHEN st NOT IN ('received', 'classified', 'assigned') THEN ct + interval '1 hour' END,
       CASE WHEN cl IS NOT NULL THEN cl - interval '1 day'
            WHEN st IN ('resolved', 'replied') THEN ct + interval '2 hours' END,
       cl, CASE WHEN st = 'closed' THEN 'feedback' END, true,
       CASE WHEN st = 'closed' AND n % 10 < 6 THEN 1 + n % 5 END
  FROM (SELECT n, ct, st, dept,
               CASE WHEN st IN ('closed', 'merged', 'rejected', 'withdrawn')
                    THEN LEAST(ct + interval '2 days' + (n % 72) * interval '1 hour',
                               :'t_now'::timestamptz - interval '1 minute') END AS cl
          FROM (SELECT n, ct, 'd' || lpad((n * 7 % 40)::text, 2, '0') AS dept,
                       CASE WHEN n > :n_cases - 18000 OR n % 1000 = 0
                            THEN (ARRAY['received','classified','assigned','accepted','in_progress',
                                        'resolved','replied','returned','reopened'])[1 + n % 9]
                            WHEN n % 100 IN (0, 1) THEN 'merged' WHEN n % 100 = 2 THEN 'rejected'
                            WHEN n % 100 = 3 THEN 'withdrawn' ELSE 'closed' END AS st
                  FROM (SELECT n, :'t_now'::timestamptz - interval '365 days'
                                  + (n - 1) * (interval '365 days' / :n_cases) AS ct
                          FROM generate_series(1, :n_cases) n) a) b) c;

-- complainants: contact data of cases ended more than 180 days ago already purged
INSERT INTO complainants (id, name_enc, phone_enc, email_enc, phone_index, phone_last4, phone_mask,
                          created_at, purged_at)
SELECT c.complainant_id,
       CASE WHEN p THEN NULL ELSE '\x0102030405060708090a0b0c0d0e0f10'::bytea END,
       CASE WHEN p THEN NULL ELSE '\x0102030405060708090a0b0c0d0e0f10'::bytea END,
       NULL,
       CASE WHEN p THEN NULL ELSE decode(md5(c.case_no), 'hex') END,
       CASE WHEN p THEN NULL ELSE '1234' END, CASE WHEN p THEN NULL ELSE '138****1234' END,
       c.created_at,
       CASE WHEN p THEN COALESCE(c.closed_at, c.updated_at) + interval '180 days 10 minutes' END
  FROM (SELECT c.*, c.status IN ('closed', 'merged', 'rejected', 'withdrawn')
                    AND COALESCE(c.closed_at, c.updated_at)
                        < :'t_now'::timestamptz - interval '180 days 10 minutes' AS p
          FROM cases c WHERE c.complainant_id IS NOT NULL ORDER BY c.id) c;

-- ------------------------------------------------------------ history (5 a case)
INSERT INTO case_events (case_id, seq, event_id, event_type, version, status, producer, actor,
                         occurred_at, summary)
SELECT c.id, s, pg_temp.u7(c.created_at + (s - 1) * interval '10 minutes', 2,
                           substr(c.case_no, 2)::bigint * 8 + s),
       (ARRAY['CaseReceived','CaseClassified','CaseAssigned','CaseResolved','CaseClosed'])[s], s,
       CASE WHEN s = 5 THEN c.status
            ELSE (ARRAY['received','classified','assigned','resolved'])[s] END,
       (ARRAY['intake','classifier','dispatcher','intake','intake'])[s], 'svc',
       c.created_at + (s - 1) * interval '10 minutes', '{"note":"x"}'
  FROM cases c, generate_series(1, 5) s ORDER BY c.id, s;

-- ------------------------------------------------------------ notifications (2 a case)
-- the last 200 cases' complainant notice is pending (due), the 50 before are sent but not recorded
INSERT INTO notifications (case_id, trigger_event_id, event_type, channel, audience, template,
                           target, body, state, attempts, next_attempt_at, created_at, sent_at,
                           recorded_at, language, urgent)
SELECT c.id, e.event_id, e.event_type, CASE WHEN k = 1 THEN 'webhook' ELSE 'sms' END,
       CASE WHEN k = 1 THEN 'department' ELSE 'complainant' END, 'tpl' || k,
       CASE WHEN k = 1 THEN 'http://dept.example/hook' END, 'notice body',
       CASE WHEN k = 2 AND n > :n_cases - 200 THEN 'pending' ELSE 'sent' END,
       CASE WHEN k = 2 AND n > :n_cases - 200 THEN 0 ELSE 1 END,
       CASE WHEN k = 2 AND n > :n_cases - 200 THEN :'t_now'::timestamptz - (n % 60) * interval '1 second'
            ELSE e.occurred_at END,
       e.occurred_at,
       CASE WHEN k = 2 AND n > :n_cases - 200 THEN NULL ELSE e.occurred_at + interval '2 seconds' END,
       CASE WHEN k = 2 AND n > :n_cases - 250 THEN NULL ELSE e.occurred_at + interval '3 seconds' END,
       'zh-CN', c.urgency = 'emergency'
  FROM (SELECT c.*, substr(c.case_no, 2)::int AS n FROM cases c) c
  JOIN (SELECT case_id, seq - 2 AS k, event_id, event_type, occurred_at FROM case_events
         WHERE seq IN (3, 4)) e ON e.case_id = c.id
 ORDER BY c.id, k;

-- ------------------------------------------------------------ SLA timers (2.5 a case)
-- closed cases: every timer stopped (5 % breached before). Open cases: accept running until
-- accepted, resolve running (every 10th paused, every 10th breached), reply running when resolved.
INSERT INTO sla_timers (case_id, kind, cycle, started_at, due_at, state, stopped_at, breached_at,
                        limit_spec, work, total_ms, used_ms, anchor_at, escalate_ms, next_at,
                        warned, breach_count, paused_at, paused_state, department, request_type,
                        urgency)
SELECT id, kind, 1, st_at, due, state,
       CASE WHEN state = 'stopped' THEN LEAST(COALESCE(closed_at, updated_at), due + interval '1 hour') END,
       CASE WHEN state = 'breached' OR (state = 'stopped' AND n % 20 = 3) THEN due END,
       '3d', true, 259200000, 0, st_at, 86400000,
       CASE WHEN state IN ('running', 'breached')
            THEN CASE WHEN n % 50 = 0 THEN :'t_now'::timestamptz - interval '1 minute'
                      ELSE GREATEST(due, :'t_now'::timestamptz + (n % 600) * interval '1 minute') END END,
       CASE WHEN state <> 'stopped' AND n % 3 = 0 THEN 1 WHEN state <> 'stopped' AND n % 7 = 0 THEN 2
            ELSE 0 END,
       CASE WHEN state = 'breached' THEN 1 ELSE 0 END,
       CASE WHEN state = 'paused' THEN :'t_now'::timestamptz - interval '1 hour' END,
       CASE WHEN state = 'paused' THEN 'running' END,
       COALESCE(department, 'd00'), request_type, urgency
  FROM (SELECT c.id, c.status, c.closed_at, c.updated_at, c.department, c.request_type, c.urgency,
               substr(c.case_no, 2)::int AS n, k.kind, c.created_at + interval '2 minutes' AS st_at,
               c.created_at + interval '2 minutes' + CASE k.kind WHEN 'accept' THEN interval '4 hours'
                   WHEN 'resolve' THEN interval '3 days' ELSE interval '5 days' END AS due,
               CASE WHEN c.status IN ('closed', 'merged', 'rejected', 'withdrawn') THEN 'stopped'
                    WHEN k.kind = 'accept' THEN
                         CASE WHEN c.status IN ('received', 'classified', 'assigned', 'returned')
                              THEN 'running' ELSE 'stopped' END
                    WHEN k.kind = 'resolve' THEN
                         CASE WHEN c.status IN ('resolved', 'replied') THEN 'stopped'
                              WHEN substr(c.case_no, 2)::int % 10 = 1 THEN 'paused'
                              WHEN substr(c.case_no, 2)::int % 10 = 2 THEN 'breached'
                              ELSE 'running' END
                    ELSE CASE WHEN c.status IN ('resolved', 'replied', 'reopened') THEN 'running'
                              ELSE 'stopped' END END AS state
          FROM cases c
          CROSS JOIN LATERAL (SELECT unnest(CASE WHEN substr(c.case_no, 2)::int % 2 = 0
                                                 THEN ARRAY['accept', 'resolve', 'reply']
                                                 ELSE ARRAY['accept', 'resolve'] END) AS kind) k
         ORDER BY c.id, k.kind) t;

-- a start row per timer, a stop (or breach) row per stopped timer
INSERT INTO sla_timer_log (case_id, kind, cycle, action, at, due_at, used_ms, note, actor)
SELECT t.case_id, t.kind, 1, a, CASE WHEN a = 'start' THEN t.started_at ELSE t.stopped_at END,
       t.due_at, 0, NULL, 'sla-monitor'
  FROM sla_timers t, unnest(ARRAY['start', 'stop']) a
 WHERE a = 'start' OR t.state = 'stopped'
 ORDER BY t.id, a DESC;

-- ------------------------------------------------------------ the archiver's tables
INSERT INTO case_stats (case_id, received_at, channel, district, category, department, resolved_at,
                        resolve_due_at, closed_at, on_time, handling_hours, satisfaction, reopens)
SELECT c.id, c.created_at, c.channel, c.district_code, c.category, COALESCE(c.department, ''),
       c.resolved_at, CASE WHEN c.closed_at IS NOT NULL THEN c.created_at + interval '3 days 2 minutes' END,
       c.closed_at,
       CASE WHEN c.closed_at IS NOT NULL THEN c.resolved_at <= c.created_at + interval '3 days 2 minutes' END,
       CASE WHEN c.resolved_at IS NOT NULL THEN extract(epoch FROM c.resolved_at - c.created_at) / 3600 END,
       c.satisfaction, 0
  FROM cases c ORDER BY c.id;

INSERT INTO archive_records (case_id, case_version, case_no, closed_at, archived_at, record)
SELECT c.id, c.version, c.case_no, c.closed_at, c.closed_at + interval '1 second',
       jsonb_build_object('format', 'kesu.archive.v1', 'case',
                          jsonb_build_object('case_no', c.case_no, 'department', c.department,
                                             'status', c.status))
  FROM cases c WHERE c.status = 'closed' ORDER BY c.id;

INSERT INTO public_feed_state (case_id, next_seq, held)
SELECT c.id, 6, 0 FROM cases c ORDER BY c.id;
-- ten open cases with a gap (events 7 and 8 held, waiting for 6)
UPDATE public_feed_state SET held = 2
 WHERE case_id IN (SELECT id FROM cases ORDER BY id DESC LIMIT 10);
INSERT INTO public_feed_pending (case_id, seq, envelope, held_at)
SELECT c.id, s, '\x00'::bytea, :'t_now'::timestamptz - interval '2 minutes'
  FROM (SELECT id FROM cases ORDER BY id DESC LIMIT 10) c, generate_series(7, 8) s;

-- ------------------------------------------------------------ dispatcher / classifier tables
INSERT INTO case_assignments (case_id, attempt, role, department, handler, rule, state, created_at)
SELECT c.id, 1, 'lead', c.department, c.handler, 'rule1',
       CASE WHEN c.status IN ('closed', 'merged', 'rejected', 'withdrawn') THEN 'done' ELSE 'open' END,
       c.assigned_at
  FROM cases c WHERE c.department IS NOT NULL ORDER BY c.id;

INSERT INTO case_returns (case_id, event_id, attempt, department, reason, returned_at, decided_by)
SELECT c.id, pg_temp.u7(c.created_at, 3, substr(c.case_no, 2)::bigint), 1, c.department, 'not ours',
       c.created_at + interval '1 hour', 'dispatcher'
  FROM cases c WHERE substr(c.case_no, 2)::int % 50 = 11 AND c.department IS NOT NULL ORDER BY c.id;

INSERT INTO case_fingerprints (case_id, district_code, domain, simhash, received_at)
SELECT c.id, c.district_code, c.domain, ('x' || substr(md5(c.case_no), 1, 16))::bit(64)::bigint,
       c.created_at
  FROM cases c ORDER BY c.id;

INSERT INTO case_duplicates (case_id, master_id, distance, created_at)
SELECT c.id, m.id, 2, c.created_at
  FROM cases c JOIN cases m ON m.case_no = 'K' || lpad((substr(c.case_no, 2)::int - 1)::text, 10, '0')
 WHERE substr(c.case_no, 2)::int % 100 = 51;

INSERT INTO hotspots (district_code, domain, window_start, window_ms, master_id, case_count, detected_at)
SELECT c.district_code, c.domain, c.created_at, 3600000, c.id, 5, c.created_at + interval '1 minute'
  FROM cases c WHERE substr(c.case_no, 2)::int % 400 = 13;

INSERT INTO open311_requests (case_id, service_code, token_id, created_at)
SELECT c.id, 'svc' || substr(c.case_no, 2)::int % 12, 'tok1', c.created_at
  FROM cases c WHERE c.channel = 'open311' ORDER BY c.id;

-- ------------------------------------------------------------ queue tables
-- outbox: a small live backlog per producer
INSERT INTO outbox (producer, topic, msg_key, payload)
SELECT (ARRAY['intake','classifier','dispatcher','sla-monitor','notifier','archiver'])[1 + i % 6],
       'kesu.x.v1', 'k' || i, '\x00'::bytea
  FROM generate_series(1, 600) i;

-- inbox: 11 claims a case over the last 14 days + 1 hour, six consumer groups
-- (events of the first hour are the ones the next purge removes)
INSERT INTO inbox (consumer, event_id, applied_at)
SELECT g, pg_temp.u7(t, 4, i), t + interval '1 second'
  FROM (SELECT i, (ARRAY['classifier','dispatcher','sla-monitor','notifier','archiver','intake'])[1 + i % 6] AS g,
               :'t_now'::timestamptz - interval '14 days 1 hour'
                   + (i - 1) * (interval '14 days 1 hour' / :n_inbox) AS t
          FROM generate_series(1, :n_inbox) i) x
 ORDER BY g, t;

SELECT setval('case_no_seq', :n_cases);
RESET session_replication_role;
VACUUM (ANALYZE);
SELECT relname, n_live_tup, pg_size_pretty(pg_total_relation_size(relid)) AS size
  FROM pg_stat_user_tables ORDER BY pg_total_relation_size(relid) DESC;
