-- 0004: run leases (see steps.Leases), in step with the PostgreSQL store's
-- schema. One process on one file needs no lease to be safe, but a second
-- process by mistake on the same file is kept off runs the first executes.
-- Times are this store's text layout, by the process clock.
CREATE TABLE leases (
    run_id     TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    expires_at TEXT NOT NULL
) WITHOUT ROWID;
