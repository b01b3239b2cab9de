-- Every history line carries `hash = SHA-256(previous line's hash ‖ this line)` (hex), in id
-- order, so an edited, removed or reordered line breaks the chain from there on
-- (`proxy verify-ledger`). Lines written before this column existed are sealed, in order,
-- once, the first time the ledger opens after this migration (`chain_sealed` says whether
-- that happened: a hash emptied later is a broken line, never re-sealed).
ALTER TABLE history ADD COLUMN hash TEXT;
CREATE TABLE chain_sealed (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    sealed INTEGER NOT NULL
);
INSERT INTO chain_sealed (id, sealed) VALUES (1, 0);
