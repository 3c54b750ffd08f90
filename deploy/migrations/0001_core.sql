-- 0001: the case store, its history, and the reliability tables every service uses.
--
-- Applied by `kesuctl migrate` (never by hand), in one transaction per file,
-- recorded in schema_migrations. The allowed status transitions are NOT
-- written here: `kesuctl migrate` fills case_transitions from the one table
-- in common/casefsm.c, so C and SQL cannot drift.

CREATE EXTENSION IF NOT EXISTS pgcrypto;

-- Allowed (from, to) status pairs; the trigger on cases refuses anything else.
CREATE TABLE case_transitions (
    from_status text NOT NULL,
    to_status   text NOT NULL,
    PRIMARY KEY (from_status, to_status)
);

CREATE TABLE complainants (
    id          uuid PRIMARY KEY,
    name_enc    bytea,            -- AES-256-GCM (nonce || ciphertext || tag)
    phone_enc   bytea,
    email_enc   bytea,
    id_no_enc   bytea,
    phone_index bytea,            -- HMAC-SHA256 blind index of the normalised phone
    phone_last4 text,             -- for masking only (138****1234 needs prefix too)
    phone_mask  text,             -- precomputed masked phone, e.g. 138****1234
    webhook_url text,             -- where the complainant's channel wants notices (dev/test)
    created_at  timestamptz NOT NULL DEFAULT now(),
    purged_at   timestamptz
);
CREATE INDEX complainants_phone_index ON complainants (phone_index);

CREATE TABLE cases (
    id              uuid PRIMARY KEY,
    case_no         text NOT NULL UNIQUE,
    access_code_hash bytea NOT NULL,   -- SHA-256 of the access code
    channel         text NOT NULL,
    external_ref    text,
    status          text NOT NULL DEFAULT 'received',
    version         bigint NOT NULL DEFAULT 1,
    event_seq       bigint NOT NULL DEFAULT 0,  -- last case_events.seq
    title           text NOT NULL,             -- masked
    body            text NOT NULL,             -- masked
    language        text NOT NULL DEFAULT 'zh-CN',
    address         text,
    district_code   text,
    lat             double precision,
    lon             double precision,
    anonymous       boolean NOT NULL DEFAULT false,
    confidential    boolean NOT NULL DEFAULT false,
    complainant_id  uuid REFERENCES complainants (id),
    trace_id        text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- classifier
    domain          text,
    request_type    text,
    category        text,
    urgency         text,
    flags           text[] NOT NULL DEFAULT '{}',
    confidence      double precision,
    needs_review    boolean NOT NULL DEFAULT false,
    classified_at   timestamptz,
    -- dispatcher
    department      text,
    handler         text,
    co_departments  text[] NOT NULL DEFAULT '{}',
    assigned_at     timestamptz,
    dispatch_attempt integer NOT NULL DEFAULT 0,
    -- handling
    accepted_at     timestamptz,
    resolved_at     timestamptz,
    measures        text,
    reply           text,
    satisfaction    smallint,
    feedback_comment text,
    reopen_count    integer NOT NULL DEFAULT 0,
    closed_at       timestamptz,
    close_reason    text
);
CREATE UNIQUE INDEX cases_channel_ref ON cases (channel, external_ref) WHERE external_ref IS NOT NULL;
CREATE INDEX cases_status ON cases (status);
CREATE INDEX cases_department ON cases (department, status);
CREATE INDEX cases_created ON cases (created_at);

CREATE FUNCTION cases_check_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status THEN
        PERFORM 1 FROM case_transitions
         WHERE from_status = OLD.status AND to_status = NEW.status;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'case %: transition % -> % is not allowed', OLD.case_no, OLD.status, NEW.status
                USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    IF NEW.version < OLD.version THEN
        RAISE EXCEPTION 'case %: version may not go back', OLD.case_no USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER cases_transition BEFORE UPDATE ON cases
    FOR EACH ROW EXECUTE FUNCTION cases_check_transition();

CREATE FUNCTION cases_check_initial() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status <> 'received' THEN
        RAISE EXCEPTION 'a new case starts as received, not %', NEW.status USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER cases_initial BEFORE INSERT ON cases
    FOR EACH ROW EXECUTE FUNCTION cases_check_initial();

-- The case history: one row per event, seq gap-free per case.
CREATE TABLE case_events (
    case_id      uuid NOT NULL REFERENCES cases (id),
    seq          bigint NOT NULL,
    event_id     uuid NOT NULL UNIQUE,
    event_type   text NOT NULL,
    version      bigint NOT NULL,
    status       text NOT NULL,          -- case status after the event
    producer     text NOT NULL,
    actor        text,                   -- token id / service, never a person's name
    occurred_at  timestamptz NOT NULL,
    summary      jsonb NOT NULL,         -- the payload as JSON (no PII)
    PRIMARY KEY (case_id, seq)
);

-- Transactional outbox: written in the same transaction as the change,
-- published by the relay, deleted on the delivery report.
CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    producer    text NOT NULL,        -- service whose relay publishes the row
    topic       text NOT NULL,
    msg_key     text NOT NULL,
    payload     bytea NOT NULL,
    headers     jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    attempts    integer NOT NULL DEFAULT 0,
    last_error  text
);
CREATE INDEX outbox_producer ON outbox (producer, id);

-- Consumer dedup: (consumer group, event id) applied once.
CREATE TABLE inbox (
    consumer    text NOT NULL,
    event_id    uuid NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

CREATE TABLE idempotency_keys (
    key         text PRIMARY KEY,
    request_hash bytea NOT NULL,
    case_id     uuid NOT NULL REFERENCES cases (id),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_tokens (
    id          uuid PRIMARY KEY,
    token_hash  bytea NOT NULL UNIQUE,   -- SHA-256 of the secret
    role        text NOT NULL CHECK (role IN ('agent','handler','supervisor','auditor','admin','integrator')),
    department  text,
    label       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    CHECK (role <> 'handler' OR department IS NOT NULL)
);

CREATE SEQUENCE case_no_seq;

-- dispatcher
CREATE TABLE departments (
    code        text PRIMARY KEY,
    name        text NOT NULL,
    parent      text,
    head        text,
    on_duty     text,
    emergency_desk boolean NOT NULL DEFAULT false,
    webhook_url text
);

CREATE TABLE handlers (
    id          text PRIMARY KEY,
    department  text NOT NULL REFERENCES departments (code),
    name        text NOT NULL,
    skills      text[] NOT NULL DEFAULT '{}',
    capacity    integer NOT NULL DEFAULT 50,
    open_load   integer NOT NULL DEFAULT 0,
    active      boolean NOT NULL DEFAULT true
);

-- sla-monitor
CREATE TABLE sla_timers (
    id          bigserial PRIMARY KEY,
    case_id     uuid NOT NULL REFERENCES cases (id),
    kind        text NOT NULL,        -- accept, resolve, reply, follow_up
    started_at  timestamptz NOT NULL,
    due_at      timestamptz NOT NULL,
    state       text NOT NULL DEFAULT 'running' CHECK (state IN ('running','stopped','breached')),
    stopped_at  timestamptz,
    breached_at timestamptz,
    UNIQUE (case_id, kind)
);
CREATE INDEX sla_timers_due ON sla_timers (due_at) WHERE state = 'running';

CREATE TABLE sla_timer_log (
    id          bigserial PRIMARY KEY,
    case_id     uuid NOT NULL,
    kind        text NOT NULL,
    action      text NOT NULL,        -- start, stop, breach, pause, resume, extend
    at          timestamptz NOT NULL DEFAULT now(),
    due_at      timestamptz,
    note        text
);
CREATE INDEX sla_timer_log_case ON sla_timer_log (case_id);

-- notifier
CREATE TABLE notifications (
    id          bigserial PRIMARY KEY,
    case_id     uuid NOT NULL,
    trigger_event_id uuid NOT NULL,
    channel     text NOT NULL,
    audience    text NOT NULL,
    template    text NOT NULL,
    target      text,                 -- webhook URL etc.; never a phone number in clear
    body        text NOT NULL,
    state       text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending','sent','failed')),
    attempts    integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz,
    UNIQUE (trigger_event_id, channel, audience)
);
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE state = 'pending';

-- archiver
CREATE TABLE public_feed_state (
    case_id     uuid PRIMARY KEY,
    next_seq    bigint NOT NULL DEFAULT 1    -- next history seq to publish
);

CREATE TABLE public_feed_pending (
    case_id     uuid NOT NULL,
    seq         bigint NOT NULL,
    envelope    bytea NOT NULL,
    PRIMARY KEY (case_id, seq)
);

CREATE TABLE archive_records (
    case_id     uuid PRIMARY KEY,
    case_no     text NOT NULL UNIQUE,
    closed_at   timestamptz,
    archived_at timestamptz NOT NULL DEFAULT now(),
    record      jsonb NOT NULL
);

CREATE FUNCTION archive_records_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'archive records are immutable' USING ERRCODE = 'check_violation';
END $$;
CREATE TRIGGER archive_records_no_update BEFORE UPDATE OR DELETE ON archive_records
    FOR EACH ROW EXECUTE FUNCTION archive_records_immutable();
