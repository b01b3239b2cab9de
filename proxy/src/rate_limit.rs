//! Per-agent request rate on `/api/*`: a token bucket per agent (the token's `sub`), refilled
//! at `rate_limit_per_minute` and holding a quarter of a minute's worth, so a widget's start
//! (a few calls at once) passes and a script hammering the API gets `429` with
//! `Retry-After`. Per process: each replica limits what it serves.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Agents remembered at most; beyond it, full buckets (idle agents) are forgotten.
const AGENTS_KEPT: usize = 10_000;

#[derive(Debug)]
pub struct RateLimiter {
    /// Tokens per second; `None` when the limit is off.
    rate: Option<f64>,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// `per_minute` requests a minute per agent; 0 turns the limit off.
    pub fn new(per_minute: u32) -> Self {
        let per_minute = f64::from(per_minute);
        Self {
            rate: (per_minute > 0.0).then_some(per_minute / 60.0),
            burst: (per_minute / 4.0).max(5.0),
            buckets: Mutex::default(),
        }
    }

    /// Takes one request from `agent`'s bucket, or says how long until one is there.
    pub fn check(&self, agent: &str) -> Result<(), Duration> {
        let Some(rate) = self.rate else {
            return Ok(());
        };
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= AGENTS_KEPT && !buckets.contains_key(agent) {
            let burst = self.burst;
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let bucket = buckets.entry(agent.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refilled = bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * rate;
        bucket.tokens = refilled.min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds_per_agent() {
        let limiter = RateLimiter::new(60);
        for _ in 0..15 {
            assert!(limiter.check("alice").is_ok());
        }
        let wait = limiter.check("alice").unwrap_err();
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        assert!(
            limiter.check("bob").is_ok(),
            "another agent has its own bucket"
        );
        assert!(RateLimiter::new(0).check("alice").is_ok());
    }
}
