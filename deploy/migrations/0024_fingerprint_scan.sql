-- The classifier's duplicate search (dd_candidates, decision 0040) reads the
-- newest 500 fingerprints of a district, newest first, for every case it
-- classifies: the case id, the SimHash and the time, nothing else. With those
-- in the index the scan reads the index alone (an index-only scan) wherever
-- the table's pages are all-visible, instead of a bitmap heap scan over every
-- fingerprint of the district in the window followed by a sort: 0.76 -> 0.43
-- ms a search with 16 districts of 500 cases each (docs/performance.md).
DROP INDEX case_fingerprints_district_time;
CREATE INDEX case_fingerprints_district_time ON case_fingerprints (district_code, received_at)
    INCLUDE (simhash, case_id);

-- Pages become all-visible when vacuum has seen them. The table only grows
-- (cases are never deleted), so by default it would be vacuumed after
-- 20 % more rows (a province's year: every ~70 days), and the newest pages -
-- the ones the search reads - would never be all-visible. Vacuum it after a
-- fixed number of new rows instead: such a vacuum reads only the pages not yet
-- all-visible (the visibility map), a few hundred 8 KB pages.
ALTER TABLE case_fingerprints SET (autovacuum_vacuum_insert_threshold = 2000,
    autovacuum_vacuum_insert_scale_factor = 0);
