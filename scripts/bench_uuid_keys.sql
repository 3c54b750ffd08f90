-- Why ids are time-ordered UUIDs (version 7, decision 0021): the inbox's key
-- (consumer, event_id) with random (v4) and with time-ordered (v7-like) event
-- ids. Both tables get 3 million rows (about two days of a province's inbox at
-- 11 rows per case), then a checkpoint, then 200,000 more; printed: the
-- insert times and the WAL each insert wrote (full-page images after the
-- checkpoint: a random key dirties a different leaf page per row).
-- Run: psql "$KESU_PG" -X -f scripts/bench_uuid_keys.sql   (drops its tables at the end)
\timing off
DROP TABLE IF EXISTS ib_v4, ib_v7;
CREATE TABLE ib_v4 (consumer text NOT NULL, event_id uuid NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (consumer, event_id));
CREATE TABLE ib_v7 (LIKE ib_v4 INCLUDING ALL);
INSERT INTO ib_v4 (consumer, event_id)
    SELECT 'kesu-' || (i % 5), gen_random_uuid() FROM generate_series(1, 3000000) i;
INSERT INTO ib_v7 (consumer, event_id)
    SELECT 'kesu-' || (i % 5),
           (lpad(to_hex(1700000000000 + i / 10), 12, '0') || substr(md5(random()::text), 1, 20))::uuid
      FROM generate_series(1, 3000000) i;
CHECKPOINT;
SELECT pg_current_wal_lsn() AS l0 \gset
\echo 'random (v4) event ids, 200,000 inserts:'
\timing on
INSERT INTO ib_v4 (consumer, event_id)
    SELECT 'kesu-' || (i % 5), gen_random_uuid() FROM generate_series(1, 200000) i;
\timing off
SELECT pg_current_wal_lsn() AS l1 \gset
CHECKPOINT;
SELECT pg_current_wal_lsn() AS l2 \gset
\echo 'time-ordered (v7) event ids, 200,000 inserts:'
\timing on
INSERT INTO ib_v7 (consumer, event_id)
    SELECT 'kesu-' || (i % 5),
           (lpad(to_hex(1700000000000 + 300000 + i / 10), 12, '0') || substr(md5(random()::text), 1, 20))::uuid
      FROM generate_series(1, 200000) i;
\timing off
SELECT pg_current_wal_lsn() AS l3 \gset
SELECT pg_size_pretty(pg_wal_lsn_diff(:'l1', :'l0')) AS wal_v4,
       pg_size_pretty(pg_wal_lsn_diff(:'l3', :'l2')) AS wal_v7;
DROP TABLE ib_v4, ib_v7;
