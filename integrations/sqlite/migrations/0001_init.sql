-- 0001: deploybot's first schema.
--
-- Times are UTC text in a fixed-width RFC 3339 layout (nanoseconds, "Z"), so
-- that text comparison is time comparison and the sqlite3 shell shows them
-- readably; "" means "not yet". JSON columns hold "null" for a nil map or
-- slice and "{}"/"[]" for an empty one, so the Go values round-trip exactly.

-- AUTOINCREMENT, not a plain rowid: ids are never reused, so "run-12" in an
-- old Slack thread or audit line can never come to mean a different run.
CREATE TABLE runs (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL,
    service    TEXT NOT NULL,
    version    TEXT NOT NULL DEFAULT '',
    requester  TEXT NOT NULL DEFAULT '',
    channel    TEXT NOT NULL DEFAULT '',
    message_ts TEXT NOT NULL DEFAULT '',
    summary    TEXT NOT NULL DEFAULT '',
    state      TEXT NOT NULL,
    outcome    TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    ended_at   TEXT NOT NULL DEFAULT '',
    data       TEXT NOT NULL DEFAULT 'null' CHECK (json_valid(data)),
    -- The service for runs that take its lock, '' for runs that do not.
    lock_key   TEXT NOT NULL DEFAULT ''
);

-- The service lock. The database, not the bot, decides who holds it, so two
-- requests racing (or two bot processes sharing the file) cannot both win;
-- a run that ends leaves the index and frees the service. The state list
-- must stay in step with steps.RunState.Open.
CREATE UNIQUE INDEX runs_service_lock ON runs (lock_key)
    WHERE lock_key != '' AND state IN ('active', 'ending');

-- Startup recovery reads the open runs; keep that cheap however long the
-- history grows. The WHERE must match the queries' text for SQLite to use it.
CREATE INDEX runs_open ON runs (id) WHERE state IN ('active', 'ending');
CREATE INDEX runs_by_service ON runs (service, id);

CREATE TABLE steps (
    run_id     INTEGER NOT NULL REFERENCES runs (id),
    idx        INTEGER NOT NULL,
    id         TEXT NOT NULL,
    title      TEXT NOT NULL DEFAULT '',
    status     TEXT NOT NULL DEFAULT '',
    seq        INTEGER NOT NULL DEFAULT 0,
    attempt    INTEGER NOT NULL DEFAULT 0,
    note       TEXT NOT NULL DEFAULT '',
    prompt     TEXT NOT NULL DEFAULT '',
    buttons    TEXT NOT NULL DEFAULT 'null' CHECK (json_valid(buttons)),
    waiting_on TEXT NOT NULL DEFAULT '',
    actor      TEXT NOT NULL DEFAULT '',
    started_at TEXT NOT NULL DEFAULT '',
    ended_at   TEXT NOT NULL DEFAULT '',
    comp       TEXT NOT NULL DEFAULT '',
    data       TEXT NOT NULL DEFAULT 'null' CHECK (json_valid(data)),
    PRIMARY KEY (run_id, idx)
) WITHOUT ROWID;

-- Approvals and the audit log are evidence: who approved which plan, who
-- tried what. The triggers below make them append-only for every client of
-- the file, the sqlite3 shell included, not just for this package. A later
-- migration that has to rebuild either table must drop and recreate them.
CREATE TABLE approvals (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      INTEGER NOT NULL REFERENCES runs (id),
    step_idx    INTEGER NOT NULL,
    step_id     TEXT NOT NULL DEFAULT '',
    approver    TEXT NOT NULL,
    decision    TEXT NOT NULL,
    at          TEXT NOT NULL,
    plan_sha256 TEXT NOT NULL DEFAULT '',
    commit_sha  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX approvals_by_run ON approvals (run_id, seq);

-- run_id is the string id and deliberately not a foreign key: refusals name
-- runs that may not exist ("click on run-999"), and the log must keep them.
CREATE TABLE audit (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id  TEXT NOT NULL DEFAULT '',
    at      TEXT NOT NULL,
    actor   TEXT NOT NULL DEFAULT '',
    action  TEXT NOT NULL,
    step_id TEXT NOT NULL DEFAULT '',
    detail  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_by_run ON audit (run_id, seq);

CREATE TRIGGER approvals_no_update BEFORE UPDATE ON approvals
BEGIN
    SELECT RAISE(ABORT, 'approvals are append-only');
END;
CREATE TRIGGER approvals_no_delete BEFORE DELETE ON approvals
BEGIN
    SELECT RAISE(ABORT, 'approvals are append-only');
END;
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

-- Slack envelope ids already acted on. Slack redelivers within minutes, so
-- rows older than a day are pruned; the index keeps that pruning cheap.
CREATE TABLE deliveries (
    id TEXT PRIMARY KEY,
    at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX deliveries_by_at ON deliveries (at);
