//! Live refund events for the SSE streams: each event is encoded to its `text/event-stream`
//! bytes once, when published, and every stream on the payment writes those same bytes.
//!
//! The broadcast carries an `Arc`, so a subscriber's `recv` copies a pointer, not the event;
//! with a thousand widgets open on one payment, the cost of an event is one encoding and a
//! thousand socket writes.

use std::sync::Arc;

use axum::body::Bytes;
use shared::api::RefundEvent;
use shared::SessionId;
use tokio::sync::broadcast;

use crate::metrics::Metrics;

/// Events kept for streams that fall behind; one that lags further catches up from the
/// ledger (`events` table), so this bounds memory, not correctness.
const CAPACITY: usize = 1024;

/// One event, ready to be written to any stream of its payment.
#[derive(Debug)]
pub struct LiveEvent {
    pub seq: i64,
    pub session_id: SessionId,
    /// `event: refund`, `id: <seq>`, `data: <RefundEvent JSON>`, blank line.
    pub frame: Bytes,
}

impl LiveEvent {
    pub fn new(event: &RefundEvent) -> Self {
        Self {
            seq: event.seq,
            session_id: event.session_id.clone(),
            frame: frame(event),
        }
    }
}

/// The SSE message for `event`. Compact JSON has no line breaks, so one `data:` line.
pub fn frame(event: &RefundEvent) -> Bytes {
    let mut out = format!("event: refund\nid: {}\ndata: ", event.seq).into_bytes();
    match serde_json::to_writer(&mut out, event) {
        Ok(()) => out.extend_from_slice(b"\n\n"),
        Err(_) => return Bytes::from_static(b": unserialisable event\n\n"),
    }
    Bytes::from(out)
}

/// Publishes refund changes to live subscribers; cheap to clone.
#[derive(Clone)]
pub struct Live {
    sender: broadcast::Sender<Arc<LiveEvent>>,
    metrics: Arc<Metrics>,
}

impl Live {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            sender: broadcast::channel(CAPACITY).0,
            metrics,
        }
    }

    /// Announces a refund change (and counts it).
    pub fn publish(&self, event: RefundEvent) {
        self.metrics.count_refund_state(event.refund.state.as_str());
        // No subscriber is fine: the event is in the ledger for `Last-Event-ID` replay.
        if self.sender.receiver_count() > 0 {
            let _ = self.sender.send(Arc::new(LiveEvent::new(&event)));
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.sender.subscribe()
    }

    /// Event streams open now: each holds one subscription while it lives.
    pub fn streams_open(&self) -> usize {
        self.sender.receiver_count()
    }
}
