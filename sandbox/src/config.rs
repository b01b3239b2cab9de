//! What a sandbox is started with: keys, projects, webhook destination and timing, the seed.
//!
//! [`SandboxConfig::demo`] needs nothing from outside: the demo keys and the default seed are
//! compiled in, so the binary, the proxy's tests and the end-to-end tests all start the same
//! sandbox with one call.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shared::Backoff;
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

/// How a webhook that is not answered 200 is retried: the pause doubles from `first_interval`
/// up to `max_interval`, and there are as many retries as fit their pauses in `give_up_after`.
/// The real service retries up to 15 minutes apart and gives up after 30 minutes.
///
/// Only the pauses count toward `give_up_after`, not the time attempts take: the number of
/// attempts follows from the policy alone ([`RetryPolicy::max_attempts`]), whatever the load.
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

    /// The pause after attempt `attempt` (counted from 1) failed, `None` when it was the
    /// last. The pauses double up to `max_interval` while they fit in `give_up_after`; what
    /// is left of the window then is one last, shorter pause, so that the last attempt comes
    /// as the window closes ("gives up after 30 minutes"), not a whole pause before.
    pub fn pause_after(&self, attempt: u32) -> Option<Duration> {
        let growth = Backoff::doubling(self.first_interval, self.max_interval);
        let (retries, _) = retries_within(&growth, self.give_up_after);
        let retry = attempt.checked_sub(1)?;
        match retry.cmp(&retries) {
            std::cmp::Ordering::Less => Some(growth.delay(retry)),
            std::cmp::Ordering::Equal => self.last_pause(),
            std::cmp::Ordering::Greater => None,
        }
    }

    /// What is left of the window after the doubling pauses, if anything (and if they end).
    fn last_pause(&self) -> Option<Duration> {
        let growth = Backoff::doubling(self.first_interval, self.max_interval);
        let (retries, spent) = retries_within(&growth, self.give_up_after);
        let left = self.give_up_after.saturating_sub(spent);
        (retries < u32::MAX && !self.first_interval.is_zero() && !left.is_zero()).then_some(left)
    }

    /// How many times a webhook nobody accepts is sent: the first try and every retry.
    pub fn max_attempts(&self) -> u32 {
        let growth = Backoff::doubling(self.first_interval, self.max_interval);
        let (retries, _) = retries_within(&growth, self.give_up_after);
        let last = u32::from(self.last_pause().is_some());
        retries.saturating_add(1).saturating_add(last)
    }
}

/// How many of `growth`'s pauses, taken in order, fit in `window` together, and how long
/// they take. A zero pause allows no retry (it would resend without waiting, forever).
fn retries_within(growth: &Backoff, window: Duration) -> (u32, Duration) {
    let mut spent = Duration::ZERO;
    let mut retries = 0u32;
    loop {
        let pause = growth.delay(retries);
        if pause.is_zero() {
            return (retries, spent);
        }
        let Some(after) = spent.checked_add(pause).filter(|after| *after <= window) else {
            return (retries, spent);
        };
        if pause == growth.delay(retries.saturating_add(1)) {
            // The pauses stopped growing: the rest of the window is so many more of them.
            let more =
                u32::try_from((window - spent).as_nanos() / pause.as_nanos()).unwrap_or(u32::MAX);
            let taken = retries.saturating_add(more).saturating_sub(retries);
            let spent = spent.saturating_add(pause.saturating_mul(taken));
            return (retries.saturating_add(more), spent);
        }
        spent = after;
        retries += 1;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    /// Every pause of `policy`'s schedule, in milliseconds, until it gives up.
    fn pauses_ms(policy: &RetryPolicy) -> Vec<u128> {
        (1..)
            .map_while(|attempt| policy.pause_after(attempt))
            .map(|pause| pause.as_millis())
            .collect()
    }

    #[test]
    fn the_real_services_schedule_doubles_from_one_second_and_ends_at_thirty_minutes() {
        let policy = RetryPolicy::like_smart_glocal();
        let secs: Vec<u128> = pauses_ms(&policy).iter().map(|p| p / 1000).collect();
        // 1023 s of pauses; the next, 15 min (the cap), would end past 30 min, so the last
        // attempt comes after the 777 s left: at 30 minutes, and no pause over 15.
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 777]);
        assert_eq!(secs.iter().sum::<u128>(), 30 * 60);
        assert_eq!(policy.max_attempts(), 12);
    }

    #[test]
    fn pauses_stop_growing_at_the_cap_and_fill_the_window() {
        // `SandboxConfig::fast`: 20 ms doubling to 160 ms, 1 s of pauses.
        let policy = RetryPolicy::quick(ms(20), ms(1000));
        assert_eq!(
            pauses_ms(&policy),
            [20, 40, 80, 160, 160, 160, 160, 160, 60]
        );
        assert_eq!(policy.max_attempts(), 10);
        assert_eq!(pauses_ms(&policy).iter().sum::<u128>(), 1000);
    }

    #[test]
    fn a_pause_that_would_end_past_the_window_is_not_taken() {
        let policy = RetryPolicy {
            first_interval: ms(40),
            max_interval: ms(1000),
            give_up_after: ms(900),
            attempt_timeout: ms(1000),
        };
        // Attempts at 0, 40, 120, 280 and 600 ms; the next would be at 1240 ms, so the last
        // comes as the window closes, at 900 ms.
        assert_eq!(pauses_ms(&policy), [40, 80, 160, 320, 300]);
        assert_eq!(policy.max_attempts(), 6);
        // A window of exactly the pauses' sum holds the last of them, and nothing after.
        let exact = RetryPolicy {
            give_up_after: ms(600),
            ..policy
        };
        assert_eq!(pauses_ms(&exact), [40, 80, 160, 320]);
        assert_eq!(exact.max_attempts(), 5);
    }

    #[test]
    fn degenerate_policies_send_once_or_stop_counting_at_the_limit() {
        // A window shorter than the first pause: one retry, as it closes.
        let shorter_than_first = RetryPolicy::quick(ms(50), ms(49));
        assert_eq!(pauses_ms(&shorter_than_first), [49]);
        assert_eq!(shorter_than_first.max_attempts(), 2);
        let none = RetryPolicy::quick(ms(50), Duration::ZERO);
        assert_eq!(none.max_attempts(), 1, "no window, no retry");
        let zero = RetryPolicy::quick(Duration::ZERO, ms(1000));
        assert_eq!(zero.max_attempts(), 1, "a zero pause would resend forever");
        let endless = RetryPolicy {
            max_interval: ms(1),
            give_up_after: Duration::MAX,
            ..RetryPolicy::quick(ms(1), ms(0))
        };
        assert_eq!(endless.max_attempts(), u32::MAX);
    }
}
