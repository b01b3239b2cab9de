//! The real stack on loopback, in-process: the sandbox, the proxy for `demo-project` and the
//! proxy for `demo-full-only` (partial refunds off), each on `127.0.0.1:0`, the proxies with a
//! SQLite ledger in a temporary folder and serving the release-built widget from `dist/`.
//!
//! The stack reads the sandbox's own record (`/_sandbox/sessions/{id}`) to check what Smart
//! Glocal would have received, independently of what the widget shows.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use sandbox::control::{ChargebackRequest, CreatePayment};
use sandbox::{FaultRequest, SandboxConfig, SandboxSession, DEMO_FULL_ONLY_PROJECT, DEMO_PROJECT};
use shared::api::AgentToken;
use shared::{Money, SessionId};
use signing::Secret;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::{workspace_root, BoxError};

/// The agent-token secret of the test proxies: the suite mints its own (also expired) tokens.
pub const TOKEN_SECRET: &str = "e2e-only-agent-token-secret-not-for-production";
/// The agent the suite acts as.
pub const AGENT: &str = "e2e-agent@example.com";

/// How the stack is tuned for a test run.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Between a refund being taken and its webhook: long enough to see "in progress", short
    /// enough to keep the suite fast.
    pub webhook_delay: Duration,
    /// The proxy's timeout for each Smart Glocal call; the sandbox's `timeout` fault outlasts it.
    pub upstream_timeout: Duration,
    /// How often the proxy reconciles refunds whose outcome it does not know.
    pub reconcile_interval: Duration,
    /// Polls of an `unknown` attempt before the proxy declares it failed.
    pub reconcile_max_polls: u32,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            webhook_delay: Duration::from_millis(300),
            upstream_timeout: Duration::from_millis(1500),
            reconcile_interval: Duration::from_millis(500),
            reconcile_max_polls: 3,
        }
    }
}

/// Refunds in this currency above 50.00 wait for a second agent's approval (see
/// `proxy_settings`).
pub const APPROVAL_CURRENCY: &str = "gbp";

/// A running stack. Dropping it stops the servers and deletes the ledgers.
pub struct Stack {
    pub sandbox_url: String,
    /// The proxy of `demo-project`; it also serves the widget and the demo page.
    pub proxy_url: String,
    /// The proxy of `demo-full-only`.
    pub full_only_url: String,
    http: reqwest::Client,
    stop: Vec<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
    data_dir: Option<tempfile::TempDir>,
}

/// `dist/`, where `cargo xtask widget` puts the release-built widget and the demo page.
pub fn dist_dir() -> PathBuf {
    workspace_root().join("dist")
}

/// Fails with what to run when the widget has not been built: never skip silently.
pub fn require_dist() -> Result<PathBuf, BoxError> {
    require_built(dist_dir())
}

fn require_built(dist: PathBuf) -> Result<PathBuf, BoxError> {
    if !dist.join("index.html").is_file() {
        return Err(format!(
            "{} has no built widget (no index.html): run `cargo xtask widget` first \
             (the README's `cargo xtask test` does it for you)",
            dist.display()
        )
        .into());
    }
    Ok(dist)
}

impl Stack {
    pub async fn start(options: StackOptions) -> Result<Self, BoxError> {
        let built = require_dist()?;
        let data_dir = tempfile::Builder::new().prefix("e2e-stack-").tempdir()?;
        // Serve a snapshot: a `cargo xtask widget` running meanwhile (a colleague, the bench)
        // rewrites dist/ file by file, and a page half old, half new fails its integrity check.
        let dist = data_dir.path().join("dist");
        copy_dir(&built, &dist)?;

        // Bind everything first: the sandbox needs the proxies' webhook URLs, the proxies need
        // the sandbox's URL and each other's origin (the demo page on one calls the other).
        let sandbox_listener = TcpListener::bind("127.0.0.1:0").await?;
        let proxy_listener = TcpListener::bind("127.0.0.1:0").await?;
        let full_only_listener = TcpListener::bind("127.0.0.1:0").await?;
        let sandbox_url = url(sandbox_listener.local_addr()?);
        let proxy_url = url(proxy_listener.local_addr()?);
        let full_only_url = url(full_only_listener.local_addr()?);

        let mut stack = Stack {
            sandbox_url: sandbox_url.clone(),
            proxy_url: proxy_url.clone(),
            full_only_url: full_only_url.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            stop: Vec::new(),
            tasks: Vec::new(),
            data_dir: None,
        };

        let mut sandbox_config = SandboxConfig::demo()
            .fast()
            .with_webhook_delay(options.webhook_delay);
        for (project, proxy) in [
            (DEMO_PROJECT, &proxy_url),
            (DEMO_FULL_ONLY_PROJECT, &full_only_url),
        ] {
            let entry = sandbox_config
                .projects
                .get_mut(project)
                .ok_or_else(|| format!("the sandbox's demo seed has no project {project}"))?;
            entry.webhook_url = Some(format!("{proxy}/webhooks/smart-glocal"));
        }
        let (stop, stopped) = oneshot::channel::<()>();
        stack.stop.push(stop);
        stack.tasks.push(tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(e) = sandbox::run_until(sandbox_listener, sandbox_config, shutdown).await {
                eprintln!("e2e: the sandbox stopped: {e}");
            }
        }));

        let origins = vec![proxy_url.clone(), full_only_url.clone()];
        for (listener, project, partial, db) in [
            (proxy_listener, DEMO_PROJECT, true, "demo-project.sqlite"),
            (
                full_only_listener,
                DEMO_FULL_ONLY_PROJECT,
                false,
                "demo-full-only.sqlite",
            ),
        ] {
            let mut settings =
                proxy_settings(&options, &sandbox_url, project, partial, &origins, &dist);
            settings.database = Some(data_dir.path().join(db));
            let config = proxy::config::Config::from_settings(settings)
                .map_err(|e| format!("the {project} proxy's configuration is refused: {e}"))?;
            let (stop, stopped) = oneshot::channel::<()>();
            stack.stop.push(stop);
            stack.tasks.push(tokio::spawn(async move {
                let shutdown = async {
                    let _ = stopped.await;
                };
                if let Err(e) = proxy::run_until(listener, config, shutdown).await {
                    eprintln!("e2e: the {project} proxy stopped: {e}");
                }
            }));
        }
        stack.data_dir = Some(data_dir);

        for base in [&stack.sandbox_url, &stack.proxy_url, &stack.full_only_url] {
            stack.wait_ready(base).await?;
        }
        Ok(stack)
    }

    /// Waits until a server answers, so a test never races the start-up (the proxy runs its
    /// migrations before it serves).
    async fn wait_ready(&self, base: &str) -> Result<(), BoxError> {
        let probe = if base == self.sandbox_url {
            format!("{base}/_sandbox/faults")
        } else {
            format!("{base}/readyz")
        };
        testkit::wait_ready(&probe, testkit::Ready::Success, Duration::from_secs(15)).await?;
        Ok(())
    }

    /// The demo page served by the `demo-project` proxy, pointed at this stack.
    pub fn demo_page_url(&self, extra_query: &str) -> String {
        let mut url = format!(
            "{}/?sandbox={}&proxy={}&proxy_full_only={}",
            self.proxy_url,
            encode(&self.sandbox_url),
            encode(&self.proxy_url),
            encode(&self.full_only_url)
        );
        if !extra_query.is_empty() {
            url.push('&');
            url.push_str(extra_query.trim_start_matches('&'));
        }
        url
    }

    /// A page the `demo-project` proxy serves from `dist/` (e.g. `/examples/react/`), with
    /// `query` appended.
    pub fn page_url(&self, path: &str, query: &str) -> String {
        format!("{}{path}?{}", self.proxy_url, query.trim_start_matches('?'))
    }

    /// The `demo-project` proxy's `proxy_event_streams_open`, read from its `/metrics`.
    pub async fn event_streams_open(&self) -> Result<u64, BoxError> {
        self.metric(|name| name == "proxy_event_streams_open")
            .await?
            .ok_or_else(|| "/metrics has no proxy_event_streams_open".into())
    }

    /// How many `method` requests to the route pattern `route` the `demo-project` proxy has
    /// answered, whatever their status.
    pub async fn requests_served(&self, method: &str, route: &str) -> Result<u64, BoxError> {
        let labels = format!("route=\"{route}\",method=\"{method}\"");
        let counted =
            |name: &str| name.starts_with("proxy_http_requests_total{") && name.contains(&labels);
        Ok(self.metric(counted).await?.unwrap_or(0))
    }

    /// The sum of the `/metrics` samples whose name (with labels) satisfies `wanted`, or
    /// `None` if there is none.
    async fn metric(&self, wanted: impl Fn(&str) -> bool) -> Result<Option<u64>, BoxError> {
        let text = self
            .http
            .get(format!("{}/metrics", self.proxy_url))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        let samples: Vec<u64> = text
            .lines()
            .filter_map(|line| line.rsplit_once(' '))
            .filter(|(name, _)| wanted(name))
            .filter_map(|(_, value)| value.trim().parse::<f64>().ok())
            .map(|value| value as u64)
            .collect();
        Ok((!samples.is_empty()).then(|| samples.iter().sum()))
    }

    /// The proxy that serves payments of `project`.
    pub fn proxy_for(&self, project: &str) -> &str {
        if project == DEMO_FULL_ONLY_PROJECT {
            &self.full_only_url
        } else {
            &self.proxy_url
        }
    }

    /// An agent token valid for `ttl`, as the merchant's backend would mint it.
    pub fn token(&self, ttl: Duration) -> String {
        proxy::auth::TokenKeys::new(&Secret::new(TOKEN_SECRET))
            .mint(AGENT, ttl.as_secs(), None)
            .token
    }

    /// A token that expired a minute ago (past the proxy's clock-skew leeway).
    pub fn expired_token(&self) -> String {
        let claims = proxy::auth::Claims {
            sub: AGENT.to_owned(),
            exp: proxy::auth::now_secs() - 60,
            iat: Some(proxy::auth::now_secs() - 120),
            ..proxy::auth::Claims::default()
        };
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(TOKEN_SECRET.as_bytes()),
        )
        .expect("HS256 over plain claims encodes")
    }

    /// A token from the demo proxy's own `POST /demo/token`, as the demo page gets one.
    pub async fn demo_token(&self) -> Result<AgentToken, BoxError> {
        let request = shared::api::AgentTokenRequest {
            agent: AGENT.to_owned(),
            session_id: None,
        };
        let response = self
            .http
            .post(format!("{}/demo/token", self.proxy_url))
            .json(&request)
            .send()
            .await?;
        Ok(response.error_for_status()?.json().await?)
    }

    // The sandbox's own record, and how tests steer it.

    /// What the sandbox holds for `session`, including how many refunds it received.
    pub async fn session(&self, session: &str) -> Result<SandboxSession, BoxError> {
        let response = self
            .http
            .get(format!("{}/_sandbox/sessions/{session}", self.sandbox_url))
            .send()
            .await?;
        Ok(checked(response).await?.json().await?)
    }

    /// How many refunds the sandbox took for `session` since it started.
    pub async fn refunds_received(&self, session: &str) -> Result<usize, BoxError> {
        Ok(self.session(session).await?.refunds_received)
    }

    /// The refunds and chargebacks the sandbox holds for `session`, as `session/status` shows.
    pub async fn sandbox_refunds(
        &self,
        session: &str,
    ) -> Result<Vec<shared::smart_glocal::Refund>, BoxError> {
        let record = self.session(session).await?;
        Ok(record
            .session
            .acquiring_payments
            .into_iter()
            .flat_map(|p| p.refunds)
            .collect())
    }

    /// A fresh succeeded card payment of `amount` (e.g. `"100.00"`) in `currency` in `project`,
    /// so a test that refunds does not depend on the order tests run in.
    pub async fn create_payment(
        &self,
        project: &str,
        amount: &str,
        currency: &str,
    ) -> Result<SessionId, BoxError> {
        let currency = shared::Currency::parse(currency).map_err(|e| format!("{e:?}"))?;
        let money =
            Money::parse(amount, currency, shared::Locale::En).map_err(|e| format!("{e:?}"))?;
        let request = CreatePayment::new(money).project(project);
        let response = self
            .http
            .post(format!("{}/_sandbox/sessions", self.sandbox_url))
            .json(&request)
            .send()
            .await?;
        let created: SandboxSession = checked(response).await?.json().await?;
        Ok(created.session.id)
    }

    /// Makes the next Smart Glocal calls fail as `fault` says.
    pub async fn inject(&self, fault: impl Into<FaultRequest>) -> Result<(), BoxError> {
        let response = self
            .http
            .post(format!("{}/_sandbox/faults", self.sandbox_url))
            .json(&fault.into())
            .send()
            .await?;
        checked(response).await?;
        Ok(())
    }

    pub async fn clear_faults(&self) -> Result<(), BoxError> {
        checked(
            self.http
                .delete(format!("{}/_sandbox/faults", self.sandbox_url))
                .send()
                .await?,
        )
        .await?;
        Ok(())
    }

    /// A chargeback of `amount` minor units (all that remains if `None`), with its webhook.
    pub async fn chargeback(&self, session: &str, amount: Option<u64>) -> Result<(), BoxError> {
        let response = self
            .http
            .post(format!(
                "{}/_sandbox/sessions/{session}/chargeback",
                self.sandbox_url
            ))
            .json(&ChargebackRequest { amount })
            .send()
            .await?;
        checked(response).await?;
        Ok(())
    }

    /// For the binary-wide stack, which lives in a `static` and is never dropped: delete the
    /// ledgers when the process exits.
    pub(crate) fn stop_at_exit(&self) {
        if let Some(dir) = &self.data_dir {
            let path = dir.path().to_path_buf();
            crate::runner::at_exit(move || {
                let _ = std::fs::remove_dir_all(path);
            });
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for stop in self.stop.drain(..) {
            let _ = stop.send(());
        }
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn proxy_settings(
    options: &StackOptions,
    sandbox_url: &str,
    project: &str,
    partial_refunds: bool,
    origins: &[String],
    dist: &std::path::Path,
) -> proxy::config::Settings {
    let keys = workspace_root().join("demo/keys");
    proxy::config::Settings {
        upstream_url: Some(sandbox_url.to_owned()),
        project: Some(project.to_owned()),
        signing_scheme: Some(signing::Scheme::RsaSha256),
        signing_key_file: Some(keys.join("DEMO-ONLY-merchant-private.pem")),
        webhook_scheme: Some(signing::Scheme::RsaSha256),
        webhook_key_file: Some(keys.join("DEMO-ONLY-sandbox-public.pem")),
        agent_token_secret: Some(Secret::new(TOKEN_SECRET)),
        allowed_origins: Some(origins.to_vec()),
        // The demo page reads the sandbox and talks to both proxies (CSP `connect-src`).
        connect_src: Some(
            std::iter::once(sandbox_url.to_owned())
                .chain(origins.iter().cloned())
                .collect(),
        ),
        upstream_timeout_ms: Some(options.upstream_timeout.as_millis() as u64),
        partial_refunds: Some(partial_refunds),
        demo_mode: Some(true),
        serve_dir: Some(dist.to_path_buf()),
        reconcile_interval_ms: Some(options.reconcile_interval.as_millis() as u64),
        reconcile_max_polls: Some(options.reconcile_max_polls),
        // Fail an attempt Smart Glocal never applied after a second, not the default 2 min.
        reconcile_fail_after_secs: Some(1),
        // One agent drives the whole suite, faster than a person: no per-agent rate limit.
        rate_limit_per_minute: Some(0),
        // Four eyes on pounds only: no other scenario pays in GBP, so theirs are sent at once.
        approval_above: Some(shared::api::Limit::PerCurrency(
            [(APPROVAL_CURRENCY.to_owned(), 5_000)].into(),
        )),
        ..Default::default()
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

async fn checked(response: reqwest::Response) -> Result<reqwest::Response, BoxError> {
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    Err(format!("the sandbox answered {status}: {body}").into())
}

fn url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

/// Percent-encodes a URL for a query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_widget_build_fails_with_the_command_to_run() {
        let empty = tempfile::tempdir().unwrap();
        let error = require_built(empty.path().join("dist"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("cargo xtask widget"), "{error}");
    }

    #[test]
    fn the_demo_page_url_carries_every_server_encoded() {
        assert_eq!(
            encode("http://127.0.0.1:8080"),
            "http%3A%2F%2F127.0.0.1%3A8080"
        );
    }
}
