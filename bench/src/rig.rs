//! The stack under test for one signing scheme: the sandbox in this process, the proxy in a
//! child process (as `proxy serve` runs it) with its SQLite ledger in a temporary folder on
//! the same disk as the repository, and the keys both sides use.

use std::path::PathBuf;
use std::time::Duration;

use sandbox::control::CreatePayment;
use sandbox::{
    Sandbox, SandboxConfig, DEMO_HMAC_REQUEST_SECRET, DEMO_HMAC_WEBHOOK_SECRET, DEMO_PROJECT,
};
use shared::{Currency, Money, SessionId};
use signing::{Scheme, Secret, Signer};

use crate::servers::Server;
use crate::workspace_root;

/// The agent-token secret of the bench's proxies.
pub const TOKEN_SECRET: &str = "bench-only-agent-token-secret-not-for-production";
pub const AGENT: &str = "bench-agent@example.com";

/// What else the proxy is started with.
#[derive(Debug, Default, Clone)]
pub struct RigOptions {
    /// Origins allowed to call the API (a browser page's origin).
    pub allowed_origins: Vec<String>,
    /// Serve the built widget from here.
    pub serve_dir: Option<PathBuf>,
    /// The ledger: a `postgres://` URL; absent, a SQLite file in the rig's folder.
    pub database: Option<String>,
}

pub struct Rig {
    pub scheme: Scheme,
    pub sandbox: Sandbox,
    pub proxy: Server,
    /// Signs requests as the merchant (what the proxy does), for direct calls to the sandbox.
    pub merchant_signer: Signer,
    /// Signs webhooks as Smart Glocal does.
    pub webhook_signer: Signer,
    pub token: String,
    pub http: reqwest::Client,
    /// What the proxy was started with, for [`Rig::another_proxy`].
    env: Vec<(&'static str, String)>,
    data: tempfile::TempDir,
}

impl Rig {
    pub async fn start(scheme: Scheme, options: RigOptions) -> Result<Rig, String> {
        // Webhooks off: no background traffic during a timing; the bench sends its own.
        let sandbox = Sandbox::start(SandboxConfig::demo_scheme(scheme)).await;
        // Under target/, not /tmp: the ledger's fsyncs hit the disk the repository is on.
        let parent = workspace_root().join("target");
        std::fs::create_dir_all(&parent).map_err(|e| e.to_string())?;
        let data = tempfile::Builder::new()
            .prefix("bench-")
            .tempdir_in(&parent)
            .map_err(|e| e.to_string())?;
        let keys = workspace_root().join("demo/keys");
        let path = |p: PathBuf| p.display().to_string();
        let mut env: Vec<(&'static str, String)> = vec![
            ("PROXY_UPSTREAM_URL", sandbox.base_url()),
            ("PROXY_PROJECT", DEMO_PROJECT.into()),
            ("PROXY_SIGNING_SCHEME", scheme.to_string()),
            ("PROXY_WEBHOOK_SCHEME", scheme.to_string()),
            ("PROXY_AGENT_TOKEN_SECRET", TOKEN_SECRET.into()),
            (
                "PROXY_DATABASE",
                options
                    .database
                    .clone()
                    .unwrap_or_else(|| path(data.path().join("proxy.sqlite"))),
            ),
            ("PROXY_PARTIAL_REFUNDS", "true".into()),
            ("PROXY_UPSTREAM_TIMEOUT_MS", "5000".into()),
            // One agent's token drives every measured request: no per-agent rate limit.
            ("PROXY_RATE_LIMIT_PER_MINUTE", "0".into()),
            // The fan-out's 10,000 streams are that one agent's too.
            ("PROXY_MAX_STREAMS_PER_AGENT", "0".into()),
        ];
        match scheme {
            Scheme::RsaSha256 => {
                env.push((
                    "PROXY_SIGNING_KEY_FILE",
                    path(keys.join("DEMO-ONLY-merchant-private.pem")),
                ));
                env.push((
                    "PROXY_WEBHOOK_KEY_FILE",
                    path(keys.join("DEMO-ONLY-sandbox-public.pem")),
                ));
            }
            Scheme::HmacSha256 => {
                env.push(("PROXY_SIGNING_KEY", DEMO_HMAC_REQUEST_SECRET.into()));
                env.push(("PROXY_WEBHOOK_KEY", DEMO_HMAC_WEBHOOK_SECRET.into()));
            }
        }
        if !options.allowed_origins.is_empty() {
            env.push(("PROXY_ALLOWED_ORIGINS", options.allowed_origins.join(",")));
        }
        if let Some(dir) = &options.serve_dir {
            env.push(("PROXY_SERVE_DIR", path(dir.clone())));
            env.push(("PROXY_DEMO_MODE", "true".into()));
        }
        let proxy = Server::proxy(&env, &data.path().join("proxy.log")).await?;
        let merchant_signer = match scheme {
            Scheme::RsaSha256 => {
                let pem = std::fs::read_to_string(keys.join("DEMO-ONLY-merchant-private.pem"))
                    .map_err(|e| e.to_string())?;
                Signer::rsa_from_pem(&pem).map_err(|e| e.to_string())?
            }
            Scheme::HmacSha256 => {
                Signer::hmac(Secret::new(DEMO_HMAC_REQUEST_SECRET)).map_err(|e| e.to_string())?
            }
        };
        let webhook_signer = match scheme {
            Scheme::RsaSha256 => crate::fixtures::rsa_signer(),
            Scheme::HmacSha256 => crate::fixtures::hmac_signer(),
        };
        let token = proxy::auth::TokenKeys::new(&Secret::new(TOKEN_SECRET))
            .mint(AGENT, 3600, None)
            .token;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(256)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Rig {
            scheme,
            sandbox,
            proxy,
            merchant_signer,
            webhook_signer,
            token,
            http,
            env,
            data,
        })
    }

    /// One more proxy exactly like the rig's (a replica, when the ledger is PostgreSQL).
    pub async fn another_proxy(&self, name: &str) -> Result<Server, String> {
        Server::proxy(&self.env, &self.data.path().join(format!("{name}.log"))).await
    }

    /// `count` fresh succeeded payments of 100.00 EUR in `demo-project`.
    pub async fn payments(&self, count: usize) -> Vec<SessionId> {
        let eur = Currency::parse("EUR").expect("EUR is an ISO currency");
        let mut ids = Vec::with_capacity(count);
        for _ in 0..count {
            let created = self
                .sandbox
                .create_payment(CreatePayment::new(Money::new(10_000, eur)))
                .await;
            ids.push(created.session.id);
        }
        ids
    }
}
