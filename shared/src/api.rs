//! The widget-to-proxy API: what `GET /api/payments/{id}` returns, what
//! `POST /api/payments/{id}/refunds` takes, the live events and the one error body.
//!
//! The refund rules an agent can break before submitting ([`PaymentView::check_refund`]) live
//! here, so the widget shows inline exactly what the proxy would answer.

use serde::{Deserialize, Serialize};

use crate::fields::{AttemptId, FieldError, IdempotencyKey, Note};
use crate::ids::{RefundId, SessionId};
use crate::money::{AmountError, Money};
use crate::smart_glocal::{PaymentStatus, RefundStatus};
use crate::timestamp::Timestamp;

pub use crate::fields::NOTE_MAX_CHARS;

/// The error body of every failed `/api/…` call: `{"code": "...", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    /// Smart Glocal's own refusal (`upstream_rejected`), so the agent reads the provider's
    /// reason rather than only "refused".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ProviderError>,
    /// What the agent may still refund (`over_agent_limit`, `over_daily_limit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowance: Option<Money>,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            provider: None,
            allowance: None,
        }
    }
}

/// How much an agent may refund, as the merchant's backend puts it in the agent's token
/// (`refund_max`, `refund_daily`) or the proxy's configuration: minor units of the payment's
/// currency (`20000`), or per currency (`{"usd": 20000, "jpy": 30000}`, where a currency not
/// named has no limit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Limit {
    Any(u64),
    PerCurrency(std::collections::BTreeMap<String, u64>),
}

impl Limit {
    /// The first key of a per-currency limit that is not exactly a currency code (`rur`,
    /// `jyp`, `"usd "`), or names a currency a key before it named (`usd` and `USD`): a limit
    /// on it would bind nothing, or only one of the two would, and the currency meant would
    /// not have the limit written.
    pub fn bad_currency_key(&self) -> Option<&str> {
        let Limit::PerCurrency(map) = self else {
            return None;
        };
        let mut seen = Vec::new();
        map.keys()
            .map(String::as_str)
            .find(|key| match crate::Currency::parse(key) {
                Ok(currency) if currency.code().eq_ignore_ascii_case(key) => {
                    let again = seen.contains(&currency);
                    seen.push(currency);
                    again
                }
                _ => true,
            })
    }

    /// The limit in `currency`'s minor units, if there is one.
    pub fn in_currency(&self, currency: crate::Currency) -> Option<u64> {
        match self {
            Limit::Any(amount) => Some(*amount),
            Limit::PerCurrency(map) => map
                .iter()
                .find(|(code, _)| code.eq_ignore_ascii_case(&currency.code()))
                .map(|(_, amount)| *amount),
        }
    }
}

/// Smart Glocal's `error.code` and `error.description`, passed through verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderError {
    pub code: String,
    #[serde(default)]
    pub description: String,
}

/// Every error the proxy can answer with. A closed set: the widget has a sentence for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString, strum::EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum ErrorCode {
    // Who is asking.
    /// No token, or not a token at all. 401.
    Unauthenticated,
    /// The token's signature does not verify. 401.
    TokenInvalid,
    /// The token has expired: the host page should mint a new one. 401.
    TokenExpired,
    /// The agent's tokens were revoked: only a token issued after that works. 401.
    TokenRevoked,
    /// The token is for another payment. 403.
    Forbidden,
    /// The browser origin is not allowed. 403.
    OriginNotAllowed,

    // What was sent.
    /// The body is not JSON, or not the expected shape. 400.
    InvalidJson,
    /// The body is not `application/json`. 415.
    UnsupportedMediaType,
    /// The body is over the size limit. 413.
    PayloadTooLarge,
    /// The body did not arrive within the proxy's `header_read_timeout_ms` of the headers. 408.
    RequestTimeout,
    /// The path's session id is not `ps_…`. 400.
    InvalidSessionId,
    /// A query or field value outside what is allowed. 400.
    InvalidRequest,
    /// No such route. 404.
    NotFound,
    /// The route does not take that method. 405.
    MethodNotAllowed,

    // The refund rules.
    AmountEmpty,
    AmountNotANumber,
    AmountNotPositive,
    AmountTooManyDecimals,
    AmountTooLarge,
    /// The amount's currency is not the payment's. 422.
    CurrencyMismatch,
    /// More than what remains refundable. 422.
    ExceedsRemaining,
    /// Partial refunds are not enabled for this merchant. 422.
    PartialNotAllowed,
    /// The refund would not be the amount the agent confirmed (`confirmed_amount`): the
    /// payment changed meanwhile, e.g. an earlier refund failed and a full refund would now be
    /// more. Nothing was sent. 409.
    AmountChanged,
    /// The payment cannot be refunded (not succeeded, or nothing remains). 422.
    NotRefundable,
    /// Reason "other" needs a note. 422.
    NoteRequired,
    NoteTooLong,
    /// The idempotency key is missing or not 16–64 of `[A-Za-z0-9_-]`. 400.
    InvalidIdempotencyKey,
    /// The idempotency key was used before for a different request. 409.
    IdempotencyConflict,
    /// Another refund on this payment is being submitted right now. 409.
    RefundInFlight,
    /// Too many requests from this agent: wait as `Retry-After` says. 429.
    RateLimited,
    /// More than this agent may refund at once (`refund_max`); the body's `allowance` says
    /// how much they may. 422.
    OverAgentLimit,
    /// More than this agent may still refund today, UTC (`refund_daily`); the body's
    /// `allowance` says what is left. 422.
    OverDailyLimit,

    // Four-eyes approval.
    /// Only an agent whose token says `can_approve` may approve or reject requests. 403.
    ApprovalNotAllowed,
    /// Nobody approves or rejects their own request, whatever token they hold. 403.
    OwnRequest,
    /// The request was already approved, rejected or expired. 409.
    NotAwaitingApproval,
    /// The agent's earlier request on this payment still awaits a decision: one at a time. 409.
    AlreadyRequested,
    /// A request that a second agent rejected (the reason is the refund's `error_detail`).
    ApprovalRejected,
    /// A request nobody approved in time (`approval_ttl_secs`). 409 when approving it.
    ApprovalExpired,

    // Smart Glocal.
    /// Smart Glocal does not know this payment. 404.
    PaymentNotFound,
    /// Smart Glocal refused the request (`status: error`). 422.
    UpstreamRejected,
    /// Smart Glocal answered with an HTTP error or could not be reached. 502.
    UpstreamUnavailable,
    /// Smart Glocal did not answer in time. 504.
    UpstreamTimeout,
    /// Smart Glocal answered something unreadable. 502.
    UpstreamBadResponse,

    // Webhooks.
    /// The webhook's signature is missing or wrong. 401.
    SignatureInvalid,

    /// Anything else; the detail is in the proxy's log. 500.
    Internal,
    /// The ledger cannot record anything right now (disk full, read-only, I/O error): nothing
    /// was sent to Smart Glocal, so trying again later is safe. 503.
    LedgerUnavailable,
}

impl ErrorCode {
    /// The code as it appears on the wire (the same snake_case name serde writes; a test
    /// holds the two together).
    pub fn name(self) -> &'static str {
        self.into()
    }
}

impl From<&AmountError> for ErrorCode {
    fn from(error: &AmountError) -> Self {
        match error {
            AmountError::Empty => ErrorCode::AmountEmpty,
            AmountError::NotANumber => ErrorCode::AmountNotANumber,
            AmountError::NotPositive => ErrorCode::AmountNotPositive,
            AmountError::TooManyDecimals { .. } => ErrorCode::AmountTooManyDecimals,
            AmountError::Overflow => ErrorCode::AmountTooLarge,
        }
    }
}

/// Card brand and last four digits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardView {
    pub brand: String,
    pub last4: String,
}

/// A payment as the widget shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentView {
    pub session_id: SessionId,
    pub payment_id: String,
    pub status: PaymentStatus,
    pub amount: Money,
    /// `card`, or another payment type.
    pub payment_type: String,
    pub card: Option<CardView>,
    pub customer_reference: Option<String>,
    pub created_at: Option<Timestamp>,
    /// Refunds and chargebacks so far, oldest first.
    pub refunds: Vec<RefundView>,
    /// Whether the merchant may refund part of a payment.
    pub partial_refunds_allowed: bool,
    /// What the agent looking may do here, in the payment's currency.
    #[serde(default)]
    pub viewer: Viewer,
    /// The newest event of this payment the view already holds (0: none). The payment's
    /// event stream opened from it (`last_event_id`) replays what came after the look-up.
    #[serde(default)]
    pub last_event_id: i64,
}

/// The agent's own standing on a payment: shown before they type, enforced by the proxy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Viewer {
    /// The agent's name (`sub`): their own requests are theirs to wait on, not to approve.
    #[serde(default)]
    pub agent: String,
    /// May approve or reject other agents' requests.
    #[serde(default)]
    pub can_approve: bool,
    /// The most they may refund at once, if limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_max: Option<Money>,
    /// What they may still refund today (UTC), if limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_left: Option<Money>,
    /// Refunds above this need a second agent's approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_above: Option<Money>,
}

impl Viewer {
    /// `amount` refunded by this agent just now: what is left of their day is less by it.
    pub fn spend(&mut self, amount: Money) {
        if let Some(left) = self
            .daily_left
            .as_mut()
            .filter(|l| l.currency == amount.currency)
        {
            left.amount = left.amount.saturating_sub(amount.amount);
        }
    }

    /// The most this agent can refund right now on their own limits, if any limits them.
    pub fn allowance(&self) -> Option<Money> {
        match (self.refund_max, self.daily_left) {
            (Some(a), Some(b)) => Some(if a.amount <= b.amount { a } else { b }),
            (a, b) => a.or(b),
        }
    }
}

/// `POST /api/payments/{id}/refunds/{attempt_id}/approve` or `/reject`: the second agent's
/// decision. A rejection needs a note (the requester reads why).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalDecision {
    #[serde(
        default,
        deserialize_with = "crate::fields::optional_note",
        skip_serializing_if = "Option::is_none"
    )]
    pub note: Option<Note>,
}

/// What the payment is, as an agent reads it: Smart Glocal's status combined with its refunds
/// and chargebacks. Derived here, once, so the badge, the title and the form agree.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::EnumIter,
)]
#[strum(serialize_all = "snake_case")]
pub enum PaymentState {
    /// Paid, nothing refunded.
    Succeeded,
    /// A refund is asked for and not yet settled (submitting, awaiting confirmation, in
    /// progress at Smart Glocal).
    RefundPending,
    /// Some of the amount came back, and settled.
    PartiallyRefunded,
    /// Settled refunds cover the whole amount.
    Refunded,
    /// The card holder's bank took money back (a chargeback): no refund is possible.
    Disputed,
    /// The payment itself is not finished yet.
    Processing,
    Failed,
    /// A status Smart Glocal added that this version does not know: shown as written.
    Unknown,
}

impl PaymentState {
    /// The snake_case name (serde's and the ledger's).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl PaymentView {
    /// The payment's state for display; see [`PaymentState`].
    pub fn state(&self) -> PaymentState {
        if self.disputed() {
            return PaymentState::Disputed;
        }
        match self.status {
            PaymentStatus::Succeeded => {}
            PaymentStatus::Pending | PaymentStatus::InProgress => return PaymentState::Processing,
            PaymentStatus::Failed => return PaymentState::Failed,
            PaymentStatus::Other(_) => return PaymentState::Unknown,
        }
        let settled = self.settled_refunds().amount;
        if self.pending_refunds().amount > 0 {
            PaymentState::RefundPending
        } else if settled >= self.amount.amount {
            PaymentState::Refunded
        } else if settled > 0 {
            PaymentState::PartiallyRefunded
        } else {
            PaymentState::Succeeded
        }
    }

    /// A chargeback that was not reversed.
    pub fn disputed(&self) -> bool {
        self.chargebacks().any(|r| r.state.holds_money())
    }

    /// Chargebacks, which are not refunds and are listed apart.
    pub fn chargebacks(&self) -> impl Iterator<Item = &RefundView> {
        self.refunds.iter().filter(|r| r.is_chargeback)
    }

    /// Refunds the agents (or the merchant elsewhere) asked for, failed ones included.
    pub fn refund_attempts(&self) -> impl Iterator<Item = &RefundView> {
        self.refunds.iter().filter(|r| !r.is_chargeback)
    }

    /// Refunds asked for and not yet settled.
    pub fn pending_refunds(&self) -> Money {
        self.sum(|r| !r.is_chargeback && r.state.holds_money() && !r.state.is_final())
    }

    /// Refunds Smart Glocal accepted.
    pub fn settled_refunds(&self) -> Money {
        self.sum(|r| !r.is_chargeback && r.state == RefundState::Accepted)
    }

    fn sum(&self, include: impl Fn(&RefundView) -> bool) -> Money {
        let total = self
            .refunds
            .iter()
            .filter(|r| include(r))
            .fold(0u64, |sum, r| sum.saturating_add(r.amount.amount));
        Money::new(total, self.amount.currency)
    }

    /// What has been refunded, or is being: everything but failed refunds. Saturating: a
    /// few ledger-sized amounts can exceed `u64` together (found by the fuzz target; a plain
    /// `sum` panicked in debug and wrapped in release, making the remaining amount wrong).
    pub fn refunded(&self) -> u64 {
        self.refunds
            .iter()
            .filter(|r| r.state.holds_money())
            .fold(0u64, |total, r| total.saturating_add(r.amount.amount))
    }

    /// What can still be refunded.
    pub fn remaining(&self) -> Money {
        Money::new(
            self.amount.amount.saturating_sub(self.refunded()),
            self.amount.currency,
        )
    }

    /// A refund can be asked for: the payment succeeded, it is not disputed (the money is
    /// already back with the card holder's bank) and something remains.
    pub fn refundable(&self) -> bool {
        self.status == PaymentStatus::Succeeded && !self.disputed() && self.remaining().amount > 0
    }

    /// Whether `agent` refunding `amount` waits for a second agent's approval, the threshold
    /// being `above`: what they have refunded of this payment themselves (sent, not failed)
    /// and `amount` together go above it. So a refund asked in pieces below the threshold,
    /// or asked again in pieces after a rejection, still waits.
    pub fn awaits_approval(&self, agent: &str, amount: Money, above: u64) -> bool {
        let own: u64 = self
            .refunds
            .iter()
            .filter(|r| {
                !r.is_chargeback
                    && r.attempt_id.is_some()
                    && r.agent.as_deref() == Some(agent)
                    && matches!(
                        r.state,
                        RefundState::Pending
                            | RefundState::InProgress
                            | RefundState::Unknown
                            | RefundState::Accepted
                    )
            })
            .map(|r| r.amount.amount)
            .sum();
        own.saturating_add(amount.amount) > above
    }

    /// What may be refunded now: what remains where a refund can be asked for, else nothing
    /// (partial refunds off and part already refunded: the rest cannot be asked for either).
    pub fn refundable_now(&self) -> Money {
        let partly = !self.partial_refunds_allowed && self.refunded() > 0;
        if self.refundable() && !partly {
            self.remaining()
        } else {
            Money::new(0, self.amount.currency)
        }
    }

    /// What would remain refundable after refunding `amount`.
    pub fn remaining_after(&self, amount: Money) -> Money {
        Money::new(
            self.remaining().amount.saturating_sub(amount.amount),
            self.amount.currency,
        )
    }

    /// Inserts or replaces a refund (matched by attempt id, then refund id), as events and
    /// answers arrive. Never backwards: an answer or event older than what is shown (a
    /// submission's "in progress" arriving after the stream's "accepted", an event replayed
    /// after a re-read) leaves the newer state as it is.
    pub fn upsert_refund(&mut self, refund: RefundView) {
        match self.refunds.iter_mut().find(|r| r.same_refund(&refund)) {
            Some(slot) if !slot.may_become(&refund) => {}
            Some(slot) => *slot = refund,
            None => self.refunds.push(refund),
        }
    }

    /// This view, re-read, takes from `shown` (what was on screen) each refund `shown` has
    /// further on: a re-read may have been answered before an event `shown` already holds.
    pub fn keep_ahead(&mut self, mut shown: PaymentView) {
        for refund in &mut self.refunds {
            let ahead = shown
                .refunds
                .iter()
                .position(|r| r.same_refund(refund) && !r.may_become(refund));
            if let Some(at) = ahead {
                *refund = shown.refunds.swap_remove(at);
            }
        }
    }

    /// The rules of this payment an agent can break: what the widget checks before
    /// submitting and the proxy checks again, on a fresh view, before sending. Returns the
    /// amount to refund. (The submission's own fields were checked when it was made.)
    pub fn check_refund(&self, submission: &RefundSubmission) -> Result<Money, ErrorCode> {
        if !self.refundable() {
            return Err(ErrorCode::NotRefundable);
        }
        let remaining = self.remaining();
        let amount = match submission.amount {
            RefundAmount::Full => {
                // A "full" refund of a partly refunded payment is the rest of it, which is
                // itself a partial refund upstream.
                if remaining.amount != self.amount.amount && !self.partial_refunds_allowed {
                    return Err(ErrorCode::PartialNotAllowed);
                }
                remaining
            }
            RefundAmount::Partial(money) => self.check_amount(money)?,
        };
        match submission.confirmed_amount {
            Some(confirmed) if confirmed != amount => Err(ErrorCode::AmountChanged),
            _ => Ok(amount),
        }
    }

    /// The rules for refunding exactly `money` now: also what an approval re-checks, since
    /// the payment may have changed while the request waited.
    pub fn check_amount(&self, money: Money) -> Result<Money, ErrorCode> {
        if !self.refundable() {
            return Err(ErrorCode::NotRefundable);
        }
        if money.currency != self.amount.currency {
            return Err(ErrorCode::CurrencyMismatch);
        }
        if money.amount == 0 {
            return Err(ErrorCode::AmountNotPositive);
        }
        if money.amount > self.remaining().amount {
            return Err(ErrorCode::ExceedsRemaining);
        }
        if money.amount != self.amount.amount && !self.partial_refunds_allowed {
            return Err(ErrorCode::PartialNotAllowed);
        }
        Ok(money)
    }
}

/// Why the agent refunds. A closed list; "other" needs a note.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString, strum::EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum RefundReason {
    RequestedByCustomer,
    Duplicate,
    ProductNotReceived,
    Fraudulent,
    Other,
}

impl RefundReason {
    /// The snake_case name (serde's and the ledger's).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// How much to refund: all that remains, or an amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundAmount {
    Full,
    Partial(Money),
}

/// `POST /api/payments/{session_id}/refunds`. Read from JSON, every field is checked, and
/// reason `other` without a note is refused: a submission that exists is well-formed (what
/// the payment allows is [`PaymentView::check_refund`]'s to say).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SubmissionFields")]
pub struct RefundSubmission {
    pub amount: RefundAmount,
    pub reason: RefundReason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<Note>,
    /// Made when the agent opens the confirmation; the same key means the same intent.
    pub idempotency_key: IdempotencyKey,
    /// The amount the agent saw and confirmed (the widget always sends it): the refund is
    /// exactly this or refused with `amount_changed`, so a full refund cannot grow into more
    /// than was confirmed while the confirmation was open. Absent: `amount` alone decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed_amount: Option<Money>,
}

/// A [`RefundSubmission`] as sent, before the rule between its fields is checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmissionFields {
    amount: RefundAmount,
    reason: RefundReason,
    #[serde(default, deserialize_with = "crate::fields::optional_note")]
    note: Option<Note>,
    idempotency_key: IdempotencyKey,
    #[serde(default)]
    confirmed_amount: Option<Money>,
}

impl RefundSubmission {
    /// A submission from what the agent typed, checked as one read from JSON: the note
    /// trimmed (blank is none), bounded and without the control characters a paste can bring
    /// ([`Note::typed`]), a note for reason `other`.
    pub fn new(
        amount: RefundAmount,
        reason: RefundReason,
        note: &str,
        idempotency_key: IdempotencyKey,
    ) -> Result<Self, FieldError> {
        Self::try_from(SubmissionFields {
            amount,
            reason,
            note: Note::typed(note)?,
            idempotency_key,
            confirmed_amount: None,
        })
    }

    /// Whether `other` asks for the same refund, whatever its key.
    pub fn same_intent(&self, other: &RefundSubmission) -> bool {
        self.amount == other.amount
            && self.reason == other.reason
            && self.note == other.note
            && self.confirmed_amount == other.confirmed_amount
    }

    /// The same submission, bound to the amount the agent confirms.
    pub fn confirming(self, amount: Money) -> Self {
        Self {
            confirmed_amount: Some(amount),
            ..self
        }
    }
}

impl TryFrom<SubmissionFields> for RefundSubmission {
    type Error = FieldError;

    fn try_from(fields: SubmissionFields) -> Result<Self, FieldError> {
        if fields.reason == RefundReason::Other && fields.note.is_none() {
            return Err(FieldError(ErrorCode::NoteRequired));
        }
        Ok(Self {
            amount: fields.amount,
            reason: fields.reason,
            note: fields.note,
            idempotency_key: fields.idempotency_key,
            confirmed_amount: fields.confirmed_amount,
        })
    }
}

/// Where a refund stands, as the proxy knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString, strum::EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum RefundState {
    /// Above the merchant's `approval_above`: recorded, nothing sent, until a second agent
    /// approves (→ `pending`) or rejects it, or it expires (→ `failed`). Holds no money.
    AwaitingApproval,
    /// Recorded, not yet answered by Smart Glocal.
    Pending,
    /// Sent, and the answer was lost (timeout, broken answer): awaiting confirmation.
    Unknown,
    /// Smart Glocal took it.
    InProgress,
    Accepted,
    Failed,
}

impl RefundState {
    /// The snake_case name (serde's and the ledger's).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn is_final(&self) -> bool {
        matches!(self, RefundState::Accepted | RefundState::Failed)
    }

    /// Failed refunds moved no money, and a request awaiting approval has not yet; every
    /// other state may have.
    pub fn holds_money(&self) -> bool {
        !matches!(self, RefundState::Failed | RefundState::AwaitingApproval)
    }

    /// Order in which states may follow each other: never backwards.
    pub fn rank(&self) -> u8 {
        match self {
            RefundState::AwaitingApproval => 0,
            RefundState::Pending => 1,
            RefundState::Unknown => 2,
            RefundState::InProgress => 3,
            RefundState::Accepted | RefundState::Failed => 4,
        }
    }

    /// Whether moving from `self` to `next` goes forward.
    pub fn can_become(&self, next: RefundState) -> bool {
        next.rank() > self.rank()
    }
}

impl From<&RefundStatus> for RefundState {
    fn from(status: &RefundStatus) -> Self {
        match status {
            RefundStatus::Accepted => RefundState::Accepted,
            RefundStatus::Failed | RefundStatus::Cancelled => RefundState::Failed,
            RefundStatus::InProgress | RefundStatus::Other(_) => RefundState::InProgress,
        }
    }
}

/// A refund as the widget shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefundView {
    /// The ledger's id for an attempt made through the proxy; none for refunds made elsewhere.
    pub attempt_id: Option<AttemptId>,
    /// Smart Glocal's id, once known.
    pub refund_id: Option<RefundId>,
    pub amount: Money,
    pub state: RefundState,
    pub is_chargeback: bool,
    /// The agent who asked for it, when it went through the proxy.
    pub agent: Option<String>,
    pub reason: Option<RefundReason>,
    /// The agent's note, when it went through the proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Why a failed refund failed: the proxy's code for it…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<ErrorCode>,
    /// …and what happened, as the ledger recorded it (Smart Glocal's words included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_detail: Option<String>,
    /// Set when Smart Glocal contradicted the ledger about this refund (another amount,
    /// currency or payment): what it said. A person must look; nothing was changed. A
    /// look-up also sets it for a status this version does not know, which is what decided
    /// the state shown (in progress): the status, as Smart Glocal wrote it (not in events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention: Option<String>,
    pub created_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
}

impl RefundView {
    /// Whether `other` is this refund: the same attempt; or, neither being an attempt, the
    /// same Smart Glocal refund. (An attempt and a refund made elsewhere are two rows even
    /// while they name one refund id: the ledger re-binds an attempt that held, by amount, a
    /// refund that was not its own, and the other becomes a row of its own.)
    pub fn same_refund(&self, other: &RefundView) -> bool {
        match (&self.attempt_id, &other.attempt_id) {
            (Some(mine), Some(theirs)) => mine == theirs,
            (None, None) => other.refund_id.is_some() && self.refund_id == other.refund_id,
            _ => false,
        }
    }

    /// Whether `next`, news of this same refund, may replace it as shown: the same state
    /// (what else changed) or a later one, never an older one, and never accepted for failed
    /// or back. Except the steps back the ledger takes too (`ledger::refunds`): an attempt
    /// failed before its refund was known that Smart Glocal shows after all (`change_row`'s
    /// revival); an attempt re-bound to another refund id, whose state is that refund's own
    /// (`rebind`); and an attempt failed that lets go of the refund it held by amount
    /// (`release`: failed, its refund id gone).
    pub fn may_become(&self, next: &RefundView) -> bool {
        let revived = self.state == RefundState::Failed
            && self.refund_id.is_none()
            && next.refund_id.is_some()
            && next.state != RefundState::Failed;
        let rebound = self.refund_id.is_some()
            && next.refund_id.is_some()
            && self.refund_id != next.refund_id;
        let released = self.refund_id.is_some()
            && next.refund_id.is_none()
            && next.state == RefundState::Failed;
        next.state == self.state
            || next.state.rank() > self.state.rank()
            || revived
            || rebound
            || released
    }
}

/// One message on `GET /api/payments/{id}/events`: a refund changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefundEvent {
    /// Increases with each event of the proxy; the SSE id, for `Last-Event-ID`.
    pub seq: i64,
    pub session_id: SessionId,
    pub refund: RefundView,
}

/// What a history line records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString, strum::EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum HistoryKind {
    /// An agent asked; the attempt is recorded before anything is sent.
    Requested,
    /// Smart Glocal's answer to the request moved it.
    Sent,
    /// A webhook moved it.
    Webhook,
    /// A webhook older than what the ledger holds: kept, not applied.
    WebhookIgnored,
    /// Reconciliation (`session/status`) moved it.
    Reconciled,
    /// Refused by Smart Glocal, or never sent.
    Failed,
    /// Sent, and no usable answer came back.
    Unknown,
    /// The proxy stopped (or could not record the answer) while it was in flight.
    Interrupted,
    /// Smart Glocal contradicts the ledger (amount, currency, payment): not applied.
    Conflict,
    /// A refund made outside the proxy, learned from Smart Glocal.
    RefundedElsewhere,
    /// A chargeback, learned from Smart Glocal.
    Chargeback,
    /// Above `approval_above`: recorded, waiting for a second agent.
    ApprovalRequested,
    /// A second agent approved it; it is sent next.
    Approved,
    /// A second agent rejected it; nothing was sent.
    Rejected,
    /// Nobody approved it in time; nothing was sent.
    Expired,
}

impl HistoryKind {
    /// The snake_case name (serde's and the ledger's).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One line of `GET /api/payments/{id}/history`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub at: Timestamp,
    pub kind: HistoryKind,
    pub agent: Option<String>,
    pub attempt_id: Option<AttemptId>,
    pub refund_id: Option<RefundId>,
    pub amount: Option<Money>,
    pub state: Option<RefundState>,
    pub detail: Option<String>,
    /// The requesting agent's role (`junior`, `lead`…), when their token named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// `POST /api/payments/{id}/events/ticket`: a short-lived ticket for the event stream.
///
/// Browsers' `EventSource` cannot send an `Authorization` header, and a token in a URL ends up
/// in logs. The ticket is bound to one payment and one agent, lives for minutes, and is worth
/// nothing else: `GET /api/payments/{id}/events?ticket=…`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsTicket {
    pub ticket: String,
    pub expires_in_secs: u64,
}

/// `POST /demo/token` (demo mode only): what a merchant's backend would mint for its agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentTokenRequest {
    pub agent: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<SessionId>,
}

/// An agent token and when it expires (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentToken {
    pub token: String,
    pub expires_at: i64,
}
