-- The design's floor in PostgreSQL (scripts/bench_floor.sh runs it with pgbench):
-- one pgbench transaction takes a batch of :n new cases through the row work
-- the six stages do per case in scripts/bench.sh (counted there from
-- pg_stat_user_tables), each stage one transaction of set-based statements,
-- each relay pass one DELETE ... RETURNING, on the real schema (its indexes,
-- triggers and foreign keys). No service logic, no Kafka, no protobuf:
-- what is left is the rows' own cost, the lowest PostgreSQL can do for a case.
-- Per case: complainant, case, 5 status/seq changes of the case row, 5 history
-- rows, 10 outbox rows written and deleted, 11 inbox rows, a fingerprint, an
-- assignment, 2 SLA timers and their 2 log rows, 2 notices written and marked
-- sent, the public feed's state row written and bumped 4 times, the statistics
-- row written and updated twice.
-- :n, the batch size, comes from pgbench -D n=... (scripts/bench_floor.py); the ids of batch
-- :b (floor_case, floor_person, floor_event, floor_cases) are SQL functions made there,
-- time-ordered like the services' ids, and inlined by the planner
SELECT nextval('floor_batch') AS b \gset
-- intake: complainant, case, history row, outbox row
BEGIN;
INSERT INTO complainants (id, name_enc, phone_enc, phone_index, phone_last4, phone_mask)
  SELECT floor_person(:b::bigint, i),
         decode(repeat('ab', 44), 'hex'), decode(repeat('cd', 39), 'hex'),
         sha256(convert_to((:b::bigint)::text || '-' || i::text, 'UTF8')), '1234', '138****1234'
    FROM generate_series(1, :n::int) i;
INSERT INTO cases (id, case_no, access_code_hash, channel, title, body, district_code,
                   complainant_id, trace_id, event_seq)
  SELECT floor_case(:b::bigint, i),
         'F' || (:b::bigint)::text || '-' || i::text, sha256(convert_to(i::text, 'UTF8')), 'web',
         '小区夜间施工噪音扰民', repeat('晚上十一点以后仍在施工，噪音很大影响休息。', 13),
         '440106', floor_person(:b::bigint, i),
         md5((:b::bigint)::text || '-' || i::text), 1
    FROM generate_series(1, :n::int) i;
INSERT INTO case_events (case_id, seq, event_id, event_type, version, status, producer, actor,
                         occurred_at, summary)
  SELECT floor_case(:b::bigint, i), 1,
         floor_event(:b::bigint, i, 1),
         'CaseReceived', 1, 'received', 'intake', 'intake', now(),
         jsonb_build_object('title', '小区夜间施工噪音扰民', 'body',
                            repeat('晚上十一点以后仍在施工，噪音很大影响休息。', 10))
    FROM generate_series(1, :n::int) i;
WITH o AS (INSERT INTO outbox (producer, topic, msg_key, payload)
  SELECT 'intake', 'kesu.intake.v1', md5(i::text), decode(repeat('0a', 900), 'hex')
    FROM generate_series(1, :n::int) i RETURNING id)
SELECT min(id) AS lo FROM o \gset
COMMIT;
DELETE FROM outbox WHERE producer = 'intake' AND id >= :lo::bigint RETURNING id, payload;
-- classifier: inbox, status change with its columns, fingerprint, history + outbox
BEGIN;
INSERT INTO inbox (consumer, event_id)
  SELECT 'kesu-classifier', floor_event(:b::bigint, i, 1)
    FROM generate_series(1, :n::int) i ON CONFLICT DO NOTHING;
UPDATE cases SET status = 'classified', version = version + 1, event_seq = event_seq + 1,
       updated_at = now(), domain = 'urban', request_type = 'complaint', category = 'noise',
       urgency = 'normal', confidence = 0.91, classified_at = now()
 WHERE id = ANY (floor_cases(:b::bigint, :n::int));
INSERT INTO case_fingerprints (case_id, district_code, domain, simhash)
  SELECT floor_case(:b::bigint, i), '440106', 'urban',
         ((:b::bigint) * 1000 + i)::bigint FROM generate_series(1, :n::int) i;
INSERT INTO case_events (case_id, seq, event_id, event_type, version, status, producer, actor,
                         occurred_at, summary)
  SELECT floor_case(:b::bigint, i), 2,
         floor_event(:b::bigint, i, 2),
         'CaseClassified', 2, 'classified', 'classifier', 'classifier', now(),
         '{"domain": "urban", "category": "noise", "urgency": "normal", "confidence": 0.91}'::jsonb
    FROM generate_series(1, :n::int) i;
WITH o AS (INSERT INTO outbox (producer, topic, msg_key, payload)
  SELECT 'classifier', 'kesu.classifier.v1', md5(i::text), decode(repeat('0b', 260), 'hex')
    FROM generate_series(1, :n::int) i RETURNING id)
SELECT min(id) AS lo FROM o \gset
COMMIT;
DELETE FROM outbox WHERE producer = 'classifier' AND id >= :lo::bigint RETURNING id, payload;
-- dispatcher: inbox, status change with department and handler, assignment, history + outbox
BEGIN;
INSERT INTO inbox (consumer, event_id)
  SELECT 'kesu-dispatcher', floor_event(:b::bigint, i, 2)
    FROM generate_series(1, :n::int) i ON CONFLICT DO NOTHING;
UPDATE cases SET status = 'assigned', version = version + 1, event_seq = event_seq + 1,
       updated_at = now(), department = 'dept-' || ((:b::bigint) % 16), handler = 'h-' || ((:b::bigint) % 64),
       assigned_at = now(), dispatch_attempt = 1
 WHERE id = ANY (floor_cases(:b::bigint, :n::int));
INSERT INTO case_assignments (case_id, attempt, role, department, handler, rule)
  SELECT floor_case(:b::bigint, i), 1, 'lead',
         'dept-' || ((:b::bigint) % 16), 'h-' || ((:b::bigint) % 64), 'noise' FROM generate_series(1, :n::int) i;
INSERT INTO case_events (case_id, seq, event_id, event_type, version, status, producer, actor,
                         occurred_at, summary)
  SELECT floor_case(:b::bigint, i), 3,
         floor_event(:b::bigint, i, 3),
         'CaseAssigned', 3, 'assigned', 'dispatcher', 'dispatcher', now(),
         '{"department": "dept-1", "handler": "h-1"}'::jsonb
    FROM generate_series(1, :n::int) i;
WITH o AS (INSERT INTO outbox (producer, topic, msg_key, payload)
  SELECT 'dispatcher', 'kesu.dispatcher.v1', md5(i::text), decode(repeat('0c', 200), 'hex')
    FROM generate_series(1, :n::int) i RETURNING id)
SELECT min(id) AS lo FROM o \gset
COMMIT;
DELETE FROM outbox WHERE producer = 'dispatcher' AND id >= :lo::bigint RETURNING id, payload;
-- sla-monitor: inbox, two timers and their log rows
BEGIN;
INSERT INTO inbox (consumer, event_id)
  SELECT 'kesu-sla-monitor', floor_event(:b::bigint, i, 3)
    FROM generate_series(1, :n::int) i ON CONFLICT DO NOTHING;
INSERT INTO sla_timers (case_id, kind, started_at, due_at, next_at, limit_spec, total_ms,
                        department, request_type, urgency)
  SELECT floor_case(:b::bigint, i), k, now(),
         now() + interval '1 day', now() + interval '20 hours', '1d', 86400000, 'dept-1',
         'complaint', 'normal'
    FROM generate_series(1, :n::int) i, (VALUES ('accept'), ('resolve')) AS t(k);
INSERT INTO sla_timer_log (case_id, kind, action, due_at)
  SELECT floor_case(:b::bigint, i), k, 'started',
         now() + interval '1 day'
    FROM generate_series(1, :n::int) i, (VALUES ('accept'), ('resolve')) AS t(k);
COMMIT;
-- notifier: inbox (3 events a case), two notices, sent, history positions, history + outbox
BEGIN;
INSERT INTO inbox (consumer, event_id)
  SELECT 'kesu-notifier', floor_event(:b::bigint, i, k)
    FROM generate_series(1, :n::int) i, generate_series(1, 3) k ON CONFLICT DO NOTHING;
INSERT INTO notifications (case_id, trigger_event_id, event_type, channel, audience, template,
                           target, body)
  SELECT floor_case(:b::bigint, i),
         floor_event(:b::bigint, i, k),
         'CaseAssigned', 'log', a, 'ack', NULL, '您的诉求已受理，编号 F' || (:b::bigint)::text || '-' || i::text || '，我们将尽快处理。'
    FROM generate_series(1, :n::int) i, (VALUES (1, 'complainant'), (3, 'handler')) AS t(k, a);
COMMIT;
BEGIN;
UPDATE notifications SET state = 'sent', sent_at = now(), attempts = attempts + 1, recorded_at = now()
 WHERE case_id = ANY (floor_cases(:b::bigint, :n::int));
UPDATE cases SET event_seq = event_seq + 1, updated_at = now()
 WHERE id = ANY (floor_cases(:b::bigint, :n::int));
UPDATE cases SET event_seq = event_seq + 1, updated_at = now()
 WHERE id = ANY (floor_cases(:b::bigint, :n::int));
INSERT INTO case_events (case_id, seq, event_id, event_type, version, status, producer, actor,
                         occurred_at, summary)
  SELECT floor_case(:b::bigint, i), 3 + k,
         floor_event(:b::bigint, i, 3 + k),
         'NotificationSent', 3, 'assigned', 'notifier', 'notifier', now(),
         '{"channel": "log", "audience": "complainant", "template": "ack"}'::jsonb
    FROM generate_series(1, :n::int) i, generate_series(1, 2) k;
WITH o AS (INSERT INTO outbox (producer, topic, msg_key, payload)
  SELECT 'notifier', 'kesu.notifier.v1', md5(i::text), decode(repeat('0d', 160), 'hex')
    FROM generate_series(1, :n::int) i, generate_series(1, 2) k RETURNING id)
SELECT min(id) AS lo FROM o \gset
COMMIT;
DELETE FROM outbox WHERE producer = 'notifier' AND id >= :lo::bigint RETURNING id, payload;
-- archiver: inbox (5 public events a case), feed state written and bumped 4 times,
-- 5 public outbox rows, statistics row written and updated twice
BEGIN;
INSERT INTO inbox (consumer, event_id)
  SELECT 'kesu-archiver', floor_event(:b::bigint, i, k)
    FROM generate_series(1, :n::int) i, generate_series(1, 5) k ON CONFLICT DO NOTHING;
INSERT INTO public_feed_state (case_id, next_seq)
  SELECT floor_case(:b::bigint, i), 2
    FROM generate_series(1, :n::int) i;
UPDATE public_feed_state SET next_seq = next_seq + 1
 WHERE case_id = ANY (floor_cases(:b::bigint, :n::int));
UPDATE public_feed_state SET next_seq = next_seq + 1
 WHERE case_id = ANY (floor_cases(:b::bigint, :n::int));
UPDATE public_feed_state SET next_seq = next_seq + 1
 WHERE case_id = ANY (floor_cases(:b::bigint, :n::int));
UPDATE public_feed_state SET next_seq = next_seq + 1
 WHERE case_id = ANY (floor_cases(:b::bigint, :n::int));
WITH o AS (INSERT INTO outbox (producer, topic, msg_key, payload)
  SELECT 'archiver', 'kesu.public.v1', md5(i::text), decode(repeat('0e', 300), 'hex')
    FROM generate_series(1, :n::int) i, generate_series(1, 5) k RETURNING id)
SELECT min(id) AS lo FROM o \gset
INSERT INTO case_stats (case_id, received_at, channel, district)
  SELECT floor_case(:b::bigint, i), now(), 'web', '440106'
    FROM generate_series(1, :n::int) i;
UPDATE case_stats SET category = 'noise'
 WHERE case_id = ANY (floor_cases(:b::bigint, :n::int));
UPDATE case_stats SET department = 'dept-1'
 WHERE case_id = ANY (floor_cases(:b::bigint, :n::int));
COMMIT;
DELETE FROM outbox WHERE producer = 'archiver' AND id >= :lo::bigint RETURNING id, payload;
