-- 0008: dispatch catalogue as data, returns and co-handling, SLA timers on a
-- working calendar (issue 5; docs/dispatch.md, docs/sla.md).

-- ---------------------------------------------------------------- dispatch

-- The catalogue loaded by `kesuctl catalogue load`: the whole checked JSON
-- document, one row per load. The dispatcher polls max(version) each tick and
-- swaps its in-memory catalogue when it grew, so a load needs no restart.
CREATE TABLE dispatch_catalogue (
    version     bigserial PRIMARY KEY,
    document    jsonb NOT NULL,
    source      text NOT NULL,            -- file name it came from
    sha256      text NOT NULL,            -- of the file bytes
    rules       integer NOT NULL,
    loaded_at   timestamptz NOT NULL DEFAULT now(),
    loaded_by   text NOT NULL DEFAULT current_user
);

-- The supervision office (督办) that decides a case returned too often (改派).
ALTER TABLE departments ADD COLUMN supervision boolean NOT NULL DEFAULT false;

-- The lead and co-handling assignments (主办/协办) of each dispatch attempt.
CREATE TABLE case_assignments (
    id          bigserial PRIMARY KEY,
    case_id     uuid NOT NULL REFERENCES cases (id),
    attempt     integer NOT NULL,          -- cases.dispatch_attempt of the dispatch
    role        text NOT NULL CHECK (role IN ('lead', 'co')),
    department  text NOT NULL,
    handler     text,
    rule        text NOT NULL,             -- catalogue rule (or emergency/reopen/supervisor/return)
    catalogue_version bigint,              -- NULL: the file the dispatcher started with
    priority    boolean NOT NULL DEFAULT false,  -- a reopened case (重办) goes first
    state       text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'done', 'superseded')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (case_id, attempt, department)
);
CREATE INDEX case_assignments_open ON case_assignments (department, state) WHERE state = 'open';

-- Every return (退单) with the department's reason: the dispute record.
CREATE TABLE case_returns (
    id          bigserial PRIMARY KEY,
    case_id     uuid NOT NULL REFERENCES cases (id),
    event_id    uuid NOT NULL UNIQUE,      -- the CaseReturned event (a redelivery is a no-op)
    attempt     integer NOT NULL,          -- the dispatch attempt that was returned
    department  text NOT NULL,             -- who returned it
    reason      text NOT NULL,             -- masked free text from intake
    returned_at timestamptz NOT NULL,
    rerouted_to text,                      -- the department of the next dispatch
    decided_by  text                       -- 'dispatcher' or 'supervisor' (after N returns)
);
CREATE INDEX case_returns_case ON case_returns (case_id);

ALTER TABLE cases ADD COLUMN dispatch_priority boolean NOT NULL DEFAULT false;
ALTER TABLE cases ADD COLUMN return_count integer NOT NULL DEFAULT 0;

-- ---------------------------------------------------------------- SLA

-- A timer per (case, kind, cycle): a reopen starts a new cycle, so its resolve
-- limit starts afresh while the first cycle's timer stays in the record.
ALTER TABLE sla_timers DROP CONSTRAINT sla_timers_case_id_kind_key;
ALTER TABLE sla_timers ADD COLUMN cycle integer NOT NULL DEFAULT 1;
ALTER TABLE sla_timers ADD CONSTRAINT sla_timers_case_kind_cycle UNIQUE (case_id, kind, cycle);

-- paused: waiting for the complainant (InfoRequested .. SupplementReceived)
ALTER TABLE sla_timers DROP CONSTRAINT sla_timers_state_check;
ALTER TABLE sla_timers ADD CONSTRAINT sla_timers_state_check
    CHECK (state IN ('running', 'paused', 'stopped', 'breached'));

-- The clock: the deadline is anchor_at + (total_ms - used_ms) of the timer's
-- measure (working time when work, else calendar time). used_ms is what was
-- used before anchor_at (the start or the last resume); total_ms is the
-- limit plus approved extensions. next_at is the next thing to fire
-- (warning, breach, second breach); NULL when nothing is left or paused.
ALTER TABLE sla_timers
    ADD COLUMN limit_spec   text NOT NULL DEFAULT '',
    ADD COLUMN work         boolean NOT NULL DEFAULT false,
    ADD COLUMN total_ms     bigint NOT NULL DEFAULT 0,
    ADD COLUMN used_ms      bigint NOT NULL DEFAULT 0,
    ADD COLUMN anchor_at    timestamptz,
    ADD COLUMN escalate_ms  bigint NOT NULL DEFAULT 0,
    ADD COLUMN next_at      timestamptz,
    ADD COLUMN warned       smallint NOT NULL DEFAULT 0,   -- warnings fired so far
    ADD COLUMN breach_count smallint NOT NULL DEFAULT 0,   -- 1 department head, 2 supervision office
    ADD COLUMN paused_at    timestamptz,
    ADD COLUMN paused_state text,                          -- running or breached, to resume to
    ADD COLUMN department   text,                          -- lead department when started
    ADD COLUMN request_type text,
    ADD COLUMN urgency      text;
UPDATE sla_timers SET anchor_at = started_at, next_at = due_at,
    total_ms = (extract(epoch FROM due_at - started_at) * 1000)::bigint
    WHERE anchor_at IS NULL;
DROP INDEX sla_timers_due;
CREATE INDEX sla_timers_next ON sla_timers (next_at) WHERE state IN ('running', 'breached');
CREATE INDEX sla_timers_case ON sla_timers (case_id);

-- The trail explains a breach: which cycle, how much working time was used
-- at that moment, and who moved it.
ALTER TABLE sla_timer_log
    ADD COLUMN cycle   integer,
    ADD COLUMN used_ms bigint,
    ADD COLUMN actor   text;

-- intake reads the SLA timeline for GET /v1/cases/{no}/sla under its API role
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'kesu_api') THEN
        GRANT SELECT ON sla_timers, sla_timer_log, case_assignments, case_returns TO kesu_api;
    END IF;
END $$;
