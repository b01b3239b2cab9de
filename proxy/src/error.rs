//! The one error type of the HTTP API and its one `IntoResponse`: every rejection becomes
//! `shared::api::ErrorBody {code, message}` with a stable [`ErrorCode`].
//!
//! Messages are written for the agent. Details (upstream bodies, SQL errors) go to the log,
//! never to the response, and never contain a secret.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use shared::api::{ErrorBody, ErrorCode, ProviderError};

use crate::upstream::UpstreamError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401 `unauthenticated`: no bearer token, or not a JWT at all.
    #[error("sign in again: no valid token was sent")]
    Unauthenticated,
    /// 401 `token_invalid`: the token's signature or claims do not verify.
    #[error("the token is not valid")]
    TokenInvalid,
    /// 401 `token_expired`: the host page should mint a new one.
    #[error("the token has expired")]
    TokenExpired,
    /// 401 `token_revoked`: the agent's tokens up to now were revoked (`proxy revoke`).
    #[error("access for this agent was revoked; sign in again")]
    TokenRevoked,
    /// 403 `forbidden`: the token is limited to another payment.
    #[error("this token is for another payment")]
    Forbidden,
    /// 403 `origin_not_allowed`.
    #[error("this page's origin may not call the refund API")]
    OriginNotAllowed,
    /// 400 `invalid_json`. The parser's own text (Rust type names, positions) is logged, not
    /// sent: the agent gets a sentence, the operator the detail.
    #[error("the request body is not JSON of the right shape: a field is unknown, missing or of the wrong kind")]
    InvalidJson(String),
    /// 415 `unsupported_media_type`.
    #[error("send the body as application/json")]
    UnsupportedMediaType,
    /// 413 `payload_too_large`.
    #[error("the request body is too large")]
    PayloadTooLarge,
    /// 408 `request_timeout`: the body came too slowly (`app::body_in_time`).
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    /// 400 `invalid_session_id`.
    #[error("`{0}` is not a payment session id (ps_…)")]
    InvalidSessionId(String),
    /// 400 `invalid_request`.
    #[error("{0}")]
    InvalidRequest(String),
    /// 404 `not_found`.
    #[error("no such route")]
    NotFound,
    /// 404 `not_found`: no refund request with that attempt id on this payment.
    #[error("no such refund request on this payment")]
    NoSuchRequest,
    /// 405 `method_not_allowed`.
    #[error("this route does not take that method")]
    MethodNotAllowed,
    /// 400 or 422 with the rule's own code (`exceeds_remaining`, `note_required`, …).
    #[error("{}", rule_message(*.0))]
    Rule(ErrorCode),
    /// 409 `idempotency_conflict`.
    #[error("this idempotency key was already used for a different refund")]
    IdempotencyConflict,
    /// 409 `refund_in_flight`.
    #[error("another refund on this payment is being submitted; try again in a moment")]
    RefundInFlight,
    /// 422 `over_agent_limit`: more than the agent may refund at once; what they may.
    #[error("this is more than you may refund at once: at most {}", .0.format(shared::Locale::En))]
    OverAgentLimit(shared::Money),
    /// 422 `over_daily_limit`: more than the agent may still refund today (UTC); what is left.
    #[error("this is more than you may still refund today: {} left", .0.format(shared::Locale::En))]
    OverDailyLimit(shared::Money),
    /// 429 `rate_limited`, with `Retry-After` (whole seconds).
    #[error("too many requests; try again in {0} s")]
    RateLimited(u64),
    /// 404 `payment_not_found`.
    #[error("Smart Glocal does not know this payment")]
    PaymentNotFound,
    /// 422 `upstream_rejected`, 502 `upstream_unavailable` / `upstream_bad_response`, 504 `upstream_timeout`.
    #[error("{}", upstream_message(.0))]
    Upstream(#[from] UpstreamError),
    /// The stored answer of an idempotent replay: the same code and message as the first time.
    #[error("{1}")]
    Replayed(ErrorCode, String),
    /// 401 `signature_invalid`.
    #[error("the webhook signature is missing or wrong")]
    SignatureInvalid,
    /// 500 `internal`; the detail is logged, not sent.
    #[error("something went wrong; it has been logged")]
    Internal(String),
    /// 503 `ledger_unavailable`: the ledger cannot write (disk full, read-only, I/O error), so
    /// nothing is sent to Smart Glocal and nothing is acknowledged; the detail is logged.
    #[error(
        "the refund ledger cannot record anything right now; nothing was sent, try again later"
    )]
    LedgerUnavailable(String),
}

fn rule_message(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::AmountEmpty => "enter an amount",
        ErrorCode::AmountNotANumber => "the amount is not a number",
        ErrorCode::AmountNotPositive => "the amount must be greater than zero",
        ErrorCode::AmountTooManyDecimals => {
            "the amount has too many decimal places for this currency"
        }
        ErrorCode::AmountTooLarge => "the amount is too large",
        ErrorCode::CurrencyMismatch => "the amount's currency is not the payment's",
        ErrorCode::ExceedsRemaining => "the amount exceeds what remains refundable",
        ErrorCode::PartialNotAllowed => "partial refunds are not enabled for this merchant",
        ErrorCode::AmountChanged => {
            "the refund would no longer be the amount confirmed: the payment changed; review it again"
        }
        ErrorCode::NotRefundable => "this payment cannot be refunded",
        ErrorCode::NoteRequired => "reason \"other\" needs a note",
        ErrorCode::NoteTooLong => "the note is too long",
        // The one field rule with this code (`shared::Note::parse`).
        ErrorCode::InvalidRequest => "a note holds no control characters but line breaks and tabs",
        ErrorCode::InvalidIdempotencyKey => "the idempotency key must be 16–64 of A-Z a-z 0-9 - _",
        ErrorCode::ApprovalNotAllowed => "your token does not let you approve or reject refunds",
        ErrorCode::OwnRequest => "a second agent must approve or reject your own request",
        ErrorCode::NotAwaitingApproval => "this request was already approved, rejected or expired",
        ErrorCode::AlreadyRequested => {
            "your earlier request on this payment still awaits approval: it is decided first"
        }
        ErrorCode::ApprovalExpired => "this request expired before anyone approved it",
        ErrorCode::ApprovalRejected => "a second agent rejected this request",
        _ => "the refund is not allowed",
    }
}

fn upstream_message(error: &UpstreamError) -> String {
    match error {
        UpstreamError::Rejected(e) => format!("Smart Glocal refused the request: {}", e.code),
        UpstreamError::Unreachable(_) | UpstreamError::Http(_) => {
            "Smart Glocal could not be reached".into()
        }
        UpstreamError::Timeout => "Smart Glocal did not answer in time".into(),
        UpstreamError::BadResponse(_) => "Smart Glocal answered something unreadable".into(),
    }
}

/// The HTTP status of each code: one table, so replays and fresh errors agree.
pub fn status_of(code: ErrorCode) -> StatusCode {
    use ErrorCode::*;
    match code {
        Unauthenticated | TokenInvalid | TokenExpired | TokenRevoked | SignatureInvalid => {
            StatusCode::UNAUTHORIZED
        }
        Forbidden | OriginNotAllowed | ApprovalNotAllowed | OwnRequest => StatusCode::FORBIDDEN,
        InvalidJson | InvalidSessionId | InvalidRequest | InvalidIdempotencyKey => {
            StatusCode::BAD_REQUEST
        }
        UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        NotFound | PaymentNotFound => StatusCode::NOT_FOUND,
        MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        AmountEmpty
        | AmountNotANumber
        | AmountNotPositive
        | AmountTooManyDecimals
        | AmountTooLarge
        | CurrencyMismatch
        | ExceedsRemaining
        | PartialNotAllowed
        | NotRefundable
        | NoteRequired
        | NoteTooLong
        | OverAgentLimit
        | OverDailyLimit
        | ApprovalRejected
        | UpstreamRejected => StatusCode::UNPROCESSABLE_ENTITY,
        IdempotencyConflict | RefundInFlight | NotAwaitingApproval | AlreadyRequested
        | ApprovalExpired | AmountChanged => StatusCode::CONFLICT,
        RateLimited => StatusCode::TOO_MANY_REQUESTS,
        UpstreamUnavailable | UpstreamBadResponse => StatusCode::BAD_GATEWAY,
        UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        Internal => StatusCode::INTERNAL_SERVER_ERROR,
        LedgerUnavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

impl ApiError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::Unauthenticated => ErrorCode::Unauthenticated,
            ApiError::TokenInvalid => ErrorCode::TokenInvalid,
            ApiError::TokenExpired => ErrorCode::TokenExpired,
            ApiError::TokenRevoked => ErrorCode::TokenRevoked,
            ApiError::Forbidden => ErrorCode::Forbidden,
            ApiError::OriginNotAllowed => ErrorCode::OriginNotAllowed,
            ApiError::InvalidJson(_) => ErrorCode::InvalidJson,
            ApiError::UnsupportedMediaType => ErrorCode::UnsupportedMediaType,
            ApiError::PayloadTooLarge => ErrorCode::PayloadTooLarge,
            ApiError::RequestTimeout => ErrorCode::RequestTimeout,
            ApiError::InvalidSessionId(_) => ErrorCode::InvalidSessionId,
            ApiError::InvalidRequest(_) => ErrorCode::InvalidRequest,
            ApiError::NotFound | ApiError::NoSuchRequest => ErrorCode::NotFound,
            ApiError::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            ApiError::Rule(code) => *code,
            ApiError::OverAgentLimit(_) => ErrorCode::OverAgentLimit,
            ApiError::OverDailyLimit(_) => ErrorCode::OverDailyLimit,
            ApiError::IdempotencyConflict => ErrorCode::IdempotencyConflict,
            ApiError::RefundInFlight => ErrorCode::RefundInFlight,
            ApiError::PaymentNotFound => ErrorCode::PaymentNotFound,
            ApiError::RateLimited(_) => ErrorCode::RateLimited,
            ApiError::Upstream(UpstreamError::Rejected(_)) => ErrorCode::UpstreamRejected,
            ApiError::Upstream(UpstreamError::Unreachable(_) | UpstreamError::Http(_)) => {
                ErrorCode::UpstreamUnavailable
            }
            ApiError::Upstream(UpstreamError::Timeout) => ErrorCode::UpstreamTimeout,
            ApiError::Upstream(UpstreamError::BadResponse(_)) => ErrorCode::UpstreamBadResponse,
            ApiError::Replayed(code, _) => *code,
            ApiError::SignatureInvalid => ErrorCode::SignatureInvalid,
            ApiError::Internal(_) => ErrorCode::Internal,
            ApiError::LedgerUnavailable(_) => ErrorCode::LedgerUnavailable,
        }
    }

    pub fn body(&self) -> ErrorBody {
        let mut body = ErrorBody::new(self.code(), self.to_string());
        // Smart Glocal's refusal is the agent's answer: its code and words, verbatim.
        match self {
            ApiError::Upstream(UpstreamError::Rejected(error)) => {
                body.provider = Some(ProviderError {
                    code: error.code.clone(),
                    description: error.description.clone(),
                });
            }
            ApiError::OverAgentLimit(allowance) | ApiError::OverDailyLimit(allowance) => {
                body.allowance = Some(*allowance);
            }
            _ => {}
        }
        body
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        if crate::ledger::is_storage_fault(&error) {
            ApiError::LedgerUnavailable(error.to_string())
        } else {
            ApiError::Internal(error.to_string())
        }
    }
}

/// When [`seldom`] last let a `LedgerUnavailable` warning through: seconds since the process
/// first asked, plus one (0: never).
static LEDGER_WARNED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Whether at least `secs` have passed since `last` (which it then sets to now), by the
/// monotonic clock: a wall clock stepped back would silence it.
fn seldom(last: &std::sync::atomic::AtomicU64, secs: u64) -> bool {
    use std::sync::atomic::Ordering;
    static SINCE: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let now = SINCE
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs()
        + 1;
    let before = last.load(Ordering::Relaxed);
    (before == 0 || now >= before.saturating_add(secs))
        && last
            .compare_exchange(before, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.code();
        let status = status_of(code);
        // Foreign text is quoted and escaped (`?`): serde's echoes the body, Smart Glocal's
        // is its own, and a line break in either must not start a line of its own in the log.
        // Any other refusal is the request's one access line (`app`), which carries its code.
        match &self {
            ApiError::Internal(detail) => {
                tracing::error!(code = %code.name(), ?detail, "request failed")
            }
            // A write's fault is one `error` line when it begins (`ledger::Health`), with
            // this detail; each request it turns away (a load balancer's `/readyz` every
            // second among them) is its access line, or they would bury it. A read's fault
            // reaches no such line: so one warning every 10 s at most, whichever it is.
            ApiError::LedgerUnavailable(detail) if seldom(&LEDGER_WARNED, 10) => {
                tracing::warn!(code = %code.name(), ?detail, "requests refused: the ledger cannot be used")
            }
            ApiError::InvalidJson(detail) => {
                tracing::info!(code = %code.name(), ?detail, "request rejected")
            }
            ApiError::Upstream(detail) => {
                tracing::warn!(code = %code.name(), detail = ?detail.to_string(), "upstream error")
            }
            _ => {}
        }
        let mut response = (status, Json(self.body())).into_response();
        response.extensions_mut().insert(code);
        // A 401 names the scheme it wants (RFC 9110, 11.6.1): an agent's bearer token, or
        // for a webhook Smart Glocal's signature header, which no challenge describes.
        let challenge = match code {
            ErrorCode::Unauthenticated => Some("Bearer"),
            ErrorCode::TokenInvalid | ErrorCode::TokenExpired | ErrorCode::TokenRevoked => {
                Some("Bearer error=\"invalid_token\"")
            }
            _ => None,
        };
        if let Some(challenge) = challenge {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static(challenge),
            );
        }
        if let ApiError::RateLimited(secs) = self {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}
