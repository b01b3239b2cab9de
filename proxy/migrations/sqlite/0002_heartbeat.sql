-- One row the readiness probe rewrites: proof that the ledger can still reach the disk.
CREATE TABLE heartbeat (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at INTEGER NOT NULL                     -- Unix milliseconds of the last successful probe
);
