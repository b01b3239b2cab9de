//! Medians of repeated timings for CPU-bound work (the bench binary's signing figures; the
//! criterion benches give the full distribution).

use std::hint::black_box;
use std::time::{Duration, Instant};

/// The median time of one call of `f`: calls are batched so one batch lasts about
/// `batch` (timer resolution stops mattering), `samples` batches are timed, the median kept.
pub fn median_per_call<T>(samples: usize, batch: Duration, mut f: impl FnMut() -> T) -> Duration {
    // Warm up, and find how many calls fill a batch.
    let started = Instant::now();
    let mut calls: u32 = 0;
    while started.elapsed() < batch {
        black_box(f());
        calls += 1;
    }
    let per_batch = calls.max(1);
    let mut per_call: Vec<Duration> = (0..samples.max(1))
        .map(|_| {
            let started = Instant::now();
            for _ in 0..per_batch {
                black_box(f());
            }
            started.elapsed() / per_batch
        })
        .collect();
    median(&mut per_call)
}

/// The median of `values` (the lower middle for an even count); zero when empty.
pub fn median(values: &mut [Duration]) -> Duration {
    percentile(values, 50.0)
}

/// The nearest-rank percentile `p` (0–100) of `values`; zero when empty.
pub fn percentile(values: &mut [Duration], p: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    values.sort_unstable();
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|&v| Duration::from_millis(v)).collect()
    }

    #[test]
    fn the_median_of_an_odd_count_is_the_middle_value() {
        assert_eq!(median(&mut ms(&[9, 1, 5])), Duration::from_millis(5));
    }

    #[test]
    fn the_99th_percentile_of_a_hundred_values_is_the_99th() {
        let mut values = ms(&(1..=100).rev().collect::<Vec<_>>());
        assert_eq!(percentile(&mut values, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&mut values, 100.0), Duration::from_millis(100));
    }

    #[test]
    fn no_values_give_zero() {
        assert_eq!(median(&mut []), Duration::ZERO);
    }
}
