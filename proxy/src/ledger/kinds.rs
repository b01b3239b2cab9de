//! The ledger's closed vocabularies, typed: where a refund row came from, what reported a
//! refund of Smart Glocal's, and what became of a webhook. Stored as their snake_case names.

use shared::api::HistoryKind;

/// Where a row of `refunds` came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

    /// The origin `text` names, as [`as_str`](Self::as_str) writes it.
    pub fn parse(text: &str) -> Result<Self, String> {
        [Origin::Proxy, Origin::Elsewhere, Origin::Chargeback]
            .into_iter()
            .find(|origin| origin.as_str() == text)
            .ok_or_else(|| format!("not an origin: {text}"))
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

    use super::super::sql::{Arg, ToArg};
    use super::*;

    fn text(value: impl ToArg) -> String {
        match value.to_arg() {
            Arg::Text(Some(text)) => text,
            other => panic!("not stored as text: {other:?}"),
        }
    }

    /// What the ledger writes is the name logs, metrics, the export and older rows use.
    #[test]
    fn stored_as_their_names() {
        for origin in [Origin::Proxy, Origin::Elsewhere, Origin::Chargeback] {
            assert_eq!(text(origin), origin.as_str());
            assert_eq!(Origin::parse(origin.as_str()), Ok(origin));
        }
        for outcome in [
            WebhookOutcome::Applied,
            WebhookOutcome::Unrepresentable,
            WebhookOutcome::Conflict,
        ] {
            assert_eq!(text(outcome), outcome.as_str());
        }
        assert_eq!(text(RefundState::InProgress), "in_progress");
        assert_eq!(text(HistoryKind::RefundedElsewhere), "refunded_elsewhere");
        assert_eq!(
            text(Some(ErrorCode::UpstreamRejected)),
            ErrorCode::UpstreamRejected.name()
        );
        assert_eq!(text(Currency::parse("KWD").unwrap()), "kwd");
        assert_eq!(
            "in_progress".parse::<RefundState>(),
            Ok(RefundState::InProgress)
        );
    }

    /// A value the ledger never wrote (a hand-edited file) is an error, not a guess.
    #[test]
    fn unknown_names_are_refused() {
        for text in ["bogus", "PROXY", ""] {
            assert!(Origin::parse(text).is_err(), "{text:?}");
            assert!(Currency::parse(text).is_err(), "{text:?}");
            assert!(text.parse::<RefundState>().is_err(), "{text:?}");
        }
    }
}
