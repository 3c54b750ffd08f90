-- 0003: what the classifier, dispatcher and sla-monitor add to the core schema.

-- A handler's open_load is raised once per assignment and must be lowered
-- exactly once when the case stops needing them (resolved, closed,
-- withdrawn, rejected, merged: several of these arrive for one case).
-- true = nothing left to give back (no handler, or already released); the
-- dispatcher sets it to false when it assigns a handler.
ALTER TABLE cases ADD COLUMN load_released boolean NOT NULL DEFAULT false;
