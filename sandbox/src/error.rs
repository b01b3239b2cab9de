//! The two error shapes: Smart Glocal's envelope on its routes, `shared::api::ErrorBody` on the
//! sandbox's own control routes.
//!
//! HTTP statuses on the Smart Glocal routes, chosen the way such an API answers: a caller who
//! is not who they claim gets 401, a body that is not a request gets 400, and a well-formed,
//! authenticated request the business rules refuse gets 200 with `"status":"error"` — the
//! envelope, not the HTTP status, carries the outcome.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use shared::api::{ErrorBody, ErrorCode};
use shared::smart_glocal::{self as sg, SmartGlocalError};

/// Why a Smart Glocal call was refused. Each variant is one stable `error.code`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SgError {
    /// 401 `unknown_project`: `X-PARTNER-PROJECT` is missing or names no project.
    #[error("unknown project")]
    UnknownProject,
    /// 401 `invalid_signature`: `X-PARTNER-SIGN` is missing, malformed or does not match.
    #[error("the signature is missing or does not match the request body")]
    InvalidSignature,
    /// 400 `invalid_request`: not JSON, or not the method's shape.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// 200 `session_not_found`: no such session in this project.
    #[error("session not found")]
    SessionNotFound,
    /// 200 `payment_not_succeeded`: there is no succeeded payment to refund.
    #[error("the session has no succeeded payment")]
    PaymentNotSucceeded,
    /// 200 `invalid_amount`: the amount is zero.
    #[error("the refund amount must be greater than zero")]
    InvalidAmount,
    /// 200 `currency_mismatch`: the refund's currency is not the payment's.
    #[error("the refund currency must be {expected}")]
    CurrencyMismatch { expected: String },
    /// 200 `amount_exceeds_remaining`: more than what is left of the payment.
    #[error("the refund amount exceeds the refundable remainder of {remaining}")]
    AmountExceedsRemaining { remaining: u64 },
    /// 200 `partial_refund_not_allowed`: the project takes full refunds only.
    #[error("partial refunds are not enabled for this project")]
    PartialRefundNotAllowed,
    /// 200 `refund_declined`: the acquirer refused the refund (the `decline` fault).
    #[error("the refund was declined by the acquirer")]
    RefundDeclined,
}

impl SgError {
    pub fn code(&self) -> &'static str {
        match self {
            SgError::UnknownProject => "unknown_project",
            SgError::InvalidSignature => "invalid_signature",
            SgError::InvalidRequest(_) => "invalid_request",
            SgError::SessionNotFound => "session_not_found",
            SgError::PaymentNotSucceeded => "payment_not_succeeded",
            SgError::InvalidAmount => "invalid_amount",
            SgError::CurrencyMismatch { .. } => "currency_mismatch",
            SgError::AmountExceedsRemaining { .. } => "amount_exceeds_remaining",
            SgError::PartialRefundNotAllowed => "partial_refund_not_allowed",
            SgError::RefundDeclined => "refund_declined",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            SgError::UnknownProject | SgError::InvalidSignature => StatusCode::UNAUTHORIZED,
            SgError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::OK,
        }
    }
}

impl SgError {
    /// The `status: error` envelope it is answered with.
    pub fn envelope(&self) -> sg::Response {
        sg::Response::Error {
            error: SmartGlocalError {
                code: self.code().to_owned(),
                description: self.to_string(),
            },
        }
    }
}

impl IntoResponse for SgError {
    fn into_response(self) -> Response {
        (self.status(), Json(self.envelope())).into_response()
    }
}

/// Why a control call was refused; answered as `shared::api::ErrorBody`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// 404 `payment_not_found`.
    #[error("no session {0}")]
    SessionNotFound(String),
    /// 400 `invalid_json`.
    #[error("the body is not the expected JSON: {0}")]
    InvalidJson(String),
    /// 400 `invalid_request`: e.g. an unknown project or a duplicate session id.
    #[error("{0}")]
    InvalidRequest(String),
    /// 422 `exceeds_remaining`: a chargeback larger than the payment less earlier chargebacks.
    #[error("the amount exceeds the remainder of {remaining}")]
    ExceedsRemaining { remaining: u64 },
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            ControlError::SessionNotFound(_) => (StatusCode::NOT_FOUND, ErrorCode::PaymentNotFound),
            ControlError::InvalidJson(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidJson),
            ControlError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest),
            ControlError::ExceedsRemaining { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::ExceedsRemaining,
            ),
        };
        (status, Json(ErrorBody::new(code, self.to_string()))).into_response()
    }
}
