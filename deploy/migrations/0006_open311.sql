-- 0006: what the Open311 GeoReport v2 door of intake needs (services/intake/open311.c).
--
-- A request submitted over Open311 is an ordinary case (channel open311); this
-- table keeps what the case row has no column for: the service_code the client
-- chose, the integrator token that submitted it (whose reads see its own
-- requests in full), the media URL and the jurisdiction's address id.
CREATE TABLE open311_requests (
    case_id      uuid PRIMARY KEY REFERENCES cases (id),
    service_code text NOT NULL,
    token_id     text NOT NULL,           -- api_tokens.id of the submitter
    media_url    text,
    address_id   text,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX open311_requests_service ON open311_requests (service_code);
CREATE INDEX open311_requests_token ON open311_requests (token_id);

-- servicerequestupdates selects history rows by time.
CREATE INDEX IF NOT EXISTS case_events_occurred ON case_events (occurred_at);

-- Requests run as kesu_api when migration 0005's row-level security is in place.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'kesu_api') THEN
        GRANT SELECT, INSERT ON open311_requests TO kesu_api;
    END IF;
END $$;
