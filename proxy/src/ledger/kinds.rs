//! The ledger's closed vocabularies, typed: where a refund row came from, what reported a
//! refund of Smart Glocal's, and what became of a webhook. Stored as their snake_case names.

use shared::api::HistoryKind;

/// Where a row of `refunds` came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(rename_all = "snake_case")]
pub enum Origin {
    /// An agent's attempt through this proxy.
    Proxy,
    /// A refund made outside the proxy (Smart Glocal's dashboard, another system).
    Elsewhere,
    /// A chargeback: the bank took the money back, no agent asked.
    Chargeback,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Proxy => "proxy",
            Origin::Elsewhere => "elsewhere",
            Origin::Chargeback => "chargeback",
        }
    }
}

/// What reported one of Smart Glocal's refunds to the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The answer to our own `session/refund`.
    Sent,
    /// A verified `payment_refunded` webhook.
    Webhook,
    /// `session/status`, polled by reconciliation.
    Reconciled,
}

impl Source {
    /// The history line a change from this source writes.
    pub fn history_kind(self) -> HistoryKind {
        match self {
            Source::Sent => HistoryKind::Sent,
            Source::Webhook => HistoryKind::Webhook,
            Source::Reconciled => HistoryKind::Reconciled,
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.history_kind().as_str())
    }
}

/// What became of a verified webhook, as `webhooks.outcome` records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(rename_all = "snake_case")]
pub enum WebhookOutcome {
    /// At least one of its refunds moved the ledger forward (or was new).
    Applied,
    /// Everything in it was known already.
    Duplicate,
    /// Older than what the ledger holds: recorded, not applied.
    Stale,
    /// It contradicts the ledger: recorded as a conflict, not applied.
    Conflict,
    /// Not a kind the proxy acts on.
    Ignored,
    /// Signed, but its body could not be read as what it claims to be.
    Unreadable,
    /// Amounts the ledger cannot hold exactly: kept whole for audit, applied to nothing.
    Unrepresentable,
}

impl WebhookOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookOutcome::Applied => "applied",
            WebhookOutcome::Duplicate => "duplicate",
            WebhookOutcome::Stale => "stale",
            WebhookOutcome::Conflict => "conflict",
            WebhookOutcome::Ignored => "ignored",
            WebhookOutcome::Unreadable => "unreadable",
            WebhookOutcome::Unrepresentable => "unrepresentable",
        }
    }
}

#[cfg(test)]
mod tests {
    use shared::api::{ErrorCode, RefundState};
    use shared::Currency;
    use sqlx::SqlitePool;

    use super::*;

    async fn column() -> SqlitePool {
        let pool = SqlitePool::connect("sqlite::memory:").await.unwrap();
        sqlx::query("CREATE TABLE t (v TEXT)")
            .execute(&pool)
            .await
            .unwrap();
        pool
    }

    async fn stored_text<T>(pool: &SqlitePool, value: T) -> String
    where
        T: for<'q> sqlx::Encode<'q, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite> + Send,
    {
        sqlx::query("DELETE FROM t").execute(pool).await.unwrap();
        sqlx::query("INSERT INTO t (v) VALUES (?)")
            .bind(value)
            .execute(pool)
            .await
            .unwrap();
        sqlx::query_scalar("SELECT v FROM t")
            .fetch_one(pool)
            .await
            .unwrap()
    }

    /// What the ledger writes is the name logs, metrics, the export and older rows use.
    #[tokio::test]
    async fn stored_as_their_names() {
        let pool = column().await;
        for origin in [Origin::Proxy, Origin::Elsewhere, Origin::Chargeback] {
            assert_eq!(stored_text(&pool, origin).await, origin.as_str());
        }
        for outcome in [
            WebhookOutcome::Applied,
            WebhookOutcome::Unrepresentable,
            WebhookOutcome::Conflict,
        ] {
            assert_eq!(stored_text(&pool, outcome).await, outcome.as_str());
        }
        assert_eq!(
            stored_text(&pool, RefundState::InProgress).await,
            "in_progress"
        );
        assert_eq!(
            stored_text(&pool, HistoryKind::RefundedElsewhere).await,
            "refunded_elsewhere"
        );
        assert_eq!(
            stored_text(&pool, ErrorCode::UpstreamRejected).await,
            ErrorCode::UpstreamRejected.name()
        );
        assert_eq!(
            stored_text(&pool, Currency::parse("KWD").unwrap()).await,
            "kwd"
        );
    }

    /// A value the ledger never wrote (a hand-edited file) is an error, not a guess.
    #[tokio::test]
    async fn unknown_names_are_refused() {
        let pool = column().await;
        for text in ["bogus", "PROXY", ""] {
            sqlx::query("DELETE FROM t").execute(&pool).await.unwrap();
            sqlx::query("INSERT INTO t (v) VALUES (?)")
                .bind(text)
                .execute(&pool)
                .await
                .unwrap();
            let origin = sqlx::query_scalar::<_, Origin>("SELECT v FROM t")
                .fetch_one(&pool)
                .await;
            assert!(origin.is_err(), "{text:?} read as {origin:?}");
            let currency = sqlx::query_scalar::<_, Currency>("SELECT v FROM t")
                .fetch_one(&pool)
                .await;
            assert!(currency.is_err(), "{text:?} read as {currency:?}");
        }
        let state: RefundState = sqlx::query_scalar("SELECT 'accepted'")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(state, RefundState::Accepted);
    }
}
