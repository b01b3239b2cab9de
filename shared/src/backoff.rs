//! Exponential back-off as a pure schedule: the wait before each retry, nothing else.
//!
//! [`Backoff`] only computes durations; whoever retries does the sleeping (a browser timer in
//! the widget, tokio in the proxy and the sandbox). Used by the widget's event-stream
//! reconnects, the proxy's reconciliation polls and the sandbox's webhook retries.

use std::time::Duration;

/// Waits that start at `first`, grow `factor` times per retry and never exceed `cap`; with a
/// retry limit, [`Backoff::next_delay`] says when to give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    factor: u32,
    cap: Duration,
    max_retries: Option<u32>,
}

impl Backoff {
    /// `first`, then `factor` times longer each retry, up to `cap`; no retry limit.
    ///
    /// # Panics
    /// If `factor` is 0 (in a `const`, at compile time).
    pub const fn new(first: Duration, factor: u32, cap: Duration) -> Self {
        assert!(factor >= 1, "a back-off factor is at least 1");
        Self {
            first,
            factor,
            cap,
            max_retries: None,
        }
    }

    /// `first`, doubling each retry, up to `cap`.
    pub const fn doubling(first: Duration, cap: Duration) -> Self {
        Self::new(first, 2, cap)
    }

    /// The same waits, but [`Backoff::next_delay`] gives up after `retries` retries.
    pub const fn with_max_retries(mut self, retries: u32) -> Self {
        self.max_retries = Some(retries);
        self
    }

    pub const fn max_retries(&self) -> Option<u32> {
        self.max_retries
    }

    /// The wait before retry number `retry` (counted from 0): `first · factor^retry`, at most
    /// `cap`. Exact up to the cap at any `retry`, without overflow; ignores the retry limit.
    pub fn delay(&self, retry: u32) -> Duration {
        let mut wait = self.first.min(self.cap);
        // Each step multiplies by at least 2 until the cap, so this stops within ~100 steps
        // (Duration spans under 2^96 ns) however large `retry` is.
        for _ in 0..retry {
            if wait >= self.cap || wait.is_zero() || self.factor == 1 {
                break;
            }
            wait = wait.saturating_mul(self.factor).min(self.cap);
        }
        wait
    }

    /// [`Backoff::delay`] of retry number `retry`, or `None` once the retry limit is used up.
    pub fn next_delay(&self, retry: u32) -> Option<Duration> {
        match self.max_retries {
            Some(max) if retry >= max => None,
            _ => Some(self.delay(retry)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn the_first_wait_is_first() {
        assert_eq!(Backoff::doubling(secs(1), secs(30)).delay(0), secs(1));
        assert_eq!(Backoff::new(secs(2), 3, secs(60)).delay(0), secs(2));
    }

    #[test]
    fn waits_grow_by_the_factor_until_the_cap() {
        let doubling = Backoff::doubling(secs(1), secs(30));
        let waits: Vec<u64> = (0..8).map(|n| doubling.delay(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);

        let tripling = Backoff::new(Duration::from_millis(100), 3, secs(5));
        let waits: Vec<u128> = (0..6).map(|n| tripling.delay(n).as_millis()).collect();
        assert_eq!(waits, [100, 300, 900, 2700, 5000, 5000]);

        let constant = Backoff::new(secs(7), 1, secs(60));
        assert_eq!(constant.delay(1000), secs(7));
    }

    #[test]
    fn the_cap_bounds_even_the_first_wait() {
        assert_eq!(Backoff::doubling(secs(60), secs(10)).delay(0), secs(10));
        assert_eq!(Backoff::doubling(secs(60), secs(10)).delay(3), secs(10));
    }

    #[test]
    fn large_retry_numbers_neither_overflow_nor_fall_short_of_the_cap() {
        let tiny = Backoff::doubling(Duration::from_nanos(1), secs(300));
        // 2^32 ns is only ~4.3 s: a factor computed in u32 would saturate short of the cap.
        assert_eq!(tiny.delay(32), Duration::from_nanos(1 << 32));
        for n in [40, 64, 1000, u32::MAX] {
            assert_eq!(tiny.delay(n), secs(300), "retry {n}");
        }
        let unbounded = Backoff::new(secs(1), u32::MAX, Duration::MAX);
        assert_eq!(unbounded.delay(u32::MAX), Duration::MAX);
        let zero = Backoff::doubling(Duration::ZERO, secs(300));
        assert_eq!(zero.delay(u32::MAX), Duration::ZERO);
    }

    #[test]
    fn the_retry_limit_ends_the_schedule() {
        let limited = Backoff::doubling(secs(1), secs(30)).with_max_retries(3);
        assert_eq!(limited.max_retries(), Some(3));
        let waits: Vec<Option<u64>> = (0..5)
            .map(|n| limited.next_delay(n).map(|d| d.as_secs()))
            .collect();
        assert_eq!(waits, [Some(1), Some(2), Some(4), None, None]);
        assert_eq!(limited.delay(4), secs(16), "delay ignores the limit");

        let unlimited = Backoff::doubling(secs(1), secs(30));
        assert_eq!(unlimited.next_delay(u32::MAX), Some(secs(30)));
        assert_eq!(
            Backoff::doubling(secs(1), secs(30))
                .with_max_retries(0)
                .next_delay(0),
            None
        );
    }
}
