-- Queue tables are not truncated by vacuum. Truncating the empty tail of a
-- table takes an ACCESS EXCLUSIVE lock, which stalls every transaction that
-- writes an outbox row (every stage) for the moment it is held; and a table
-- truncated to 0 pages makes the planner treat it as empty (decision 0018).
ALTER TABLE outbox SET (vacuum_truncate = false);
ALTER TABLE public_feed_pending SET (vacuum_truncate = false);
ALTER TABLE notifications SET (vacuum_truncate = false);
