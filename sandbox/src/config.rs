//! What a sandbox is started with: keys, projects, webhook destination and timing, the seed.
//!
//! [`SandboxConfig::demo`] needs nothing from outside: the demo keys and the default seed are
//! compiled in, so the binary, the proxy's tests and the end-to-end tests all start the same
//! sandbox with one call.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use signing::{Scheme, Secret, Signer, Verifier};

use crate::seed::Seed;

/// The merchant's demo public key: verifies the requests the demo proxy signs.
pub const DEMO_MERCHANT_PUBLIC_KEY: &str =
    include_str!("../../demo/keys/DEMO-ONLY-merchant-public.pem");
/// The sandbox's demo private key: signs webhooks the demo proxy verifies.
pub const DEMO_SANDBOX_PRIVATE_KEY: &str =
    include_str!("../../demo/keys/DEMO-ONLY-sandbox-private.pem");
/// HMAC scheme, demo only: the secret the merchant signs requests with.
pub const DEMO_HMAC_REQUEST_SECRET: &str = "DEMO-ONLY-merchant-request-hmac-secret";
/// HMAC scheme, demo only: the secret the sandbox signs webhooks with.
pub const DEMO_HMAC_WEBHOOK_SECRET: &str = "DEMO-ONLY-sandbox-webhook-hmac-secret";

/// The project that has partial refunds switched on.
pub const DEMO_PROJECT: &str = "demo-project";
/// The project that accepts only full refunds.
pub const DEMO_FULL_ONLY_PROJECT: &str = "demo-full-only";

/// A merchant project, named by `X-PARTNER-PROJECT`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    /// Smart Glocal switches partial refunds on per merchant; off means full refunds only.
    pub partial_refunds: bool,
    /// Where this project's webhooks go, if not to [`SandboxConfig::webhook_url`]: the real
    /// service keeps one webhook address per project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
}

impl Project {
    pub fn partial_refunds(allowed: bool) -> Self {
        Self {
            partial_refunds: allowed,
            webhook_url: None,
        }
    }
}

/// How a webhook that is not answered 200 is retried: intervals double from `first_interval`
/// up to `max_interval`, and delivery stops once `give_up_after` has passed since the first try.
/// The real service retries up to 15 minutes apart and gives up after 30 minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub first_interval: Duration,
    pub max_interval: Duration,
    pub give_up_after: Duration,
    /// How long one attempt may take before it counts as unanswered.
    pub attempt_timeout: Duration,
}

impl RetryPolicy {
    /// The real service's schedule, starting at one second.
    pub fn like_smart_glocal() -> Self {
        Self {
            first_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(15 * 60),
            give_up_after: Duration::from_secs(30 * 60),
            attempt_timeout: Duration::from_secs(10),
        }
    }

    /// A schedule for tests: the same shape, in milliseconds.
    pub fn quick(first_interval: Duration, give_up_after: Duration) -> Self {
        Self {
            first_interval,
            max_interval: first_interval * 8,
            give_up_after,
            attempt_timeout: Duration::from_secs(2),
        }
    }

    /// The pause after attempt number `attempt` (1-based) failed.
    pub fn interval_after(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
        self.first_interval
            .saturating_mul(factor)
            .min(self.max_interval)
    }
}

/// Everything a sandbox is started with.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Projects by id. A request naming any other project is refused with `unknown_project`.
    pub projects: BTreeMap<String, Project>,
    /// Checks `X-PARTNER-SIGN` on requests: the merchant's public key, or the shared secret.
    pub request_verifier: Verifier,
    /// Signs webhooks: the sandbox's private key, or the shared secret.
    pub webhook_signer: Signer,
    /// Where webhooks go; `None` sends none (the refund still completes).
    pub webhook_url: Option<String>,
    /// Time between a refund being taken and its final status (and webhook).
    pub webhook_delay: Duration,
    pub webhook_retry: RetryPolicy,
    /// How long the `timeout` fault keeps a request unanswered.
    pub timeout_fault_hang: Duration,
    /// The sessions the sandbox holds on start.
    pub seed: Seed,
}

/// A configuration that could not be built. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the seed file {path} is not a valid seed: {source}")]
    Seed {
        path: String,
        source: serde_json::Error,
    },
    #[error("the {what} key is unusable: {source}")]
    Key {
        what: &'static str,
        source: signing::KeyError,
    },
}

impl SandboxConfig {
    /// Demo keys, RSA-SHA256, the default seed, webhooks 1.5 s after a refund, no webhook URL.
    pub fn demo() -> Self {
        let verifier = Verifier::rsa_from_pem(DEMO_MERCHANT_PUBLIC_KEY)
            .expect("the compiled-in demo merchant public key parses");
        let signer = Signer::rsa_from_pem(DEMO_SANDBOX_PRIVATE_KEY)
            .expect("the compiled-in demo sandbox private key parses");
        Self::with_keys(verifier, signer)
    }

    /// Like [`SandboxConfig::demo`], but HMAC-SHA256 with the given shared secrets.
    pub fn demo_hmac(request_secret: impl Into<String>, webhook_secret: impl Into<String>) -> Self {
        let verifier = Verifier::hmac(Secret::new(request_secret))
            .expect("demo_hmac needs a non-empty request secret");
        let signer = Signer::hmac(Secret::new(webhook_secret))
            .expect("demo_hmac needs a non-empty webhook secret");
        Self::with_keys(verifier, signer)
    }

    /// The demo configuration in `scheme`, with the demo keys or demo HMAC secrets.
    pub fn demo_scheme(scheme: Scheme) -> Self {
        match scheme {
            Scheme::RsaSha256 => Self::demo(),
            Scheme::HmacSha256 => {
                Self::demo_hmac(DEMO_HMAC_REQUEST_SECRET, DEMO_HMAC_WEBHOOK_SECRET)
            }
        }
    }

    /// The demo timing and seed around the given keys.
    pub fn with_keys(request_verifier: Verifier, webhook_signer: Signer) -> Self {
        let seed = Seed::default_seed();
        Self {
            projects: seed.projects.clone(),
            request_verifier,
            webhook_signer,
            webhook_url: None,
            webhook_delay: Duration::from_millis(1500),
            webhook_retry: RetryPolicy::like_smart_glocal(),
            timeout_fault_hang: Duration::from_secs(300),
            seed,
        }
    }

    /// Replaces the seed; the seed's projects are added to (and override) the configured ones.
    pub fn with_seed(mut self, seed: Seed) -> Self {
        for (id, project) in &seed.projects {
            self.projects.insert(id.clone(), project.clone());
        }
        self.seed = seed;
        self
    }

    /// Reads a seed file (the format of `sandbox/seed.json`).
    pub fn with_seed_file(self, path: &Path) -> Result<Self, ConfigError> {
        let seed = Seed::from_file(path)?;
        Ok(self.with_seed(seed))
    }

    pub fn with_webhook_url(mut self, url: impl Into<String>) -> Self {
        self.webhook_url = Some(url.into());
        self
    }

    pub fn with_webhook_delay(mut self, delay: Duration) -> Self {
        self.webhook_delay = delay;
        self
    }

    pub fn with_webhook_retry(mut self, retry: RetryPolicy) -> Self {
        self.webhook_retry = retry;
        self
    }

    /// Settings for tests: webhooks after 50 ms, retries every few tens of ms for 1 s, and a
    /// `timeout` fault that hangs for 30 s (well past any test client's timeout).
    pub fn fast(mut self) -> Self {
        self.webhook_delay = Duration::from_millis(50);
        self.webhook_retry =
            RetryPolicy::quick(Duration::from_millis(20), Duration::from_millis(1000));
        self.timeout_fault_hang = Duration::from_secs(30);
        self
    }

    pub fn scheme(&self) -> Scheme {
        self.request_verifier.scheme()
    }
}
