//! What `/metrics` reports, through `prometheus-client` (OpenMetrics text):
//!
//! - `proxy_http_requests_total` and `proxy_http_request_duration_seconds`, by matched route
//!   (a pattern, never a raw path), method and status;
//! - `proxy_upstream_seconds`: Smart Glocal calls by call and outcome;
//! - `proxy_webhooks_total` by outcome (`signature_invalid` counts failed verifications);
//! - `proxy_refund_transitions_total`: refunds entering each state, in this process's own
//!   commits (so a sum over replicas counts each once; an event that changed no state, a
//!   flag or a re-bind, is not one);
//! - `proxy_reconciliations_total`: what each look at a payment's truth found;
//! - `proxy_anomalies_total`: answers that contradict or exceed the ledger;
//! - read at scrape time: `proxy_event_streams_open` and the ledger's storage health.
//!
//! [`Metrics`] holds the families the code updates; the registry is assembled per scrape
//! (families are shared handles), with the scrape-time values as a [`Collector`].

use std::fmt;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::ledger::HealthCounts;

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Latency buckets, seconds: from a local call to Smart Glocal's slowest answers.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

fn latency() -> Histogram {
    Histogram::new(BUCKETS)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    call: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

#[derive(Debug)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    request_seconds: Histograms<RequestLabels>,
    upstream_seconds: Histograms<UpstreamLabels>,
    webhooks: Family<OutcomeLabel, Counter>,
    refunds: Family<StateLabel, Counter>,
    reconciliations: Family<ResultLabel, Counter>,
    anomalies: Family<KindLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency),
            upstream_seconds: Family::new_with_constructor(latency),
            webhooks: Family::default(),
            refunds: Family::default(),
            reconciliations: Family::default(),
            anomalies: Family::default(),
        }
    }
}

/// What is read, not counted, at scrape time.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    pub ledger: HealthCounts,
    pub event_streams_open: usize,
}

impl Metrics {
    /// A request answered: `route` is the matched pattern (`unmatched` otherwise).
    ///
    /// Label values are never escaped by the encoder, and need not be: routes are the
    /// router's own patterns, methods one of a fixed few (any other is `other`, so a client
    /// inventing methods cannot grow the series), the rest `&'static str`s of this crate.
    pub fn observe_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
        let labels = RequestLabels {
            route: route.to_owned(),
            method: METHODS
                .into_iter()
                .find(|known| *known == method)
                .unwrap_or("other"),
            status,
        };
        self.request_seconds
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        self.requests.get_or_create(&labels).inc();
    }

    /// A Smart Glocal call finished: `outcome` is `ok`, `rejected`, `timeout` or `error`.
    pub fn observe_upstream(&self, call: &'static str, outcome: &'static str, elapsed: Duration) {
        self.upstream_seconds
            .get_or_create(&UpstreamLabels { call, outcome })
            .observe(elapsed.as_secs_f64());
    }

    /// `applied`, `duplicate`, `stale`, `conflict`, `ignored`, `unreadable`,
    /// `unrepresentable`, `signature_invalid`.
    pub fn count_webhook(&self, outcome: &'static str) {
        self.webhooks.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// A refund entered `state`.
    pub fn count_refund_state(&self, state: &'static str) {
        self.refunds.get_or_create(&StateLabel { state }).inc();
    }

    /// One reconciliation look at a payment: `checked` (Smart Glocal answered and its
    /// refunds were applied), `unreachable`, `unrepresentable`, or `failed_absent` (an attempt
    /// Smart Glocal never showed was closed as failed).
    pub fn count_reconciliation(&self, result: &'static str) {
        self.reconciliations
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// Something an operator must look at (`status_unrepresentable`, `conflict`): each is also
    /// logged at `error`.
    pub fn count_anomaly(&self, kind: &'static str) {
        self.anomalies.get_or_create(&KindLabel { kind }).inc();
    }

    /// The OpenMetrics text of every family, with `now`'s scrape-time values.
    pub fn render(&self, now: Snapshot) -> String {
        let mut registry = Registry::with_prefix("proxy");
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            self.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer a request (to the first byte of an event stream)",
            self.request_seconds.clone(),
        );
        registry.register(
            "upstream_seconds",
            "Latency of Smart Glocal calls by call and outcome",
            self.upstream_seconds.clone(),
        );
        registry.register(
            "webhooks",
            "Webhooks received, by outcome",
            self.webhooks.clone(),
        );
        registry.register(
            "refund_transitions",
            "Refunds entering each state",
            self.refunds.clone(),
        );
        registry.register(
            "reconciliations",
            "Reconciliation looks at a payment, by result",
            self.reconciliations.clone(),
        );
        registry.register(
            "anomalies",
            "Answers that contradict or exceed the ledger, by kind",
            self.anomalies.clone(),
        );
        registry.register_collector(Box::new(now));
        let mut text = String::new();
        // Writing into a String cannot fail; the encoder's own errors are formatting ones.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &registry) {
            tracing::error!(error = %e, "metrics could not be encoded");
        }
        text
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let ledger = self.ledger;
        gauge(
            &mut encoder,
            "event_streams_open",
            "Live event streams open now",
            i64::try_from(self.event_streams_open).unwrap_or(i64::MAX),
        )?;
        gauge(
            &mut encoder,
            "ledger_writable",
            "1 while the ledger can write, 0 during a storage fault or while its writes are stuck",
            i64::from(ledger.writable),
        )?;
        counter(
            &mut encoder,
            "ledger_faults",
            "Storage faults: times the ledger went from writable to not",
            ledger.faults,
        )?;
        counter(
            &mut encoder,
            "ledger_recoveries",
            "Recoveries from a storage fault",
            ledger.recoveries,
        )?;
        counter(
            &mut encoder,
            "ledger_failed_writes",
            "Write transactions refused by a storage fault (nothing of them is on disk)",
            ledger.failed_writes,
        )
    }
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> fmt::Result {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        Snapshot {
            ledger: HealthCounts {
                writable: true,
                faults: 2,
                recoveries: 1,
                failed_writes: 3,
            },
            event_streams_open: 7,
        }
    }

    #[test]
    fn a_request_is_counted_and_timed_under_its_route_pattern() {
        let metrics = Metrics::default();
        let route = "/api/payments/{session_id}/refunds";
        metrics.observe_request(route, "POST", 201, Duration::from_millis(3));
        metrics.observe_request(route, "POST", 201, Duration::from_millis(30));
        let text = metrics.render(snapshot());
        let labels = r#"route="/api/payments/{session_id}/refunds",method="POST",status="201""#;
        assert!(
            text.contains(&format!("proxy_http_requests_total{{{labels}}} 2")),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "proxy_http_request_duration_seconds_count{{{labels}}} 2"
            )),
            "{text}"
        );
        // 3 ms falls in the 5 ms bucket, 30 ms does not.
        assert!(
            text.contains(&format!(
                "proxy_http_request_duration_seconds_bucket{{le=\"0.005\",{labels}}} 1"
            )),
            "{text}"
        );
    }

    #[test]
    fn scrape_time_values_are_read_from_the_snapshot() {
        let text = Metrics::default().render(snapshot());
        for line in [
            "proxy_event_streams_open 7",
            "proxy_ledger_writable 1",
            "proxy_ledger_faults_total 2",
            "proxy_ledger_recoveries_total 1",
            "proxy_ledger_failed_writes_total 3",
            "# TYPE proxy_ledger_faults counter",
            "# TYPE proxy_ledger_writable gauge",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn a_method_nobody_routes_cannot_grow_the_label_set() {
        let metrics = Metrics::default();
        for method in ["BREW", "WHEN", "GET"] {
            metrics.observe_request("unmatched", method, 405, Duration::ZERO);
        }
        let text = metrics.render(snapshot());
        assert!(
            text.contains(
                r#"proxy_http_requests_total{route="unmatched",method="other",status="405"} 2"#
            ),
            "{text}"
        );
        assert!(!text.contains("BREW"), "{text}");
    }
}
