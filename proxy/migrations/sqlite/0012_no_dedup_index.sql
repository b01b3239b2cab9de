-- Nothing reads webhooks by their `dedup_key` (a webhook's refunds as `session:refund:status`,
-- kept for audit): its index only cost every stored webhook an index entry. On PostgreSQL
-- (0005) it refused, past a B-tree entry's size, the webhooks of a payment with a few hundred
-- refunds, which were then never recorded.
DROP INDEX IF EXISTS webhooks_by_dedup;
