-- What about this refund needs a person: Smart Glocal reported it with another amount,
-- currency or payment than the ledger holds. Set when the contradiction is recorded (the
-- ledger's own values stay as they were), shown with the refund in the widget.
ALTER TABLE refunds ADD COLUMN attention TEXT;
