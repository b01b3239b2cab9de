-- Per-agent revocation (`proxy revoke --agent`): tokens of `agent` issued (`iat`) at or
-- before `revoked_until` (Unix seconds) are refused. In the ledger, so every replica that
-- shares it refuses them too.
CREATE TABLE agent_revocations (
    agent         TEXT PRIMARY KEY,
    revoked_until INTEGER NOT NULL,
    revoked_at    INTEGER NOT NULL         -- Unix milliseconds, for the audit
);
