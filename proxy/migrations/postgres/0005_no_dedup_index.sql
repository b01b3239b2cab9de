-- See SQLite's 0012: an index nothing reads, whose entry for a webhook of a payment with a
-- few hundred refunds (its `dedup_key`, one `session:refund:status` per refund) passed
-- PostgreSQL's B-tree limit and made the webhook's insert fail, so it was never recorded.
DROP INDEX IF EXISTS webhooks_by_dedup;
