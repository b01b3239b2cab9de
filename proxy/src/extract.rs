//! Extractors whose rejections are [`ApiError`]s, so malformed input gets the same
//! `{code, message}` body as every other error instead of axum's plain-text answers:
//! JSON bodies, the `{session_id}` path, and the [`Agent`] behind `Authorization: Bearer`.

use axum::extract::rejection::{BytesRejection, JsonDataError, JsonRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use shared::api::Limit;
use shared::{AttemptId, Currency, FieldError, SessionId};

use crate::config::Config;
use crate::error::ApiError;
use crate::state::AppState;

/// `axum::Json`, with `invalid_json`, `unsupported_media_type` and `payload_too_large`.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::UnsupportedMediaType),
            Err(JsonRejection::BytesRejection(e)) => Err(bytes_rejection(e)),
            // A field that broke its own rule says which (`shared::fields`): that rule's code.
            Err(JsonRejection::JsonDataError(e)) => Err(
                match serde_message(&e).and_then(|m| FieldError::code_in(&m)) {
                    Some(code) => ApiError::Rule(code),
                    None => ApiError::InvalidJson(e.body_text()),
                },
            ),
            Err(e) => Err(ApiError::InvalidJson(e.body_text())),
        }
    }
}

/// [`ApiJson`], or `T::default()` for a request with no body at all (none announced, or an
/// empty one): for bodies whose every field is optional, such as an approval's note.
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        use axum::http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
        let headers = req.headers();
        let length = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok());
        let bodiless = match length {
            Some(length) => length.trim() == "0",
            None => !headers.contains_key(TRANSFER_ENCODING),
        };
        if bodiless {
            return Ok(OptionalJson(T::default()));
        }
        // A body of unknown length (chunked) may still turn out empty.
        let (parts, body) = req.into_parts();
        let bytes =
            axum::body::Bytes::from_request(Request::from_parts(parts.clone(), body), state)
                .await
                .map_err(bytes_rejection)?;
        if bytes.is_empty() {
            return Ok(OptionalJson(T::default()));
        }
        let req = Request::from_parts(parts, axum::body::Body::from(bytes));
        ApiJson::from_request(req, state)
            .await
            .map(|ApiJson(value)| OptionalJson(value))
    }
}

/// What serde_json itself said of a body (without axum's words and the field's path), read
/// from the rejection's source; `None` if it is not there.
fn serde_message(rejection: &JsonDataError) -> Option<String> {
    use std::error::Error as _;
    let error = rejection.source()?.source()?;
    let error = error.downcast_ref::<serde_path_to_error::Error<serde_json::Error>>()?;
    Some(error.inner().to_string())
}

pub fn bytes_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else {
        ApiError::InvalidRequest("the request body could not be read".into())
    }
}

/// The `{session_id}` path segment, parsed: `invalid_session_id` unless it is `ps_…`.
pub struct SessionPath(pub SessionId);

impl<S: Send + Sync> FromRequestParts<S> for SessionPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::InvalidSessionId(String::new()))?;
        SessionId::parse(&raw)
            .map(SessionPath)
            .map_err(|e| ApiError::InvalidSessionId(e.value))
    }
}

/// `{session_id}/refunds/{attempt_id}`, both parsed: `invalid_session_id`, or `not_found`
/// for something that is no attempt id (no request can have it).
pub struct AttemptPath(pub SessionId, pub AttemptId);

impl<S: Send + Sync> FromRequestParts<S> for AttemptPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        // Not decodable (`%FF`): the session's segment decides which of the two it was.
        let Path((session, attempt)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|_| {
                let raw_session = parts.uri.path().split('/').nth(3).unwrap_or_default();
                match SessionId::parse(raw_session) {
                    Ok(_) => ApiError::NoSuchRequest,
                    Err(_) => ApiError::InvalidSessionId(String::new()),
                }
            })?;
        let session =
            SessionId::parse(&session).map_err(|e| ApiError::InvalidSessionId(e.value))?;
        let attempt = AttemptId::parse(&attempt).ok_or(ApiError::NoSuchRequest)?;
        Ok(AttemptPath(session, attempt))
    }
}

/// The agent behind a request, from `Authorization: Bearer …`.
#[derive(Debug, Clone)]
pub struct Agent {
    pub name: String,
    /// The one payment this token is limited to, if any.
    pub session_id: Option<SessionId>,
    /// The token's `iat`, Unix seconds.
    pub issued_at: i64,
    /// The token's `exp`, Unix seconds.
    pub expires_at: i64,
    /// What the token lets this agent refund.
    pub limits: AgentLimits,
    pub role: Option<String>,
    /// May approve or reject other agents' requests (the token's `can_approve`).
    pub can_approve: bool,
}

/// How much an agent may refund, from the token's `refund_max` and `refund_daily`; in a
/// currency the token's limit does not name (or where it sets none), the proxy's configured
/// defaults apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentLimits {
    pub per_refund: Option<Limit>,
    pub daily: Option<Limit>,
}

/// What binds an agent in one currency, minor units: their limits (the token's, else the
/// configuration's defaults) and the merchant's approval threshold. `None`: not limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    pub per_refund: Option<u64>,
    pub daily: Option<u64>,
    pub approval_above: Option<u64>,
}

impl Agent {
    /// The one reading of the limits, for the refund flow that enforces them and the payment
    /// view that shows them.
    pub fn binding(&self, config: &Config, currency: Currency) -> Binding {
        // Currency by currency: a token limiting euros leaves dollars to the configuration,
        // not unlimited.
        let pick = |token: &Option<Limit>, default: &Option<Limit>| {
            let in_currency = |limit: &Option<Limit>| {
                limit.as_ref().and_then(|limit| limit.in_currency(currency))
            };
            in_currency(token).or_else(|| in_currency(default))
        };
        Binding {
            per_refund: pick(&self.limits.per_refund, &config.refund_max),
            daily: pick(&self.limits.daily, &config.refund_daily),
            approval_above: pick(&None, &config.approval_above),
        }
    }

    /// Refuses a token issued before its agent was revoked (`proxy revoke`). Read from the
    /// ledger on every request, so a revocation holds at once on every replica.
    pub async fn check_not_revoked(&self, state: &AppState) -> Result<(), ApiError> {
        match state.ledger.revoked_until(&self.name).await? {
            Some(until) if self.issued_at <= until => Err(ApiError::TokenRevoked),
            _ => Ok(()),
        }
    }

    /// Whether this agent may act on `session`.
    pub fn authorize(&self, session: &SessionId) -> Result<(), ApiError> {
        match &self.session_id {
            Some(only) if only != session => Err(ApiError::Forbidden),
            _ => Ok(()),
        }
    }
}

impl FromRequestParts<AppState> for Agent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or(ApiError::Unauthenticated)?;
        let value = header.to_str().map_err(|_| ApiError::Unauthenticated)?;
        // The scheme in any case (RFC 9110, 11.1).
        let token = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::Unauthenticated)?;
        let agent = state.tokens.verify_agent(token)?;
        // The limit first: a throttled agent's requests cost no read of the ledger.
        state.rate_limit.check(&agent.name).map_err(|wait| {
            // Whole seconds, rounded up: `Retry-After: 0` would invite an immediate retry.
            ApiError::RateLimited(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
        })?;
        agent.check_not_revoked(state).await?;
        Ok(agent)
    }
}
