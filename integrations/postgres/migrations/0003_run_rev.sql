-- 0003: the run's revision; every SaveRun is a compare-and-set on it, so a
-- replica holding an older copy of a run is refused instead of overwriting
-- what another committed.
ALTER TABLE runs ADD COLUMN rev BIGINT NOT NULL DEFAULT 0;
