-- Whether an attempt's refund id was bound by amount (the matcher's rule 3: a refund that named
-- no attempt) rather than by the attempt id in its metadata. An attempt whose own request then
-- comes back refused lets go of a refund bound by amount (someone else's, made meanwhile), and
-- keeps one bound by name (its own, whatever the refusal said).
ALTER TABLE refunds ADD COLUMN bound_by_amount INTEGER NOT NULL DEFAULT 0;
