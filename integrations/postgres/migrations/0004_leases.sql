-- 0004: run leases. With several replicas, only the holder of a run's lease
-- executes its steps. Expiry is by the database's clock (clock_timestamp()),
-- so the replicas' clocks need not agree; the holder counts down by its own
-- monotonic clock from before each renewal and stops first (steps.Hold).
-- Leases are ephemeral and not part of an export.
CREATE TABLE leases (
    run_id     TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
