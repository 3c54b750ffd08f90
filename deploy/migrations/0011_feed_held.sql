-- The archiver counts a case's held events on its feed state row, so placing
-- an event looks in public_feed_pending only when something is held there.
ALTER TABLE public_feed_state ADD COLUMN held integer NOT NULL DEFAULT 0;
UPDATE public_feed_state s SET held = p.n
  FROM (SELECT case_id, count(*) AS n FROM public_feed_pending GROUP BY case_id) p
 WHERE p.case_id = s.case_id;
