//! [`Sandbox`]: a sandbox served in-process on `127.0.0.1:0`, with typed helpers over its
//! control API. Other crates' tests start one per test; it stops when dropped.
//!
//! The helpers go through HTTP like any client would, so the control API they rely on is the
//! one the demo page and `curl` use. They panic on failure, as test helpers should; the
//! `try_` forms return what went wrong instead.

use std::fmt::Display;
use std::net::SocketAddr;

use tokio::task::JoinHandle;

use crate::config::SandboxConfig;
use crate::control::{ChargebackRequest, CreatePayment, FaultRequest, SandboxSession};
use crate::state::AppState;

/// A running sandbox. Dropping it stops the server and its webhook retries.
pub struct Sandbox {
    pub addr: SocketAddr,
    state: AppState,
    server: JoinHandle<()>,
    client: reqwest::Client,
}

impl Sandbox {
    /// Binds `127.0.0.1:0` and serves `config` in a tokio task.
    pub async fn start(config: SandboxConfig) -> Sandbox {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0 for the sandbox");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let state = AppState::new(config);
        let serving = state.clone();
        let server = tokio::spawn(async move {
            if let Err(error) = crate::serve(listener, serving, std::future::pending()).await {
                tracing::error!(%error, "sandbox server stopped");
            }
        });
        Sandbox {
            addr,
            state,
            server,
            client: reqwest::Client::new(),
        }
    }

    /// `http://127.0.0.1:<port>`, with no trailing slash: the proxy's upstream base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sends webhooks to `url` from now on, including retries already under way.
    pub fn set_webhook_url(&self, url: impl Into<String>) {
        self.state.set_webhook_url(Some(url.into()));
    }

    /// Sends no webhooks from now on (refunds still finish).
    pub fn clear_webhook_url(&self) {
        self.state.set_webhook_url(None);
    }

    /// Sends `project`'s webhooks to `url`, whatever the default address is.
    pub fn set_project_webhook_url(&self, project: &str, url: impl Into<String>) {
        self.state
            .set_project_webhook_url(project, Some(url.into()));
    }

    /// The state the server runs on (for `sandbox::app` in `oneshot` tests).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    /// `GET /_sandbox/sessions/{id}`. Panics if there is no such session.
    pub async fn session(&self, id: impl Display) -> SandboxSession {
        let id = id.to_string();
        self.try_session(&id)
            .await
            .unwrap_or_else(|| panic!("the sandbox has no session {id}"))
    }

    /// `GET /_sandbox/sessions/{id}`, `None` if there is no such session.
    pub async fn try_session(&self, id: impl Display) -> Option<SandboxSession> {
        let response = self
            .client
            .get(self.url(&format!("/_sandbox/sessions/{id}")))
            .send()
            .await
            .expect("the sandbox answers");
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return None;
        }
        Some(json(response).await)
    }

    /// `GET /_sandbox/sessions`.
    pub async fn sessions(&self) -> Vec<SandboxSession> {
        let response = self
            .client
            .get(self.url("/_sandbox/sessions"))
            .send()
            .await
            .expect("the sandbox answers");
        json(response).await
    }

    /// `POST /_sandbox/faults`: `sandbox.inject(Fault::Http500)` hits the next call;
    /// `FaultRequest::new(..).times(n).on(route)` says more.
    pub async fn inject(&self, fault: impl Into<FaultRequest>) {
        let response = self
            .client
            .post(self.url("/_sandbox/faults"))
            .json(&fault.into())
            .send()
            .await
            .expect("the sandbox answers");
        let _: Vec<FaultRequest> = json(response).await;
    }

    /// `DELETE /_sandbox/faults`.
    pub async fn clear_faults(&self) {
        let response = self
            .client
            .delete(self.url("/_sandbox/faults"))
            .send()
            .await
            .expect("the sandbox answers");
        assert!(
            response.status().is_success(),
            "clearing faults: {}",
            response.status()
        );
    }

    /// `POST /_sandbox/sessions`: a new succeeded payment.
    pub async fn create_payment(&self, payment: CreatePayment) -> SandboxSession {
        let response = self
            .client
            .post(self.url("/_sandbox/sessions"))
            .json(&payment)
            .send()
            .await
            .expect("the sandbox answers");
        json(response).await
    }

    /// `POST /_sandbox/sessions/{id}/chargeback` of `amount` minor units; its webhook follows.
    pub async fn chargeback(&self, id: impl Display, amount: u64) -> SandboxSession {
        let response = self
            .client
            .post(self.url(&format!("/_sandbox/sessions/{id}/chargeback")))
            .json(&ChargebackRequest {
                amount: Some(amount),
            })
            .send()
            .await
            .expect("the sandbox answers");
        json(response).await
    }
}

async fn json<T: serde::de::DeserializeOwned>(response: reqwest::Response) -> T {
    let status = response.status();
    let text = response.text().await.expect("the sandbox sends a body");
    assert!(
        status.is_success(),
        "the sandbox's control API answered {status}: {text}"
    );
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("unexpected control answer ({e}): {text}"))
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.state.shutdown();
        self.server.abort();
    }
}
