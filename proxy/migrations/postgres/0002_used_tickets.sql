-- Event-stream tickets already used, by their one-time id: a ticket opens one stream across
-- every replica, not one per replica. Kept until a minute after they expire (Unix seconds).
-- (SQLite has no such table: one process remembers its tickets in memory.)
CREATE TABLE used_tickets (
    id         TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX used_tickets_by_expiry ON used_tickets (expires_at);
