//! A small Prometheus registry: counters and one histogram, rendered as text at `/metrics`.
//!
//! Label sets are few and fixed (routes are matched patterns, not raw paths), so a mutex-held
//! map per family is plenty and keeps the dependency list short.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the upstream latency buckets, seconds.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    upstream: Mutex<BTreeMap<(String, String), Histogram>>,
    webhooks: Mutex<BTreeMap<String, u64>>,
    refunds: Mutex<BTreeMap<String, u64>>,
    anomalies: Mutex<BTreeMap<String, u64>>,
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K) {
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    *map.entry(key).or_default() += 1;
}

impl Metrics {
    pub fn count_request(&self, route: &str, method: &str, status: u16) {
        bump(
            &self.requests,
            (route.to_owned(), method.to_owned(), status),
        );
    }

    pub fn observe_upstream(&self, call: &str, outcome: &str, elapsed: Duration) {
        let mut map = self.upstream.lock().unwrap_or_else(|p| p.into_inner());
        let histogram = map
            .entry((call.to_owned(), outcome.to_owned()))
            .or_default();
        let seconds = elapsed.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                histogram.counts[i] += 1;
            }
        }
        histogram.count += 1;
        histogram.sum += seconds;
    }

    /// `applied`, `duplicate`, `stale`, `ignored`, `unreadable`, `unrepresentable`,
    /// `signature_invalid`.
    pub fn count_webhook(&self, outcome: &str) {
        bump(&self.webhooks, outcome.to_owned());
    }

    /// Something an operator must look at (`status_unrepresentable`, …): each is also logged
    /// at `error`.
    pub fn count_anomaly(&self, kind: &str) {
        bump(&self.anomalies, kind.to_owned());
    }

    /// A refund entered `state`.
    pub fn count_refund_state(&self, state: &str) {
        bump(&self.refunds, state.to_owned());
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP proxy_http_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE proxy_http_requests_total counter\n");
        for ((route, method, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "proxy_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {n}",
                escape(route),
                escape(method)
            );
        }
        out.push_str("# HELP proxy_upstream_seconds Latency of Smart Glocal calls.\n");
        out.push_str("# TYPE proxy_upstream_seconds histogram\n");
        for ((call, outcome), h) in self
            .upstream
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let labels = format!("call=\"{}\",outcome=\"{}\"", escape(call), escape(outcome));
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "proxy_upstream_seconds_bucket{{{labels},le=\"{bound}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "proxy_upstream_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(out, "proxy_upstream_seconds_sum{{{labels}}} {}", h.sum);
            let _ = writeln!(out, "proxy_upstream_seconds_count{{{labels}}} {}", h.count);
        }
        out.push_str("# HELP proxy_webhooks_total Webhooks received, by outcome.\n");
        out.push_str("# TYPE proxy_webhooks_total counter\n");
        for (outcome, n) in self
            .webhooks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "proxy_webhooks_total{{outcome=\"{}\"}} {n}",
                escape(outcome)
            );
        }
        out.push_str("# HELP proxy_refund_transitions_total Refunds entering each state.\n");
        out.push_str("# TYPE proxy_refund_transitions_total counter\n");
        for (state, n) in self
            .refunds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "proxy_refund_transitions_total{{state=\"{}\"}} {n}",
                escape(state)
            );
        }
        out.push_str(
            "# HELP proxy_anomalies_total Answers that contradict or exceed the ledger, by kind.\n",
        );
        out.push_str("# TYPE proxy_anomalies_total counter\n");
        for (kind, n) in self
            .anomalies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "proxy_anomalies_total{{kind=\"{}\"}} {n}",
                escape(kind)
            );
        }
        out
    }
}

/// The ledger's storage health: whether it can write, faults and recoveries so far.
pub fn render_ledger(out: &mut String, counts: crate::ledger::HealthCounts) {
    let families = [
        (
            "proxy_ledger_writable",
            "gauge",
            "1 while the ledger can write, 0 during a storage fault.",
            u64::from(counts.writable),
        ),
        (
            "proxy_ledger_faults_total",
            "counter",
            "Storage faults: times the ledger went from writable to not.",
            counts.faults,
        ),
        (
            "proxy_ledger_recoveries_total",
            "counter",
            "Recoveries from a storage fault.",
            counts.recoveries,
        ),
        (
            "proxy_ledger_failed_writes_total",
            "counter",
            "Write transactions refused by a storage fault (nothing of them is on disk).",
            counts.failed_writes,
        ),
    ];
    for (name, kind, help, value) in families {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {value}");
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
