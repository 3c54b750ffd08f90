-- 0002: what intake needs on top of the core schema.
--
-- The access code is shown to the complainant once, at submission. Only its
-- SHA-256 is used to check it (access_code_hash), but an idempotent replay of
-- the same submission (same Idempotency-Key and body, or same channel +
-- external_ref) must answer with the same code, so intake also keeps it
-- encrypted with the PII key (same AES-256-GCM format as complainants.*_enc).
ALTER TABLE cases ADD COLUMN access_code_enc bytea;

-- Satisfaction is 1..5 (the intake validator enforces it; the database too).
ALTER TABLE cases ADD CONSTRAINT cases_satisfaction_range
    CHECK (satisfaction IS NULL OR satisfaction BETWEEN 1 AND 5);

-- Idempotency keys are looked up by key (primary key); this index serves the
-- expiry sweep a later issue adds (keys older than the retention window).
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
