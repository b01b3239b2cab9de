//! The load generator: a small bounded in-process client. Every run is bounded in count and
//! in time, and every request has its own timeout; callers only ever target 127.0.0.1.
//!
//! - [`fixed_rate`]: open loop, request `i` starts at `i / rate` whatever the others are doing,
//!   so a slow server cannot slow the offered load down (no coordinated omission).
//! - [`closed_loop`]: `concurrency` workers send back to back, for requests per second.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one request may take before it counts as failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Latencies of the requests that succeeded, and how many did not.
#[derive(Debug, Default)]
pub struct Latencies {
    pub ok: Vec<Duration>,
    pub failed: usize,
    /// The first failure, to say what went wrong.
    pub first_error: Option<String>,
}

impl Latencies {
    /// Adds `other`'s requests to these: one pass measured in slices.
    pub fn absorb(&mut self, other: Latencies) {
        self.ok.extend(other.ok);
        self.failed += other.failed;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// The order in which `paths` passes run their slices in round `round`: each once, the first
/// one rotating (over `paths` rounds, each path goes first once).
///
/// Passes compared with each other run interleaved, a slice of each per round, rather than one
/// whole pass after another: the machine's slow swings (other work on the host, a busy
/// neighbour), seconds long, then fall on every path alike instead of on whichever pass ran
/// while they lasted.
pub fn round_order(round: usize, paths: usize) -> impl Iterator<Item = usize> {
    (0..paths).map(move |k| (round + k) % paths)
}

/// Starts `total` calls of `op(i)` at `rate` per second; gives up on what is still running at
/// `deadline` after the start.
pub async fn fixed_rate<F, Fut>(total: usize, rate: f64, deadline: Duration, op: F) -> Latencies
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let started = tokio::time::Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        tokio::time::sleep_until(started + interval * i as u32).await;
        let call = op(i);
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            match tokio::time::timeout(REQUEST_TIMEOUT, call).await {
                Ok(Ok(())) => Ok(sent.elapsed()),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(format!("no answer within {REQUEST_TIMEOUT:?}")),
            }
        }));
    }
    let mut result = Latencies::default();
    let end = started + deadline;
    for task in tasks {
        let outcome = match tokio::time::timeout_at(end, task).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(e)) => Err(format!("the request task failed: {e}")),
            Err(_) => Err("past the run's deadline".into()),
        };
        match outcome {
            Ok(latency) => result.ok.push(latency),
            Err(e) => {
                result.failed += 1;
                result.first_error.get_or_insert(e);
            }
        }
    }
    result
}

/// Requests per second of `op`, `concurrency` at a time, `total` at most, `limit` at most.
#[derive(Debug)]
pub struct Throughput {
    pub completed: usize,
    pub failed: usize,
    pub elapsed: Duration,
    pub first_error: Option<String>,
}

impl Throughput {
    pub fn per_second(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

pub async fn closed_loop<F, Fut>(
    total: usize,
    concurrency: usize,
    limit: Duration,
    op: F,
) -> Throughput
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let completed = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (op, next, completed) = (op.clone(), next.clone(), completed.clone());
            tokio::spawn(async move {
                let mut failed = 0;
                let mut first_error = None;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total || started.elapsed() >= limit {
                        return (failed, first_error);
                    }
                    match tokio::time::timeout(REQUEST_TIMEOUT, op(i)).await {
                        Ok(Ok(())) => {
                            completed.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Err(e)) => {
                            failed += 1;
                            first_error.get_or_insert(e);
                        }
                        Err(_) => {
                            failed += 1;
                            first_error.get_or_insert_with(|| "timeout".to_owned());
                        }
                    }
                }
            })
        })
        .collect();
    let mut failed = 0;
    let mut first_error = None;
    for worker in workers {
        if let Ok((f, e)) = worker.await {
            failed += f;
            if first_error.is_none() {
                first_error = e;
            }
        }
    }
    Throughput {
        completed: completed.load(Ordering::Relaxed),
        failed,
        elapsed: started.elapsed(),
        first_error,
    }
}

/// Checks an answer's status, reading the body so the connection can be reused.
pub async fn expect_status(
    response: Result<reqwest::Response, reqwest::Error>,
    ok: &[u16],
) -> Result<(), String> {
    let response = response.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    if ok.contains(&status) {
        Ok(())
    } else {
        Err(format!(
            "answered {status}: {}",
            String::from_utf8_lossy(&body)
                .chars()
                .take(200)
                .collect::<String>()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fixed_rate_run_starts_every_call_and_times_each() {
        let result = fixed_rate(20, 1000.0, Duration::from_secs(5), |i| async move {
            if i == 3 {
                Err("three fails".to_owned())
            } else {
                Ok(())
            }
        })
        .await;
        assert_eq!(result.ok.len(), 19);
        assert_eq!(result.failed, 1);
        assert_eq!(result.first_error.as_deref(), Some("three fails"));
    }

    #[test]
    fn slices_add_up_to_one_pass_whose_first_error_is_the_first_slices() {
        let mut pass = Latencies::default();
        pass.absorb(Latencies {
            ok: vec![Duration::from_millis(1)],
            failed: 0,
            first_error: None,
        });
        pass.absorb(Latencies {
            ok: vec![Duration::from_millis(2), Duration::from_millis(3)],
            failed: 1,
            first_error: Some("second slice".into()),
        });
        pass.absorb(Latencies {
            ok: vec![],
            failed: 2,
            first_error: Some("third slice".into()),
        });
        assert_eq!(pass.ok.len(), 3);
        assert_eq!(pass.failed, 3);
        assert_eq!(pass.first_error.as_deref(), Some("second slice"));
    }

    #[test]
    fn every_path_runs_once_a_round_and_each_goes_first_in_turn() {
        let rounds: Vec<Vec<usize>> = (0..4).map(|r| round_order(r, 4).collect()).collect();
        for order in &rounds {
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(sorted, [0, 1, 2, 3]);
        }
        let firsts: Vec<usize> = rounds.iter().map(|order| order[0]).collect();
        assert_eq!(firsts, [0, 1, 2, 3]);
    }

    #[tokio::test]
    async fn a_closed_loop_run_stops_at_its_count() {
        let result = closed_loop(50, 4, Duration::from_secs(5), |_| async { Ok(()) }).await;
        assert_eq!(result.completed, 50);
        assert_eq!(result.failed, 0);
    }
}
