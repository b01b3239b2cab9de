-- The refund ledger. Times are Unix milliseconds (UTC); amounts are integer minor units.

-- Every refund the proxy knows about: attempts made through it (recorded BEFORE the upstream
-- call) and refunds it learned about from Smart Glocal (made elsewhere, chargebacks).
CREATE TABLE refunds (
    key              INTEGER PRIMARY KEY AUTOINCREMENT,
    attempt_id       TEXT UNIQUE,            -- NULL for refunds made elsewhere
    refund_id        TEXT UNIQUE,            -- Smart Glocal's id, once known
    session_id       TEXT NOT NULL,
    origin           TEXT NOT NULL,          -- proxy | elsewhere | chargeback
    agent            TEXT,
    amount           INTEGER NOT NULL,
    currency         TEXT NOT NULL,
    full_refund      INTEGER NOT NULL DEFAULT 0,
    reason           TEXT,
    note             TEXT,
    idempotency_key  TEXT UNIQUE,
    request_hash     TEXT,
    refunds_before   TEXT NOT NULL DEFAULT '[]', -- JSON array of refund ids existing before the call
    state            TEXT NOT NULL,
    error_code       TEXT,
    error_detail     TEXT,
    polls            INTEGER NOT NULL DEFAULT 0,
    next_poll_at     INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    finished_at      INTEGER
);
CREATE INDEX refunds_by_session ON refunds (session_id);
CREATE INDEX refunds_by_state ON refunds (state, next_poll_at);
CREATE INDEX refunds_by_created ON refunds (created_at);

-- Live-update events, replayed to SSE clients by `Last-Event-ID`.
CREATE TABLE events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    at         INTEGER NOT NULL,
    refund     TEXT NOT NULL              -- RefundView JSON
);
CREATE INDEX events_by_session ON events (session_id, seq);

-- The timeline of each payment: who asked for what, when, and what happened.
CREATE TABLE history (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    at         INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    agent      TEXT,
    attempt_id TEXT,
    refund_id  TEXT,
    amount     INTEGER,
    currency   TEXT,
    state      TEXT,
    detail     TEXT
);
CREATE INDEX history_by_session ON history (session_id, id);

-- Every verified webhook, as received.
CREATE TABLE webhooks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at INTEGER NOT NULL,
    verified    INTEGER NOT NULL,
    session_id  TEXT,
    dedup_key   TEXT,                      -- session:refund:status[;…] of the refunds it carries
    outcome     TEXT NOT NULL,             -- applied | duplicate | stale | ignored | unreadable
    raw_body    BLOB NOT NULL
);
CREATE INDEX webhooks_by_dedup ON webhooks (dedup_key);

-- Webhooks whose signature did not verify: an audit trail only, never applied, bounded
-- (the oldest rows are dropped) so a flood of forgeries cannot fill the disk.
CREATE TABLE rejected_webhooks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at INTEGER NOT NULL,
    verified    INTEGER NOT NULL DEFAULT 0,
    reason      TEXT NOT NULL,
    raw_body    BLOB NOT NULL              -- truncated to 4 KiB
);
