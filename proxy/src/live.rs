//! Live refund events for the SSE streams: each event is encoded to its `text/event-stream`
//! bytes once, when published, and every stream on the payment writes those same bytes.
//!
//! Each payment with a stream open has a broadcast channel of its own, so an event wakes the
//! streams of its payment and no others: with thousands of widgets open on many payments, a
//! webhook costs one encoding and a socket write per stream of that payment. The channel
//! carries an `Arc`, so a subscriber's `recv` copies a pointer, not the event; it goes away
//! with the payment's last stream.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Bytes;
use shared::api::RefundEvent;
use shared::SessionId;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

/// Events kept per payment for streams that fall behind; one that lags further catches up
/// from the ledger (`events` table), so this bounds memory, not correctness. The slots are
/// allocated with the channel (about 40 bytes each, 2.5 KB), once per payment being watched;
/// more than this many changes of one payment between two polls of a stream is rare (a
/// PostgreSQL replica's listener catching up after an outage can publish that many).
const CAPACITY: usize = 64;

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
pub struct Live(Arc<Inner>);

struct Inner {
    /// One channel per payment that has a stream open.
    channels: Mutex<HashMap<SessionId, broadcast::Sender<Arc<LiveEvent>>>>,
    /// The proxy is stopping: every stream has ended, and a new one ends at once.
    closed: std::sync::atomic::AtomicBool,
    streams: AtomicUsize,
    /// Streams open per agent, for `max_streams_per_agent`; an agent leaves with their last.
    per_agent: Mutex<HashMap<String, u32>>,
}

/// An agent already holds `max_streams_per_agent` event streams.
#[derive(Debug)]
pub struct TooManyStreams;

impl Default for Live {
    fn default() -> Self {
        Self::new()
    }
}

impl Live {
    pub fn new() -> Self {
        Self(Arc::new(Inner {
            channels: Mutex::new(HashMap::new()),
            closed: std::sync::atomic::AtomicBool::new(false),
            streams: AtomicUsize::new(0),
            per_agent: Mutex::new(HashMap::new()),
        }))
    }

    /// Announces a refund change.
    pub fn publish(&self, event: RefundEvent) {
        // No subscriber is fine: the event is in the ledger for `Last-Event-ID` replay.
        if let Some(sender) = self.sender(&event.session_id) {
            self.send_on(sender, Arc::new(LiveEvent::new(&event)));
        }
    }

    /// Hands `event` to the streams of its payment, if any.
    #[cfg(test)]
    pub(crate) fn send(&self, event: Arc<LiveEvent>) {
        if let Some(sender) = self.sender(&event.session_id) {
            self.send_on(sender, event);
        }
    }

    /// Sends outside the map's lock: waking a payment's streams takes a while with thousands
    /// open, and opening or closing another stream must not wait for it. Between the look-up
    /// and the send, the payment's last stream may close and a new one open a fresh channel:
    /// then the event goes to the fresh one.
    fn send_on(&self, mut sender: broadcast::Sender<Arc<LiveEvent>>, event: Arc<LiveEvent>) {
        for _ in 0..3 {
            if sender.send(event.clone()).is_ok() {
                return;
            }
            match self.sender(&event.session_id) {
                Some(current) if !current.same_channel(&sender) => sender = current,
                _ => return,
            }
        }
    }

    fn sender(&self, session: &SessionId) -> Option<broadcast::Sender<Arc<LiveEvent>>> {
        self.channels().get(session).cloned()
    }

    /// Ends every event stream, and any opened from now on, at once: for a stop. Streams never
    /// end by themselves, so a stop would otherwise wait out its whole drain for them (and a
    /// supervisor's grace period, shorter, would kill the proxy before its ledger closed).
    /// The widget reconnects to another proxy, or to this one restarted, and replays from its
    /// `Last-Event-ID`.
    pub fn close_all(&self) {
        let mut channels = self.channels();
        self.0.closed.store(true, Ordering::SeqCst);
        // Every sender gone: each receiver hears `Closed` once it has read what was sent.
        channels.clear();
    }

    /// Whether [`Live::close_all`] ran: the proxy is stopping.
    pub fn is_closed(&self) -> bool {
        self.0.closed.load(Ordering::SeqCst)
    }

    /// The events of `session` from now on, for as long as the subscription lives, counted
    /// as one of `agent`'s streams; refused if `agent` already holds `max_per_agent` (0: no
    /// limit). Each stream is a connection and a descriptor: one agent's token, looping
    /// ticket and stream, would otherwise hold thousands until it expired.
    pub fn subscribe_as(
        &self,
        session: &SessionId,
        agent: &str,
        max_per_agent: u32,
    ) -> Result<Subscription, TooManyStreams> {
        {
            let mut per_agent = self.per_agent();
            let open = per_agent.entry(agent.to_owned()).or_insert(0);
            if max_per_agent > 0 && *open >= max_per_agent {
                return Err(TooManyStreams);
            }
            *open += 1;
        }
        let mut channels = self.channels();
        let receiver = (!self.0.closed.load(Ordering::SeqCst)).then(|| {
            channels
                .entry(session.clone())
                .or_insert_with(|| broadcast::channel(CAPACITY).0)
                .subscribe()
        });
        drop(channels);
        self.0.streams.fetch_add(1, Ordering::Relaxed);
        Ok(Subscription {
            receiver,
            session: session.clone(),
            agent: agent.into(),
            live: self.clone(),
        })
    }

    /// [`Live::subscribe_as`] one agent with no limit.
    #[cfg(test)]
    pub(crate) fn subscribe(&self, session: &SessionId) -> Subscription {
        self.subscribe_as(session, "tester", 0)
            .expect("no limit to reach")
    }

    fn per_agent(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        // One count changed at a time: consistent whatever panicked holding it.
        self.0
            .per_agent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Event streams open now: each holds one subscription while it lives.
    pub fn streams_open(&self) -> usize {
        self.0.streams.load(Ordering::Relaxed)
    }

    /// Payments with a stream open now.
    #[cfg(test)]
    fn payments_watched(&self) -> usize {
        self.channels().len()
    }

    fn channels(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<SessionId, broadcast::Sender<Arc<LiveEvent>>>> {
        // The map stays consistent whatever panicked while holding it: every change is one
        // insert or one remove.
        self.0
            .channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// One stream's hold on its payment's events; the payment's channel goes with the last one.
pub struct Subscription {
    /// `None` only while dropping: it must go under the map's lock (see `drop`).
    receiver: Option<broadcast::Receiver<Arc<LiveEvent>>>,
    session: SessionId,
    agent: Box<str>,
    live: Live,
}

impl Subscription {
    /// The payment whose events these are.
    pub fn session(&self) -> &SessionId {
        &self.session
    }

    /// The payment's next event; `Lagged` once more than [`CAPACITY`] went by unread.
    pub async fn recv(&mut self) -> Result<Arc<LiveEvent>, RecvError> {
        match self.receiver.as_mut() {
            Some(receiver) => receiver.recv().await,
            None => Err(RecvError::Closed),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.live.0.streams.fetch_sub(1, Ordering::Relaxed);
        {
            let mut per_agent = self.live.per_agent();
            if let Some(open) = per_agent.get_mut(&*self.agent) {
                *open = open.saturating_sub(1);
                if *open == 0 {
                    per_agent.remove(&*self.agent);
                }
            }
        }
        let mut channels = self.live.channels();
        // Under the map's lock, as `subscribe` adds to it: a stream opening on this payment
        // now either finds the channel still there or makes a new one. The receiver goes
        // first, under the lock too: two last streams closing at once must not each see the
        // other still counted and leave an empty channel behind.
        drop(self.receiver.take());
        if channels
            .get(&self.session)
            .is_some_and(|sender| sender.receiver_count() == 0)
        {
            channels.remove(&self.session);
        }
    }
}

/// An event of `session` whose frame is just `id: <seq>`, for tests.
#[cfg(test)]
pub(crate) fn test_event(seq: i64, session: &SessionId) -> Arc<LiveEvent> {
    Arc::new(LiveEvent {
        seq,
        session_id: session.clone(),
        frame: Bytes::from(format!("id: {seq}\n\n")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_event as event;

    fn watching(session: &str) -> (Live, SessionId) {
        (Live::new(), SessionId::parse(session).unwrap())
    }

    #[tokio::test]
    async fn an_event_reaches_the_streams_of_its_payment_only() {
        let live = Live::new();
        let (a, b) = (
            SessionId::parse("ps_a").unwrap(),
            SessionId::parse("ps_b").unwrap(),
        );
        let (mut a1, mut a2, mut b1) = (live.subscribe(&a), live.subscribe(&a), live.subscribe(&b));
        assert_eq!((live.streams_open(), live.payments_watched()), (3, 2));
        live.send(event(1, &a));
        live.send(event(2, &b));
        assert_eq!(a1.recv().await.unwrap().seq, 1);
        assert_eq!(a2.recv().await.unwrap().seq, 1);
        assert_eq!(b1.recv().await.unwrap().seq, 2);
        // Nothing else was queued for either payment's streams.
        live.send(event(3, &a));
        assert_eq!(a1.recv().await.unwrap().seq, 3);
        live.send(event(4, &b));
        assert_eq!(b1.recv().await.unwrap().seq, 4);
    }

    #[tokio::test]
    async fn a_payments_channel_goes_with_its_last_stream_and_comes_back_with_a_new_one() {
        let (live, a) = watching("ps_a");
        let (first, second) = (live.subscribe(&a), live.subscribe(&a));
        drop(first);
        assert_eq!((live.streams_open(), live.payments_watched()), (1, 1));
        drop(second);
        assert_eq!((live.streams_open(), live.payments_watched()), (0, 0));
        // Published with nobody watching: kept nowhere (the ledger has it for replay).
        live.send(event(1, &a));
        let mut again = live.subscribe(&a);
        live.send(event(2, &a));
        assert_eq!(again.recv().await.unwrap().seq, 2);
    }

    #[tokio::test]
    async fn an_event_looked_up_before_its_channel_was_replaced_reaches_the_new_one() {
        let (live, a) = watching("ps_a");
        let closing = live.subscribe(&a);
        // The sender as a publish finds it, just before the payment's last stream closes
        // and a new one opens: the event must not be lost in the old channel.
        let stale = live.sender(&a).unwrap();
        drop(closing);
        let mut opened = live.subscribe(&a);
        assert!(!stale.same_channel(&live.sender(&a).unwrap()));
        live.send_on(stale, event(1, &a));
        let got = tokio::time::timeout(std::time::Duration::from_secs(1), opened.recv()).await;
        assert_eq!(got.expect("the event, at once").unwrap().seq, 1);
    }

    #[tokio::test]
    async fn a_stream_that_falls_behind_is_told_so() {
        let (live, a) = watching("ps_a");
        let mut slow = live.subscribe(&a);
        for seq in 1..=i64::try_from(CAPACITY + 1).unwrap() {
            live.send(event(seq, &a));
        }
        assert!(matches!(slow.recv().await, Err(RecvError::Lagged(1))));
    }
}
