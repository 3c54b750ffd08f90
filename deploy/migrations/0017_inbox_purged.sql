-- 0017: inbox retention (decision 0025). The consumer loop deletes a group's
-- inbox rows once both the event (its time-ordered id) and the claim are older
-- than inbox.retention_days; this row says up to which event id it has, so
-- `kesuctl verify` checks only the events whose inbox rows are still kept.
CREATE TABLE inbox_purged (
    consumer   text PRIMARY KEY,
    before_id  uuid NOT NULL,          -- events with smaller ids may have lost their row
    purged_at  timestamptz NOT NULL DEFAULT now()
);
