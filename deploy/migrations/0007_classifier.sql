-- 0007: what the classifier needs for duplicates (并单 candidates) and
-- hotspots (共性问题). Owned by the classifier (DESIGN.md section 2).

-- case_fingerprints: one SimHash (64 bits over character 3-shingles of the
-- masked title and body) per classified case, with its district and domain,
-- so a new case is compared against the open cases of its district in a
-- time window without re-reading their text. district_code '' = unknown.
CREATE TABLE case_fingerprints (
    case_id       uuid PRIMARY KEY REFERENCES cases (id),
    district_code text NOT NULL DEFAULT '',
    domain        text NOT NULL DEFAULT '',
    simhash       bigint NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX case_fingerprints_district_time ON case_fingerprints (district_code, received_at);

-- case_duplicates: a case that very likely repeats an open case is linked to
-- that case's master (the oldest case of the chain), for a human to merge.
CREATE TABLE case_duplicates (
    case_id    uuid PRIMARY KEY REFERENCES cases (id),
    master_id  uuid NOT NULL REFERENCES cases (id),
    distance   integer NOT NULL,          -- SimHash Hamming distance to the nearest case
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX case_duplicates_master ON case_duplicates (master_id);

-- hotspots: at least K similar cases in one district within T minutes.
-- One row (and one HotspotDetected event on the master case) per district,
-- domain and window: the unique key makes "once per window" hold across
-- classifier instances without a lock.
CREATE TABLE hotspots (
    id            bigserial PRIMARY KEY,
    district_code text NOT NULL,
    domain        text NOT NULL,
    window_start  timestamptz NOT NULL,
    window_ms     bigint NOT NULL,
    master_id     uuid NOT NULL REFERENCES cases (id),
    case_count    integer NOT NULL,
    detected_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (district_code, domain, window_start)
);
