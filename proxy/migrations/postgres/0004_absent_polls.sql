-- See SQLite's 0011: the answers without the refund since `absent_since`.
ALTER TABLE refunds ADD COLUMN absent_polls BIGINT NOT NULL DEFAULT 0;
