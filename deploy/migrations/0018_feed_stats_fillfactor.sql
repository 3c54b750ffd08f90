-- public_feed_state (one row per case, its next_seq and held count bumped by
-- every public event: four times in a case's first minute) and case_stats
-- (category and department set after the insert) change no indexed column
-- when they are updated, yet 41 % and 58 % of those updates were not HOT in
-- the benchmark: their pages were full from the inserts. Room on each page
-- keeps the updates on it (no new index entries, less for vacuum). Measured
-- (docs/performance.md): fillfactor 70 / 75 made 83 % / 65 % of them HOT,
-- 30 / 50 make 99 % / 85 %; the rows are small (public_feed_state ~250 bytes
-- a case at 30), so the room costs little next to a case row.
ALTER TABLE public_feed_state SET (fillfactor = 30);
ALTER TABLE case_stats SET (fillfactor = 50);
