-- 0003: the run's revision. Every SaveRun is a compare-and-set on it, so a
-- writer holding an older copy of a run (a second replica) is refused
-- instead of overwriting what another committed. Runs from before start at
-- 0; new runs at 1.
ALTER TABLE runs ADD COLUMN rev INTEGER NOT NULL DEFAULT 0;
