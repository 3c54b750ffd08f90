-- 0004: what the notifier and the archiver need on top of the core schema.

-- notifications: the event type of the trigger, so the sending tick knows
-- which notice is the reply to the complainant (whose delivery moves the case
-- resolved -> replied) without reading the history.
ALTER TABLE notifications ADD COLUMN event_type text NOT NULL DEFAULT '';

-- The feed's held events: since when, so the archiver can report a gap that
-- stays open (an event of the history that never reached a stage topic).
ALTER TABLE public_feed_pending ADD COLUMN held_at timestamptz NOT NULL DEFAULT now();

-- archive_records: one record per close, keyed by (case_id, case_version).
-- A case that is reopened and closed again is archived again, as a second
-- immutable record; the first one stays as it was (the trigger of 0001 still
-- refuses every UPDATE and DELETE).
ALTER TABLE archive_records DROP CONSTRAINT archive_records_pkey;
ALTER TABLE archive_records DROP CONSTRAINT archive_records_case_no_key;
ALTER TABLE archive_records ADD COLUMN case_version bigint NOT NULL DEFAULT 0;
ALTER TABLE archive_records ALTER COLUMN case_version DROP DEFAULT;
ALTER TABLE archive_records ADD PRIMARY KEY (case_id, case_version);
ALTER TABLE archive_records ADD CONSTRAINT archive_records_case_no_version
    UNIQUE (case_no, case_version);

-- The archive record gathers a case's notifications.
CREATE INDEX notifications_case ON notifications (case_id);
