-- See SQLite's 0010: whether an attempt's refund id was bound by amount, not by name.
ALTER TABLE refunds ADD COLUMN bound_by_amount BOOLEAN NOT NULL DEFAULT FALSE;
