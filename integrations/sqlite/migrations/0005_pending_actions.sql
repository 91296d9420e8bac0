-- 0005: requests (clicks, commands) recorded by a replica that does not
-- hold the run, for the holder to take (see steps.Mailbox). In step with the
-- PostgreSQL store's schema; one process never records any. taken_at = ''
-- means not yet handled. Times are this store's text layout.
CREATE TABLE pending_actions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id     TEXT NOT NULL,
    body       BLOB NOT NULL,
    created_at TEXT NOT NULL,
    taken_at   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX pending_actions_untaken ON pending_actions (id) WHERE taken_at = '';
