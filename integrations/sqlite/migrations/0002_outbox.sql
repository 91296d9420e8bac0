-- 0002: the outbox. Every message a transition causes is written here in the
-- transition's own transaction and delivered to Slack after the commit, in
-- id order per run. id is the idempotency key the message carries in its
-- Slack metadata; delivered_at = '' means still owed.
CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id       TEXT NOT NULL,
    kind         TEXT NOT NULL,
    channel      TEXT NOT NULL DEFAULT '',
    text         TEXT NOT NULL DEFAULT '',
    buttons      TEXT NOT NULL DEFAULT 'null' CHECK (json_valid(buttons)),
    name         TEXT NOT NULL DEFAULT '',
    title        TEXT NOT NULL DEFAULT '',
    content      BLOB,
    created_at   TEXT NOT NULL,
    delivered_at TEXT NOT NULL DEFAULT '',
    ts           TEXT NOT NULL DEFAULT '',
    failure      TEXT NOT NULL DEFAULT ''
);

-- Delivery reads what is owed; keep that cheap however long history grows.
CREATE INDEX outbox_pending ON outbox (run_id, id) WHERE delivered_at = '';
