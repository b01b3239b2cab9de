//! Live refund updates: `POST …/events/ticket` (bearer auth) returns a short-lived ticket;
//! `GET …/events?ticket=…` streams `event: refund` messages, `id` = the ledger's `seq`.
//!
//! `EventSource` cannot send headers, hence the ticket; the request log never records query
//! strings, so the ticket stays out of logs too. `Last-Event-ID` replays from the ledger.
//!
//! A stream writes the bytes [`crate::live`] encoded once for all streams, and holds little
//! else: its subscription to its payment's events (which holds the payment's id), the last
//! `seq` it sent and one keep-alive timer.

use std::convert::Infallible;
use std::pin::Pin;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use shared::api::EventsTicket;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Sleep;

use crate::error::ApiError;
use crate::extract::Agent;
use crate::extract::SessionPath;
use crate::ledger::{EventsPage, Ledger};
use crate::live::{frame, Subscription};
use crate::state::AppState;

/// `Retry-After` of a stream refused at `max_streams_per_agent`: the widget retries with its
/// own back-off and re-reads the payment meanwhile.
const STREAMS_RETRY_AFTER_SECS: u64 = 30;

/// Comment lines keep proxies and browsers from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
const KEEP_ALIVE_FRAME: &[u8] = b":\n\n";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/payments/{session_id}/events/ticket", post(ticket))
        .route("/api/payments/{session_id}/events", get(stream))
}

async fn ticket(
    State(state): State<AppState>,
    agent: Agent,
    SessionPath(session): SessionPath,
) -> Result<Json<EventsTicket>, ApiError> {
    agent.authorize(&session)?;
    Ok(Json(state.tokens.mint_ticket(&agent, &session)))
}

#[derive(Deserialize)]
struct StreamQuery {
    ticket: Option<String>,
    /// Where to start, as `Last-Event-ID` says on a reconnect: a browser cannot send that
    /// header on a stream's first connection, and a widget opens its first from the
    /// look-up's `last_event_id`. The header wins when both are there.
    last_event_id: Option<String>,
}

/// Whether `request` opens an event stream (which the request tracing leaves without a span).
pub fn is_stream(request: &axum::extract::Request) -> bool {
    request.method() == axum::http::Method::GET
        && request.uri().path().starts_with("/api/payments/")
        && request.uri().path().ends_with("/events")
}

async fn stream(
    State(state): State<AppState>,
    method: axum::http::Method,
    SessionPath(session): SessionPath,
    query: Result<Query<StreamQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // A stream is only ever read: a `HEAD` (which axum hands to a `GET` route) would use
    // its ticket up for nothing.
    if method == axum::http::Method::HEAD {
        let mut refused = ApiError::MethodNotAllowed.into_response();
        refused
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET"));
        return Ok(refused);
    }
    let request_id = crate::app::request_id(&headers);
    // Our own error body, never the extractor's text (`ticket` given twice, say).
    let Query(query) = query
        .map_err(|_| ApiError::InvalidRequest("the query string must carry one `ticket`".into()))?;
    let ticket = query
        .ticket
        .filter(|t| !t.is_empty())
        .ok_or(ApiError::Unauthenticated)?;
    let ticket = state.tokens.check_ticket(&ticket, &session)?;
    // Read before the ticket is used up: a stream refused for it may be asked again.
    let from = match headers.get("last-event-id") {
        Some(value) => Some(value.to_str().unwrap_or("x")),
        None => query.last_event_id.as_deref(),
    };
    // Given (0 included: a look-up of a payment without events yet), the stream replays
    // every event after it; not given, it starts with what happens next.
    let from: Option<i64> = match from {
        Some(value) => Some(
            value
                .trim()
                .parse()
                .ok()
                .filter(|seq: &i64| *seq >= 0)
                .ok_or_else(|| ApiError::InvalidRequest("Last-Event-ID must be a number".into()))?,
        ),
        None => None,
    };
    // Subscribed before the ticket is used up (a stream over the agent's limit may be asked
    // again with it, and costs no ledger write) and before the backlog is read (nothing
    // published in between is lost).
    let live = state
        .live
        .subscribe_as(
            &session,
            &ticket.agent.name,
            state.config.max_streams_per_agent,
        )
        .map_err(|_| {
            tracing::warn!(agent = %ticket.agent.name, limit = state.config.max_streams_per_agent, "an agent at max_streams_per_agent asked for one more event stream");
            ApiError::RateLimited(STREAMS_RETRY_AFTER_SECS)
        })?;
    // One stream per ticket across every proxy sharing the ledger, not only this one.
    state.tokens.use_ticket(&ticket)?;
    if !state
        .ledger
        .claim_ticket(&ticket.id, ticket.expires_at)
        .await?
    {
        return Err(ApiError::TokenInvalid);
    }
    ticket.agent.check_not_revoked(&state).await?;
    let follow = Follow::start(state.ledger.clone(), live, from, ticket.until)
        .await
        .inspect_err(|e| {
            tracing::error!(error = %e, session_id = %session, %request_id, "event backlog unavailable")
        })?;
    let body = follow.into_stream().map(Ok::<_, Infallible>);
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// One stream's live part: what it needs between two events.
struct Follow {
    live: Subscription,
    /// The newest `seq` sent: the catch-up point if the stream falls behind.
    last: i64,
    /// Every event up to this `seq` was sent from the ledger (replay, catch-up); live copies
    /// of them are skipped. Above it, each live event of the payment is sent once. The
    /// ledger publishes in commit order (while it still holds the writer), so events arrive
    /// in `seq` order; sending rather than dropping one that did not (another engine, a
    /// future writer) keeps a refund change from hiding until the widget reconnects.
    replayed: i64,
    /// The ledger may hold more events after `last` than were read (a full page of the
    /// backlog, or the stream fell behind the broadcast): read them before anything live.
    more: bool,
    ledger: Ledger,
    /// Frames read from the ledger (replay, catch-up) not yet sent; usually empty.
    pending: std::vec::IntoIter<Bytes>,
    /// When the next keep-alive comment is due: every [`KEEP_ALIVE`], events or not (a comment
    /// line every 15 s on a busy stream too, which costs it nothing it would notice). One
    /// timer for the stream's life, reset only when it fires: an event costs no timer work,
    /// which a timeout around each wait did (registered and removed for every stream on
    /// every event).
    keep_alive: Pin<Box<Sleep>>,
    /// When the stream ends (Unix seconds): the agent's token expires then, and the widget
    /// asks for a new ticket with a token still valid. Checked as a keep-alive falls due: an
    /// agent whose token ran out stops hearing within 15 s of it, and one revoked meanwhile
    /// (whose next ticket is refused) when the token would have (`max_token_ttl_secs` at
    /// most), not for as long as the tab stays open.
    until: Option<i64>,
}

/// A stream's keep-alive timer, due one [`KEEP_ALIVE`] from now.
fn keep_alive_timer() -> Pin<Box<Sleep>> {
    Box::pin(tokio::time::sleep(KEEP_ALIVE))
}

impl Follow {
    /// A stream of `live`'s payment from `from` (the events after it replayed first, a page
    /// now and the rest as they are sent), or from now on without one; ending at `until`.
    /// A ledger that cannot be read is an error here, so the route answers 503 and the
    /// widget opens another stream, rather than a 200 that silently starts past the events it
    /// missed.
    async fn start(
        ledger: Ledger,
        live: Subscription,
        from: Option<i64>,
        until: Option<i64>,
    ) -> Result<Self, sqlx::Error> {
        let first = match from {
            Some(seen) => ledger.events_after(live.session(), seen).await?,
            // From now on: the newest event is where a catch-up after falling behind starts,
            // not the payment's first.
            None => EventsPage {
                events: Vec::new(),
                through: ledger.last_event_seq(live.session()).await?,
                more: false,
            },
        };
        Ok(Self {
            last: first.through,
            replayed: first.through,
            more: first.more,
            pending: first
                .events
                .iter()
                .map(frame)
                .collect::<Vec<_>>()
                .into_iter(),
            live,
            ledger,
            keep_alive: keep_alive_timer(),
            until,
        })
    }

    fn into_stream(self) -> impl Stream<Item = Bytes> + Send {
        stream::unfold(self, |mut this| async move {
            let frame = this.next().await?;
            Some((frame, this))
        })
    }

    /// The next frame for this payment (or a keep-alive), `None` once the broadcast closes,
    /// or once the ledger cannot be read for events the stream owes: ended, the stream is
    /// reopened by the widget from the last event it has, which a stream going on past the
    /// missing ones could not tell it.
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(frame) = self.pending.next() {
                return Some(frame);
            }
            if self.more {
                // Boxed, so the query's state is not part of every stream's size.
                let page = Box::pin(self.ledger.events_after(self.live.session(), self.last));
                match page.await {
                    Ok(page) => {
                        self.last = self.last.max(page.through);
                        self.replayed = self.last;
                        self.more = page.more;
                        self.pending = page
                            .events
                            .iter()
                            .map(frame)
                            .collect::<Vec<_>>()
                            .into_iter();
                    }
                    Err(e) => {
                        tracing::error!(error = %e, session_id = %self.live.session(), "event backlog unavailable: the stream ends");
                        return None;
                    }
                }
                continue;
            }
            let received = tokio::select! {
                biased;
                received = self.live.recv() => received,
                () = self.keep_alive.as_mut() => {
                    if self.until.is_some_and(|until| crate::auth::now_secs() >= until) {
                        return None;
                    }
                    let next = tokio::time::Instant::now() + KEEP_ALIVE;
                    self.keep_alive.as_mut().reset(next);
                    return Some(Bytes::from_static(KEEP_ALIVE_FRAME));
                }
            };
            match received {
                Ok(event) if event.seq > self.replayed => {
                    self.last = self.last.max(event.seq);
                    return Some(event.frame.clone());
                }
                Ok(_) => {}
                // Fell behind the broadcast buffer: catch up from the ledger.
                Err(RecvError::Lagged(_)) => self.more = true,
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::{test_event as event, Live};
    use shared::SessionId;

    type Rig = (Follow, Live, SessionId, tempfile::TempDir);

    async fn follow(replayed: i64) -> Rig {
        let (dir, ledger) = crate::ledger::test_rows::temporary_ledger().await;
        let live = Live::new();
        let session = SessionId::parse("ps_order_test").expect("a session id");
        let follow = Follow {
            live: live.subscribe(&session),
            last: replayed,
            replayed,
            more: false,
            ledger,
            pending: Vec::new().into_iter(),
            keep_alive: keep_alive_timer(),
            until: None,
        };
        (follow, live, session, dir)
    }

    #[tokio::test]
    async fn an_idle_stream_gets_a_keep_alive_every_interval_events_or_not() {
        let (mut follow, live, session, _dir) = follow(0).await;
        // The clock stands still from here and jumps to the next timer when all is idle.
        tokio::time::pause();
        follow.keep_alive = keep_alive_timer();
        let start = tokio::time::Instant::now();
        // An event halfway through the interval does not push the keep-alive back: the
        // stream's one timer is not touched by events.
        tokio::time::advance(KEEP_ALIVE / 2).await;
        live.send(event(1, &session));
        assert_eq!(follow.next().await.unwrap(), "id: 1\n\n");
        assert_eq!(follow.next().await.unwrap(), KEEP_ALIVE_FRAME);
        let at = |due: Duration| {
            // Timers have millisecond resolution: a deadline may round up by one.
            let elapsed = start.elapsed();
            assert!(
                elapsed >= due && elapsed <= due + Duration::from_millis(5),
                "at {elapsed:?}, due at {due:?}"
            );
        };
        at(KEEP_ALIVE);
        // Then one a full interval after the last, for as long as nothing else comes.
        assert_eq!(follow.next().await.unwrap(), KEEP_ALIVE_FRAME);
        at(2 * KEEP_ALIVE);
        live.send(event(2, &session));
        assert_eq!(follow.next().await.unwrap(), "id: 2\n\n");
        at(2 * KEEP_ALIVE);
    }

    #[tokio::test]
    async fn a_stream_read_late_gets_one_keep_alive_then_the_next_an_interval_later() {
        let (mut follow, live, session, _dir) = follow(0).await;
        tokio::time::pause();
        follow.keep_alive = keep_alive_timer();
        // Nobody reads the stream for three intervals (a stalled client, a busy runtime).
        tokio::time::advance(3 * KEEP_ALIVE).await;
        // An event and the overdue keep-alive are both ready: the event goes first.
        live.send(event(1, &session));
        assert_eq!(follow.next().await.unwrap(), "id: 1\n\n");
        let late = tokio::time::Instant::now();
        assert_eq!(follow.next().await.unwrap(), KEEP_ALIVE_FRAME);
        assert_eq!(
            late.elapsed(),
            Duration::ZERO,
            "the overdue keep-alive at once"
        );
        // One, not one per missed interval: the next is a full interval from now.
        assert_eq!(follow.next().await.unwrap(), KEEP_ALIVE_FRAME);
        let waited = late.elapsed();
        assert!(
            waited >= KEEP_ALIVE && waited <= KEEP_ALIVE + Duration::from_millis(5),
            "the next after {waited:?}"
        );
    }

    #[tokio::test]
    async fn an_older_event_arriving_after_a_newer_one_is_still_sent() {
        let (mut follow, live, session, _dir) = follow(0).await;
        live.send(event(5, &session));
        live.send(event(4, &session));
        assert_eq!(follow.next().await.unwrap(), "id: 5\n\n");
        assert_eq!(follow.next().await.unwrap(), "id: 4\n\n");
    }

    /// A stream whose agent token has expired ends at its next keep-alive; until then, and
    /// without a deadline, it goes on.
    #[tokio::test]
    async fn a_stream_ends_once_the_agents_token_has_expired() {
        let (mut expired, live, session, _dir) = follow(0).await;
        let (mut later, _live, _session, _later_dir) = follow(0).await;
        tokio::time::pause();
        expired.keep_alive = keep_alive_timer();
        expired.until = Some(crate::auth::now_secs() - 1);
        live.send(event(1, &session));
        assert_eq!(
            expired.next().await.unwrap(),
            "id: 1\n\n",
            "events still go"
        );
        assert!(expired.next().await.is_none(), "ended at the keep-alive");

        later.keep_alive = keep_alive_timer();
        later.until = Some(crate::auth::now_secs() + 3600);
        assert_eq!(later.next().await.unwrap(), KEEP_ALIVE_FRAME);
    }

    /// A backlog longer than one read (three events in unit tests) is sent whole and in
    /// order, page after page, before anything live; a live copy of a paged event is not
    /// sent twice.
    #[tokio::test]
    async fn a_backlog_of_several_pages_is_sent_whole_before_live_events() {
        let (mut follow, live, session, _dir) = follow(0).await;
        for n in 1..=7u64 {
            let refund: shared::smart_glocal::Refund = serde_json::from_value(serde_json::json!({
                "id": format!("rf_page_{n}"), "status": "accepted",
                "amount_details": {"amount": 100 + n, "currency": "usd"},
            }))
            .unwrap();
            follow
                .ledger
                .apply_upstream_refund(&session, &refund, crate::ledger::Source::Webhook)
                .await
                .unwrap();
        }
        follow.more = true;
        live.send(event(7, &session));
        live.send(event(8, &session));
        let mut ids = Vec::new();
        for _ in 0..8 {
            let frame = follow.next().await.unwrap();
            let text = String::from_utf8_lossy(&frame).into_owned();
            let id = text
                .lines()
                .find_map(|l| l.strip_prefix("id: "))
                .unwrap()
                .to_owned();
            ids.push(id);
        }
        assert_eq!(ids, ["1", "2", "3", "4", "5", "6", "7", "8"]);
    }

    /// How a stream starts, as the route starts it: from an event id, the whole backlog after
    /// it, page after page (three events a page in unit tests), then live; without one, from
    /// the newest event on, also after falling behind; a ledger that cannot be read, an error
    /// (the route's 503).
    #[tokio::test]
    async fn a_stream_starts_from_its_event_id_or_from_the_newest_event() {
        let (rig, live, session, dir) = follow(0).await;
        for n in 1..=7u64 {
            let refund: shared::smart_glocal::Refund = serde_json::from_value(serde_json::json!({
                "id": format!("rf_start_{n}"), "status": "accepted",
                "amount_details": {"amount": 100 + n, "currency": "usd"},
            }))
            .unwrap();
            rig.ledger
                .apply_upstream_refund(&session, &refund, crate::ledger::Source::Webhook)
                .await
                .unwrap();
        }
        let ids = |frames: Vec<Bytes>| -> Vec<String> {
            frames
                .iter()
                .map(|f| {
                    let text = String::from_utf8_lossy(f).into_owned();
                    text.lines()
                        .find_map(|l| l.strip_prefix("id: "))
                        .unwrap()
                        .to_owned()
                })
                .collect()
        };
        let mut from_two =
            Follow::start(rig.ledger.clone(), live.subscribe(&session), Some(2), None)
                .await
                .unwrap();
        let mut frames = Vec::new();
        for _ in 0..5 {
            frames.push(from_two.next().await.unwrap());
        }
        assert_eq!(ids(frames), ["3", "4", "5", "6", "7"]);

        let mut from_now = Follow::start(rig.ledger.clone(), live.subscribe(&session), None, None)
            .await
            .unwrap();
        assert_eq!(from_now.last, 7, "a catch-up would start after the newest");
        from_now.more = true; // as after falling behind
        live.send(event(8, &session));
        assert_eq!(
            from_now.next().await.unwrap(),
            "id: 8\n\n",
            "nothing replayed"
        );

        rusqlite::Connection::open(dir.path().join("ledger.sqlite"))
            .unwrap()
            .execute_batch("ALTER TABLE events RENAME TO events_gone")
            .unwrap();
        let broken = Follow::start(rig.ledger.clone(), live.subscribe(&session), Some(0), None);
        assert!(broken.await.is_err());
    }

    /// A ledger that cannot be read for events the stream owes ends the stream (the widget
    /// reopens one from its last event), rather than go on past the events it missed.
    #[tokio::test]
    async fn a_backlog_that_cannot_be_read_ends_the_stream() {
        let (mut follow, live, session, dir) = follow(0).await;
        // The events table gone from under the ledger: every read of it fails.
        rusqlite::Connection::open(dir.path().join("ledger.sqlite"))
            .unwrap()
            .execute_batch("ALTER TABLE events RENAME TO events_gone")
            .unwrap();
        follow.more = true;
        live.send(event(1, &session));
        assert!(follow.next().await.is_none());
    }

    #[tokio::test]
    async fn live_copies_of_replayed_events_and_other_payments_are_skipped() {
        let (mut follow, live, session, _dir) = follow(3).await;
        let other = SessionId::parse("ps_other").unwrap();
        // Another payment's stream is open too, so its event has somewhere to go.
        let _watching_other = live.subscribe(&other);
        live.send(event(2, &session));
        live.send(event(3, &session));
        live.send(event(6, &other));
        live.send(event(7, &session));
        assert_eq!(follow.next().await.unwrap(), "id: 7\n\n");
    }
}
