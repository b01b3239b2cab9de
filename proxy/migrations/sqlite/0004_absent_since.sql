-- When `session/status` first answered without a refund for this unresolved attempt (Unix
-- milliseconds): the attempt is declared failed only once that has been so for
-- `reconcile_fail_after_secs`. Error answers never set it.
ALTER TABLE refunds ADD COLUMN absent_since INTEGER;
