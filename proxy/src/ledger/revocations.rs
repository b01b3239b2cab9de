//! Agent revocations: `proxy revoke --agent alice` writes one row; every request of a token
//! of alice issued until then is refused (see `auth`).

use shared::api::{ErrorCode, HistoryKind, RefundState};

use super::journal::Entries;
use super::refunds::change_row;
use super::sql::{Engine, Sql};
use super::{now_ms, Change, Ledger, RefundRow};

impl Ledger {
    /// Refuses `agent`'s tokens issued at or before `until` (Unix seconds), and closes the
    /// agent's requests still awaiting approval; returns how many. A later revocation only
    /// moves the line forward.
    pub async fn revoke_agent(&self, agent: &str, until: i64) -> Result<usize, sqlx::Error> {
        let mut tx = self.write().await?;
        // SQLite's two-argument `MAX` is PostgreSQL's `GREATEST`.
        let later = match tx.engine() {
            Engine::Sqlite => "MAX",
            Engine::Postgres => "GREATEST",
        };
        let upsert = Sql::new(format!(
            "INSERT INTO agent_revocations (agent, revoked_until, revoked_at) VALUES (?, ?, ?)
             ON CONFLICT (agent) DO UPDATE SET
                revoked_until = {later}(agent_revocations.revoked_until, excluded.revoked_until),
                revoked_at = excluded.revoked_at"
        ))
        .bind(agent)
        .bind(until)
        .bind(now_ms());
        let mut journal = Entries::default();
        let result = async {
            tx.exec().execute(&upsert).await?;
            // What the agent asked and nobody approved yet may have been asked by whoever
            // holds their tokens: closed with them, nothing sent. The agent asks again with a
            // new token if the request was theirs.
            let waiting: Vec<RefundRow> = tx
                .exec()
                .fetch_all(
                    &Sql::new("SELECT * FROM refunds WHERE agent = ? AND state = ? ORDER BY key")
                        .bind(agent)
                        .bind(RefundState::AwaitingApproval),
                )
                .await?;
            let detail = format!("closed: the tokens of {agent} were revoked; nothing was sent");
            let mut closed = 0;
            for row in &waiting {
                let change =
                    Change::failed(ErrorCode::ApprovalRejected, &detail, HistoryKind::Rejected);
                if change_row(&mut tx, &mut journal, row, &change)
                    .await?
                    .is_some()
                {
                    closed += 1;
                }
            }
            Ok(closed)
        }
        .await;
        tx.finish(journal, result).await
    }

    /// Whether the event-stream ticket `id` (expiring at `expires_at`, Unix seconds) opens a
    /// stream for the first time in any process sharing this ledger. On PostgreSQL a row per
    /// ticket says so (expired ones are dropped as new ones come); a SQLite ledger has one
    /// process, whose own memory of tickets (`auth`) is the whole answer, so: yes.
    pub async fn claim_ticket(&self, id: &str, expires_at: i64) -> Result<bool, sqlx::Error> {
        if self.engine() == Engine::Sqlite {
            return Ok(true);
        }
        let mut tx = self.write().await?;
        let result = async {
            tx.exec()
                .execute(
                    &Sql::new("DELETE FROM used_tickets WHERE expires_at < ?")
                        .bind(now_ms() / 1000 - 60),
                )
                .await?;
            tx.exec()
                .execute(
                    &Sql::new(
                        "INSERT INTO used_tickets (id, expires_at) VALUES (?, ?)
                         ON CONFLICT (id) DO NOTHING",
                    )
                    .bind(id)
                    .bind(expires_at),
                )
                .await
        }
        .await;
        tx.finish(Entries::default(), result)
            .await
            .map(|inserted| inserted == 1)
    }

    /// Until when (Unix seconds) `agent`'s tokens are revoked, if ever.
    pub async fn revoked_until(&self, agent: &str) -> Result<Option<i64>, sqlx::Error> {
        self.read()
            .fetch_optional(
                &Sql::new("SELECT revoked_until FROM agent_revocations WHERE agent = ?")
                    .bind(agent),
            )
            .await
    }
}

impl Ledger {
    /// Agent ids in the rows that compare them (refunds, revocations) as the proxy names
    /// agents now, [`crate::auth::agent_id`]: trimmed and in lower case. A ledger written
    /// before held them as each token spelled them (`Sam@acme.example`), and would no longer
    /// match the agent's own requests, day or revocation. Done at start, in one transaction;
    /// nothing to do (one read) once done. The history keeps its lines as written: they are
    /// hash-chained, and no rule compares them.
    pub(super) async fn normalise_agent_ids(&self) -> Result<usize, sqlx::Error> {
        let stale = |ids: Vec<String>| -> Vec<(String, String)> {
            ids.into_iter()
                .filter_map(|id| {
                    let normal = crate::auth::agent_id(&id);
                    (normal != id).then_some((id, normal))
                })
                .collect()
        };
        let refunds: Vec<String> = self
            .read()
            .fetch_all(&Sql::new(
                "SELECT DISTINCT agent FROM refunds WHERE agent IS NOT NULL",
            ))
            .await?;
        let revoked: Vec<String> = self
            .read()
            .fetch_all(&Sql::new("SELECT agent FROM agent_revocations"))
            .await?;
        let (refunds, revoked) = (stale(refunds), stale(revoked));
        if refunds.is_empty() && revoked.is_empty() {
            return Ok(0);
        }
        let mut tx = self.write().await?;
        let later = match tx.engine() {
            Engine::Sqlite => "MAX",
            Engine::Postgres => "GREATEST",
        };
        let result = async {
            for (old, new) in &refunds {
                let rename = Sql::new("UPDATE refunds SET agent = ? WHERE agent = ?")
                    .bind(new.as_str())
                    .bind(old.as_str());
                tx.exec().execute(&rename).await?;
            }
            // Two spellings of one agent revoked at different times: the later line holds.
            for (old, new) in &revoked {
                let merge = Sql::new(format!(
                    "INSERT INTO agent_revocations (agent, revoked_until, revoked_at)
                     SELECT ?, revoked_until, revoked_at FROM agent_revocations WHERE agent = ?
                     ON CONFLICT (agent) DO UPDATE SET
                        revoked_until = {later}(agent_revocations.revoked_until, excluded.revoked_until),
                        revoked_at = {later}(agent_revocations.revoked_at, excluded.revoked_at)"
                ))
                .bind(new.as_str())
                .bind(old.as_str());
                tx.exec().execute(&merge).await?;
                let drop = Sql::new("DELETE FROM agent_revocations WHERE agent = ?").bind(old.as_str());
                tx.exec().execute(&drop).await?;
            }
            Ok(refunds.len() + revoked.len())
        }
        .await;
        tx.finish(Entries::default(), result).await
    }
}
