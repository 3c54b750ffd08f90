-- Statements that run every few seconds or on every console refresh read
-- whole tables that grow by a province's 120,000 cases a day (measured on a
-- database of 2 million cases, 5 million SLA timers, 4 million notices:
-- docs/performance.md, "At a province's scale"). Each index below serves one
-- such statement from the rows that are still open, whatever the table holds.
--
-- On a large database build them first without blocking writes, with the same
-- statements as CREATE INDEX CONCURRENTLY IF NOT EXISTS (outside a transaction);
-- this migration then finds them and only records itself (docs/operations.md).

-- the SLA monitor's open-timer gauge every 10 s (st_pending: a sequential scan
-- of every timer ever started, 104k buffers / 400 ms at 5 million timers), the
-- console's SLA tile and `sla recompute`. state is already in the predicate of
-- sla_timers_next, so its updates were not HOT before either.
CREATE INDEX IF NOT EXISTS sla_timers_open ON sla_timers (kind) WHERE state IN ('running', 'paused', 'breached');

-- the console's open work (SLA tile, departments, emergencies): the predicate is
-- the console's OPEN_CASE (services/intake/api_console.c) word for word
CREATE INDEX IF NOT EXISTS cases_open ON cases (created_at)
    WHERE status NOT IN ('closed', 'merged', 'rejected', 'withdrawn');

-- the archiver's contact-data retention pass (as_retention): complainants not
-- yet purged, oldest first (it walked every complainant and every case twice,
-- 404k buffers / 2.8 s at 2 million cases)
CREATE INDEX IF NOT EXISTS complainants_unpurged ON complainants (created_at) WHERE purged_at IS NULL;

-- GET /v1/archive?from=&to= pages in this order (a sequential scan and a sort
-- of every archive record per page)
CREATE INDEX IF NOT EXISTS archive_records_closed ON archive_records (closed_at, case_no, case_version);

-- the console's hotspot tile: the last days' detections
CREATE INDEX IF NOT EXISTS hotspots_detected ON hotspots (detected_at);
