-- How many of `session/status`'s answers since `absent_since` showed no refund for this
-- unresolved attempt. The attempt is declared failed only once the time has passed AND that
-- many answers came, one per reconciliation pass: a wall clock stepped forward (a resumed VM,
-- an NTP step, a replica whose clock runs ahead) cannot fail it after a single answer.
ALTER TABLE refunds ADD COLUMN absent_polls INTEGER NOT NULL DEFAULT 0;
