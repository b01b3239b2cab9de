-- The requesting agent's role (the token's `role`: `junior`, `lead`…), kept with the refund
-- and shown on its history lines. Hashed into the chain only where present, so lines written
-- before keep their hashes.
ALTER TABLE refunds ADD COLUMN role TEXT;
ALTER TABLE history ADD COLUMN role TEXT;
