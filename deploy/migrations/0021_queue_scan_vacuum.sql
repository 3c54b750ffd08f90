-- The notifier's due pass and its recording pick, and the SLA monitor's scan,
-- read partial indexes (notifications_send_order, notifications_unrecorded,
-- sla_timers_next) from their left end. A row that leaves such an index (a
-- notice sent, a timer stopped) leaves a dead entry there until vacuum removes
-- it, and every pass reads it again: 300,000 of them made a due pass read 2,722
-- buffers instead of 49 (docs/performance.md, "At a province's scale"). By
-- default a table is vacuumed after 20 % of it changed (a year of a province's
-- notices: every ~70 days), and PostgreSQL 15 skips the index pass when few of
-- its pages have dead rows. Vacuum these two tables after a fixed number of
-- changes plus a small fraction, always with the index pass (656 ms for 4
-- million notices; the due pass back to 69 buffers).
ALTER TABLE notifications SET (autovacuum_vacuum_scale_factor = 0.002,
    autovacuum_vacuum_threshold = 5000, vacuum_index_cleanup = on);
ALTER TABLE sla_timers SET (autovacuum_vacuum_scale_factor = 0.002,
    autovacuum_vacuum_threshold = 5000, vacuum_index_cleanup = on);
