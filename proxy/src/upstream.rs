//! The Smart Glocal client: one `reqwest` client, every call `POST` JSON with
//! `X-PARTNER-PROJECT` and an `X-PARTNER-SIGN` over the exact bytes sent.
//!
//! Nothing here retries. A refund retried after a lost answer could pay twice, so every
//! failure comes back typed and the caller (the refund flow, reconciliation) decides.

use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::smart_glocal::{self as sg, RefundRequest, Session, StatusRequest};
use shared::SessionId;
use signing::Signer;

use crate::metrics::Metrics;

/// Why a call did not return a session.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// `status: error` (with any status but a 5xx): Smart Glocal answered and refused.
    /// Nothing happened upstream.
    #[error("Smart Glocal refused: {} ({})", .0.code, .0.description)]
    Rejected(sg::SmartGlocalError),
    /// The connection could not be made: the request never left, nothing happened upstream.
    #[error("could not connect to Smart Glocal: {0}")]
    Unreachable(String),
    /// An HTTP error without a readable refusal: the request may or may not have been applied.
    #[error("Smart Glocal answered HTTP {0}")]
    Http(u16),
    /// No answer in time: the request may or may not have been applied.
    #[error("Smart Glocal did not answer in time")]
    Timeout,
    /// An answer that is not the documented envelope (or a connection cut mid-answer).
    #[error("unreadable answer from Smart Glocal: {0}")]
    BadResponse(String),
}

impl UpstreamError {
    /// What an agent may read of it (a refund's history): the kind, never the transport's or
    /// the parser's own words, which can name the upstream URL or echo the answer. Those go
    /// to the log.
    pub fn public_detail(&self) -> String {
        match self {
            UpstreamError::Rejected(e) => {
                format!("Smart Glocal refused: {} ({})", e.code, e.description)
            }
            UpstreamError::Unreachable(_) => "could not connect to Smart Glocal".into(),
            UpstreamError::Http(status) => format!("Smart Glocal answered HTTP {status}"),
            UpstreamError::Timeout => "Smart Glocal did not answer in time".into(),
            UpstreamError::BadResponse(_) => "Smart Glocal's answer could not be read".into(),
        }
    }
}

/// Smart Glocal, as seen from the proxy.
#[derive(Clone)]
pub struct Upstream {
    client: reqwest::Client,
    base_url: String,
    project: String,
    signer: Signer,
    metrics: Arc<Metrics>,
}

impl Upstream {
    pub fn new(
        base_url: &str,
        project: &str,
        signer: Signer,
        timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        let client = reqwest::Client::builder()
            // Smart Glocal's API answers where it is asked. A redirect followed would carry a
            // signed refund, its signature and project headers, to whatever the `Location`
            // names (reqwest re-sends a POST's body on 307 and 308), and read another host's
            // answer as Smart Glocal's: a 3xx is an answer like any other HTTP error.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .expect("a reqwest client with rustls builds");
        Self {
            client,
            base_url: base_url.trim_end_matches('/').to_owned(),
            project: project.to_owned(),
            signer,
            metrics,
        }
    }

    /// `session/status`: the session with its payments and refunds.
    pub async fn status(&self, session_id: &SessionId) -> Result<Session, UpstreamError> {
        self.call(
            "status",
            sg::PATH_STATUS,
            &StatusRequest {
                session_id: session_id.clone(),
            },
        )
        .await
    }

    /// `session/refund`. Never call twice for one attempt.
    pub async fn refund(&self, request: &RefundRequest) -> Result<Session, UpstreamError> {
        self.call("refund", sg::PATH_REFUND, request).await
    }

    async fn call<T: serde::Serialize>(
        &self,
        name: &'static str,
        path: &str,
        body: &T,
    ) -> Result<Session, UpstreamError> {
        let started = Instant::now();
        let result = self.send(path, body).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(UpstreamError::Rejected(_)) => "rejected",
            Err(UpstreamError::Timeout) => "timeout",
            Err(_) => "error",
        };
        self.metrics
            .observe_upstream(name, outcome, started.elapsed());
        result
    }

    async fn send<T: serde::Serialize>(
        &self,
        path: &str,
        body: &T,
    ) -> Result<Session, UpstreamError> {
        // Serialise once; these exact bytes are signed and sent.
        let bytes =
            serde_json::to_vec(body).map_err(|e| UpstreamError::BadResponse(e.to_string()))?;
        let signature = self.signer.sign(&bytes);
        let response = self
            .client
            .post(format!("{}{}", self.base_url, path))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(sg::HEADER_PROJECT, &self.project)
            .header(sg::HEADER_SIGN, signature)
            .body(bytes)
            .send()
            .await
            .map_err(classify)?;
        let status = response.status();
        let body = read_answer(response).await?;
        match serde_json::from_slice::<sg::Response>(&body) {
            // An explicit refusal is definitive, unless it comes with a server error: a 5xx
            // says Smart Glocal failed while handling the request, which it may have applied
            // before failing (its documentation gives the envelope, not what a 5xx means).
            // Taken as a refusal, the attempt would be `failed` and its amount free to refund
            // again while the first refund may be on its way.
            Ok(sg::Response::Error { error }) if !status.is_server_error() => {
                Err(UpstreamError::Rejected(error))
            }
            Ok(sg::Response::Error { error }) => {
                tracing::warn!(
                    http_status = status.as_u16(), code = ?error.code,
                    "Smart Glocal answered a server error with a refusal: outcome unknown"
                );
                Err(UpstreamError::Http(status.as_u16()))
            }
            Ok(sg::Response::Ok { .. }) | Err(_) if !status.is_success() => {
                Err(UpstreamError::Http(status.as_u16()))
            }
            Ok(sg::Response::Ok { session }) => Ok(session),
            Err(e) => Err(UpstreamError::BadResponse(e.to_string())),
        }
    }
}

/// The largest answer read from Smart Glocal. A session lists its payments' refunds, a few
/// hundred bytes each: 4 MiB is thousands of them. An answer over it is not read into memory
/// (nor, on a reconciliation pass, written refund by refund into the ledger): unreadable.
pub const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

async fn read_answer(mut response: reqwest::Response) -> Result<Vec<u8>, UpstreamError> {
    let too_large =
        || UpstreamError::BadResponse(format!("an answer over {MAX_ANSWER_BYTES} bytes"));
    if response
        .content_length()
        .is_some_and(|length| length > MAX_ANSWER_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(classify)? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn classify(error: reqwest::Error) -> UpstreamError {
    if error.is_timeout() {
        UpstreamError::Timeout
    } else if error.is_connect() {
        UpstreamError::Unreachable(error.to_string())
    } else {
        UpstreamError::BadResponse(error.to_string())
    }
}
