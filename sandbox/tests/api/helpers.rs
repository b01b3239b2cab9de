//! What every sandbox test needs: a sandbox on 127.0.0.1:0, a merchant that signs its calls
//! and reads the answers, the proxy's webhook verifier, and a webhook receiver on 127.0.0.1:0
//! that records what arrives and can refuse the first deliveries.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use sandbox::{Sandbox, SandboxConfig, DEMO_HMAC_REQUEST_SECRET, DEMO_HMAC_WEBHOOK_SECRET};
use serde_json::{json, Value};
use shared::smart_glocal::{HEADER_PROJECT, HEADER_SIGN, PATH_REFUND, PATH_STATUS};
use signing::{Scheme, Secret, Signer, Verifier};

pub const MERCHANT_PRIVATE_KEY: &str =
    include_str!("../../../demo/keys/DEMO-ONLY-merchant-private.pem");
pub const SANDBOX_PUBLIC_KEY: &str =
    include_str!("../../../demo/keys/DEMO-ONLY-sandbox-public.pem");

/// A sandbox with test timing in `scheme`, and a merchant of `demo-project` signing for it.
pub async fn spawn(scheme: Scheme) -> (Sandbox, Merchant) {
    spawn_with(SandboxConfig::demo_scheme(scheme).fast()).await
}

/// A sandbox started with `config`, and a merchant of `demo-project` signing in its scheme.
pub async fn spawn_with(config: SandboxConfig) -> (Sandbox, Merchant) {
    let scheme = config.scheme();
    let sandbox = Sandbox::start(config).await;
    let merchant = Merchant::new(&sandbox, scheme, "demo-project");
    (sandbox, merchant)
}

/// Signs the way the merchant's proxy does: the exact bytes it sends.
pub fn merchant_signer(scheme: Scheme) -> Signer {
    match scheme {
        Scheme::RsaSha256 => Signer::rsa_from_pem(MERCHANT_PRIVATE_KEY).unwrap(),
        Scheme::HmacSha256 => Signer::hmac(Secret::new(DEMO_HMAC_REQUEST_SECRET)).unwrap(),
    }
}

/// Verifies webhooks the way the proxy does.
pub fn webhook_verifier(scheme: Scheme) -> Verifier {
    match scheme {
        Scheme::RsaSha256 => Verifier::rsa_from_pem(SANDBOX_PUBLIC_KEY).unwrap(),
        Scheme::HmacSha256 => Verifier::hmac(Secret::new(DEMO_HMAC_WEBHOOK_SECRET)).unwrap(),
    }
}

/// Calls the Smart Glocal routes as a merchant's proxy does: signed, naming its project.
pub struct Merchant {
    pub base_url: String,
    pub project: String,
    pub signer: Signer,
    pub http: reqwest::Client,
}

/// An answer: the HTTP status and the body, as JSON when it is JSON.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// The `error.code` of a `status: error` envelope.
    pub fn error_code(&self) -> String {
        let body = self.json();
        assert_eq!(
            body["status"], "error",
            "expected an error envelope: {body}"
        );
        body["error"]["code"].as_str().unwrap().to_owned()
    }

    /// The session of a `status: ok` envelope.
    pub fn session(&self) -> Value {
        let body = self.json();
        assert_eq!(self.status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "ok", "expected an ok envelope: {body}");
        body["session"].clone()
    }
}

impl Merchant {
    pub fn new(sandbox: &Sandbox, scheme: Scheme, project: &str) -> Self {
        Self {
            base_url: sandbox.base_url(),
            project: project.to_owned(),
            signer: merchant_signer(scheme),
            http: reqwest::Client::new(),
        }
    }

    /// The same merchant, calling for `project`.
    pub fn for_project(&self, project: &str) -> Self {
        Self {
            base_url: self.base_url.clone(),
            project: project.to_owned(),
            signer: self.signer.clone(),
            http: self.http.clone(),
        }
    }

    pub async fn status(&self, session_id: &str) -> Answer {
        self.call(PATH_STATUS, json!({ "session_id": session_id }))
            .await
    }

    /// A refund of `amount` minor units of `currency`, or in full when `None`.
    pub async fn refund(&self, session_id: &str, amount: Option<(u64, &str)>) -> Answer {
        let body = match amount {
            Some((amount, currency)) => json!({
                "session_id": session_id,
                "amount_details": { "amount": amount, "currency": currency }
            }),
            None => json!({ "session_id": session_id }),
        };
        self.call(PATH_REFUND, body).await
    }

    /// POSTs `body` to `path`, signed over the bytes sent.
    pub async fn call(&self, path: &str, body: Value) -> Answer {
        let bytes = serde_json::to_vec(&body).unwrap();
        let signature = self.signer.sign(&bytes);
        self.send(path, bytes, Some(&signature), Some(&self.project))
            .await
    }

    /// Sends these bytes with these headers, signed or not.
    pub async fn send(
        &self,
        path: &str,
        bytes: Vec<u8>,
        signature: Option<&str>,
        project: Option<&str>,
    ) -> Answer {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base_url))
            .header("content-type", "application/json")
            .body(bytes);
        if let Some(signature) = signature {
            request = request.header(HEADER_SIGN, signature);
        }
        if let Some(project) = project {
            request = request.header(HEADER_PROJECT, project);
        }
        let response = request.send().await.expect("the sandbox answers");
        let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
        Answer {
            status,
            text: response.text().await.unwrap(),
        }
    }
}

/// One webhook as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub body: Vec<u8>,
    pub signature: Option<String>,
    pub at: Instant,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// The last refund of the session's first payment, as JSON.
    pub fn last_refund(&self) -> Value {
        let refunds = self.json()["session"]["acquiring_payments"][0]["refunds"].clone();
        refunds.as_array().unwrap().last().unwrap().clone()
    }
}

#[derive(Clone, Default)]
struct ReceiverState {
    received: Arc<Mutex<Vec<Received>>>,
    /// Answer 500 to this many deliveries before answering 200.
    refuse_first: Arc<AtomicUsize>,
}

/// A merchant's webhook endpoint on 127.0.0.1:0.
pub struct Receiver {
    pub url: String,
    state: ReceiverState,
}

impl Receiver {
    /// Answers 200 after refusing the first `refuse_first` deliveries with 500.
    pub async fn start(refuse_first: usize) -> Self {
        let state = ReceiverState::default();
        state.refuse_first.store(refuse_first, Ordering::SeqCst);
        let app = Router::new()
            .route("/webhooks/smart-glocal", post(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/webhooks/smart-glocal",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, state }
    }

    /// Every delivery so far, refused or accepted, in the order they arrived.
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Waits until at least `count` webhooks arrived and returns all of them so far; panics
    /// if they have not after `within`.
    pub async fn wait_for(&self, count: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} webhooks arrived",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn receive(
    State(state): State<ReceiverState>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let signature = headers
        .get(HEADER_SIGN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    state.received.lock().unwrap().push(Received {
        body: body.to_vec(),
        signature,
        at: Instant::now(),
    });
    let refused = state
        .refuse_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            left.checked_sub(1)
        })
        .is_ok();
    if refused {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

/// Every refund of a session's first payment, as JSON (none if it has no payment).
pub fn refunds(session: &Value) -> Vec<Value> {
    session["acquiring_payments"][0]["refunds"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}
