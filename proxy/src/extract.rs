//! Extractors whose rejections are [`ApiError`]s, so malformed input gets the same
//! `{code, message}` body as every other error instead of axum's plain-text answers.

use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use shared::SessionId;

use crate::error::ApiError;

/// `axum::Json`, with `invalid_json`, `unsupported_media_type` and `payload_too_large`.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::UnsupportedMediaType),
            Err(JsonRejection::BytesRejection(e)) => Err(bytes_rejection(e)),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::InvalidJson(e.body_text())),
            Err(e) => Err(ApiError::InvalidJson(e.body_text())),
        }
    }
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
