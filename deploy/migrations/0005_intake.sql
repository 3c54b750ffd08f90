-- 0005: intake's public door - channel details, attachments by reference,
-- staff actions' state, the contact-data audit, the access-code throttle,
-- and row-level security for intake's queries.
--
-- Privacy model (docs/decisions/0011-intake-row-level-security.md): intake
-- runs every staff and complainant transaction as the non-superuser role
-- kesu_api (api_tx_begin: SET LOCAL ROLE kesu_api, kesu.role,
-- kesu.department, kesu.access_hash), so the policies below decide which
-- case rows a statement can see or change, whatever its WHERE clause says.
-- The other services connect as the owner and are not affected.

-- Roles are cluster-wide while migrations run per database: create it once,
-- and let a concurrent migration of another database win the race quietly.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'kesu_api') THEN
        CREATE ROLE kesu_api NOLOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END $$;
-- the connecting role must be allowed to SET ROLE to it
DO $$
BEGIN
    EXECUTE format('GRANT kesu_api TO %I', current_user);
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END $$;

-- channel details: phone call_id/agent_id, letter received_date/scan_ref,
-- walk_in window_id (validate.c says which channel needs which)
ALTER TABLE cases ADD COLUMN channel_data jsonb NOT NULL DEFAULT '{}';
-- attachments by reference: [{"url","name","content_type","size","sha256"}]
ALTER TABLE cases ADD COLUMN attachments jsonb NOT NULL DEFAULT '[]';
-- request_info: set while the department waits for the complainant
ALTER TABLE cases ADD COLUMN info_requested_at timestamptz;
-- extension_request: minutes asked for, until a supervisor decides
ALTER TABLE cases ADD COLUMN extension_pending_minutes integer;
ALTER TABLE cases ADD COLUMN extension_reason text;
-- merge: the case this one was merged into
ALTER TABLE cases ADD COLUMN merged_into uuid REFERENCES cases (id);
-- withdraw / reject: why (masked free text)
ALTER TABLE cases ADD COLUMN status_reason text;
-- supervise: how often and how high (1 department head, 2 supervision office)
ALTER TABLE cases ADD COLUMN supervise_level smallint NOT NULL DEFAULT 0;

-- complainants are reached from their case (RLS below) and the list
-- filters by these
CREATE INDEX cases_complainant ON cases (complainant_id) WHERE complainant_id IS NOT NULL;
CREATE INDEX cases_list ON cases (created_at DESC, id DESC);
CREATE INDEX cases_district ON cases (district_code, created_at);

-- Every unmasking of contact data (a supervisor or admin reading a
-- complainant's phone in clear): who, which case, which fields, why.
-- Append-only: the trigger refuses UPDATE and DELETE for everyone.
CREATE TABLE contact_access_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    token_id    uuid NOT NULL,          -- api_tokens.id of the reader
    role        text NOT NULL,
    case_id     uuid NOT NULL,
    fields      text[] NOT NULL,        -- name, phone, email, id_number
    reason      text                    -- the caller's stated purpose, masked
);
CREATE INDEX contact_access_log_case ON contact_access_log (case_id, at);

CREATE FUNCTION contact_access_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'contact_access_log is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER contact_access_log_no_change BEFORE UPDATE OR DELETE ON contact_access_log
    FOR EACH ROW EXECUTE FUNCTION contact_access_log_append_only();
CREATE TRIGGER contact_access_log_no_truncate BEFORE TRUNCATE ON contact_access_log
    FOR EACH STATEMENT EXECUTE FUNCTION contact_access_log_append_only();

-- Wrong access codes per case number (whether or not the case exists, so
-- the throttle itself tells nothing): failures in the current window.
CREATE TABLE access_code_throttle (
    case_no      text PRIMARY KEY,
    window_start timestamptz NOT NULL,
    failures     integer NOT NULL
);

-- ------------------------------------------------------------ privileges
GRANT USAGE ON SCHEMA public TO kesu_api;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO kesu_api;
-- tables later migrations add are readable too (sibling route files read
-- them inside api_tx_begin); writes are granted table by table
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO kesu_api;
GRANT INSERT, UPDATE ON cases, complainants, case_events, idempotency_keys TO kesu_api;
GRANT INSERT ON outbox, contact_access_log TO kesu_api;
GRANT INSERT, UPDATE, DELETE ON access_code_throttle TO kesu_api;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO kesu_api;
-- secrets stay out of reach even for reading
REVOKE SELECT ON api_tokens FROM kesu_api;

-- ------------------------------------------------------ row-level security
-- kesu.role: agent, handler, supervisor, auditor, admin, integrator;
-- complainant (no token, an access code: kesu.access_hash); anonymous (no
-- token at all: the public Open311 reads, which see Open311 requests only
-- and show only their public columns). Unset or unknown sees nothing.
CREATE FUNCTION kesu_case_visible(dept text, code_hash bytea, chan text) RETURNS boolean
    LANGUAGE sql STABLE AS $$
    SELECT CASE current_setting('kesu.role', true)
        WHEN 'handler' THEN dept IS NOT NULL
            AND dept = NULLIF(current_setting('kesu.department', true), '')
        WHEN 'anonymous' THEN chan = 'open311'
        WHEN 'complainant' THEN code_hash IS NOT NULL
            AND code_hash = decode(NULLIF(current_setting('kesu.access_hash', true), ''), 'hex')
        WHEN 'agent' THEN true
        WHEN 'supervisor' THEN true
        WHEN 'auditor' THEN true
        WHEN 'admin' THEN true
        WHEN 'integrator' THEN true
        ELSE false
    END
$$;

ALTER TABLE cases ENABLE ROW LEVEL SECURITY;
CREATE POLICY cases_read ON cases FOR SELECT TO kesu_api
    USING (kesu_case_visible(department, access_code_hash, channel));
CREATE POLICY cases_change ON cases FOR UPDATE TO kesu_api
    USING (kesu_case_visible(department, access_code_hash, channel)
           AND current_setting('kesu.role', true) <> 'auditor')
    WITH CHECK (true);
CREATE POLICY cases_submit ON cases FOR INSERT TO kesu_api
    WITH CHECK (current_setting('kesu.role', true) IN ('agent', 'supervisor', 'admin', 'integrator'));

-- history, contact data and timers follow the visibility of their case
-- (the sub-select on cases is itself filtered by the policies above)
ALTER TABLE case_events ENABLE ROW LEVEL SECURITY;
CREATE POLICY case_events_read ON case_events FOR SELECT TO kesu_api
    USING (EXISTS (SELECT 1 FROM cases c WHERE c.id = case_events.case_id));
CREATE POLICY case_events_append ON case_events FOR INSERT TO kesu_api
    WITH CHECK (EXISTS (SELECT 1 FROM cases c WHERE c.id = case_events.case_id));

ALTER TABLE complainants ENABLE ROW LEVEL SECURITY;
CREATE POLICY complainants_read ON complainants FOR SELECT TO kesu_api
    USING (EXISTS (SELECT 1 FROM cases c WHERE c.complainant_id = complainants.id));
CREATE POLICY complainants_submit ON complainants FOR INSERT TO kesu_api
    WITH CHECK (current_setting('kesu.role', true) IN ('agent', 'supervisor', 'admin', 'integrator'));

ALTER TABLE sla_timers ENABLE ROW LEVEL SECURITY;
CREATE POLICY sla_timers_read ON sla_timers FOR SELECT TO kesu_api
    USING (EXISTS (SELECT 1 FROM cases c WHERE c.id = sla_timers.case_id));

ALTER TABLE contact_access_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY contact_access_log_append ON contact_access_log FOR INSERT TO kesu_api
    WITH CHECK (current_setting('kesu.role', true) IN ('supervisor', 'admin'));
CREATE POLICY contact_access_log_read ON contact_access_log FOR SELECT TO kesu_api
    USING (current_setting('kesu.role', true) IN ('auditor', 'admin'));
