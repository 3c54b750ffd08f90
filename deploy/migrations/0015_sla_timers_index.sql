-- sla_timers_case (case_id) duplicates the leading column of the unique
-- sla_timers_case_kind_cycle (case_id, kind, cycle), which serves every
-- lookup of a case's timers; two timers are started per case, each wrote
-- both (decision 0021).
DROP INDEX IF EXISTS sla_timers_case;
