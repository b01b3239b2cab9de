//! Server-Sent Events with tickets, `Last-Event-ID` replay, and the payment's history.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

/// Reads `event: refund` messages until `count` arrived; returns (id, data) pairs.
async fn read_events(mut response: reqwest::Response, count: usize) -> Vec<(i64, Value)> {
    let mut buffer = String::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while events.len() < count {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .expect("events in time")
            .unwrap()
            .unwrap();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let message: String = buffer.drain(..end + 2).collect();
            let id = message
                .lines()
                .find_map(|l| l.strip_prefix("id: "))
                .map(|v| v.parse().unwrap());
            let data = message.lines().find_map(|l| l.strip_prefix("data: "));
            if let (Some(id), Some(data)) = (id, data) {
                assert!(message.contains("event: refund"));
                events.push((id, serde_json::from_str(data).unwrap()));
            }
        }
    }
    events
}

#[tokio::test]
async fn refund_updates_stream_live_and_replay_after_the_last_event_id() {
    let (_sandbox, app) = sandbox_and_app().await;
    let ticket = app.events_ticket("ps_usd_1001").await;
    let url = app.url(&format!("/api/payments/ps_usd_1001/events?ticket={ticket}"));
    let response = app.client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));

    let (status, refund) = app
        .refund("ps_usd_1001", &submission(Some(1000), "usd", &fresh_key()))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // pending, in_progress, accepted (by the sandbox's webhook).
    let events = read_events(response, 3).await;
    let states: Vec<&str> = events
        .iter()
        .map(|(_, e)| e["refund"]["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["pending", "in_progress", "accepted"]);
    assert!(events
        .iter()
        .all(|(id, e)| e["seq"] == *id && e["refund"]["attempt_id"] == refund["attempt_id"]));

    // A ticket opens one stream: the resumed one comes with a fresh ticket.
    let again = app.events_ticket("ps_usd_1001").await;
    let resumed = app
        .client
        .get(app.url(&format!("/api/payments/ps_usd_1001/events?ticket={again}")))
        .header("last-event-id", events[0].0.to_string())
        .send()
        .await
        .unwrap();
    let replayed = read_events(resumed, 2).await;
    assert_eq!(
        replayed.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [events[1].0, events[2].0]
    );
}

/// A payment's event stream with a fresh ticket, opened from `last_event_id` (the query).
async fn stream_from(app: &TestApp, session: &str, last_event_id: &str) -> reqwest::Response {
    let ticket = app.events_ticket(session).await;
    let url =
        format!("/api/payments/{session}/events?ticket={ticket}&last_event_id={last_event_id}");
    app.client.get(app.url(&url)).send().await.unwrap()
}

/// A look-up says which events it already holds; a stream opened from there (a browser's
/// first connection cannot send `Last-Event-ID`, so the query carries it) replays what came
/// between the two, so a refund that settles while the widget starts is not missed.
#[tokio::test]
async fn a_stream_opened_from_a_look_up_replays_what_came_after_it() {
    // The webhook a second after the refund: time for the look-up to see it in progress.
    let (_sandbox, app) = webhooks_after(std::time::Duration::from_secs(1), |o| o).await;
    let session = "ps_usd_1001";
    assert_eq!(
        app.payment(session).await["last_event_id"],
        0,
        "no event yet"
    );
    let (status, refund) = app
        .refund(session, &submission(Some(1000), "usd", &fresh_key()))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // The look-up, while the refund is in progress.
    let seen = app.payment(session).await;
    let from = seen["last_event_id"].as_i64().unwrap();
    assert!(from > 0, "{seen}");
    let attempt = refund["attempt_id"].as_str().unwrap();
    assert_eq!(
        LedgerSql::attempt(&app, attempt).await.0,
        "in_progress",
        "the look-up came before the webhook"
    );
    eventually(10, "the webhook accepts the refund", || async {
        LedgerSql::attempt(&app, attempt).await.0 == "accepted"
    })
    .await;

    // The stream opens only now, from the look-up.
    let response = stream_from(&app, session, &from.to_string()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let replayed = read_events(response, 1).await;
    assert!(replayed[0].0 > from);
    assert_eq!(replayed[0].1["refund"]["attempt_id"], refund["attempt_id"]);
    assert_eq!(replayed[0].1["refund"]["state"], "accepted");

    // Not a number: refused with a stable code.
    let (status, body) = read(stream_from(&app, session, "-3").await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
}

/// The same from a look-up of a payment that had no event yet (`last_event_id` 0): the
/// payment's first events, made before the stream opened, are replayed too.
#[tokio::test]
async fn a_stream_opened_from_a_look_up_without_events_replays_the_first_ones() {
    let (_sandbox, app) = sandbox_and_app().await;
    let session = "ps_usd_1001";
    assert_eq!(app.payment(session).await["last_event_id"], 0);
    let (status, refund) = app
        .refund(session, &submission(Some(1000), "usd", &fresh_key()))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let replayed = read_events(stream_from(&app, session, "0").await, 2).await;
    assert_eq!(replayed[0].1["refund"]["attempt_id"], refund["attempt_id"]);
    assert_eq!(replayed[0].1["refund"]["state"], "pending");
}

#[tokio::test]
async fn the_event_stream_needs_a_ticket_for_that_payment() {
    let app = spawn_app("http://127.0.0.1:9").await;
    let (status, body) = read(
        app.client
            .get(app.url("/api/payments/ps_usd_1001/events"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthenticated"))
    );
    let token = app.token("alice");
    let url = app.url(&format!("/api/payments/ps_usd_1001/events?ticket={token}"));
    let (status, body) = read(app.client.get(url).send().await.unwrap()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("token_invalid"))
    );
    let other = app.events_ticket("ps_eur_1002").await;
    let url = app.url(&format!("/api/payments/ps_usd_1001/events?ticket={other}"));
    let (status, body) = read(app.client.get(url).send().await.unwrap()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
}

#[tokio::test]
async fn the_history_tells_who_asked_for_what_and_what_happened() {
    let (_sandbox, app) = sandbox_and_app().await;
    let body = json!({"amount": {"partial": {"amount": 1200, "currency": "usd"}}, "reason": "other", "note": "gesture", "idempotency_key": fresh_key()});
    let (status, _) = app.refund("ps_usd_1001", &body).await;
    assert_eq!(status, StatusCode::CREATED);
    eventually(10, "the webhook lands in the history", || async {
        let (_, history) = app
            .get("/api/payments/ps_usd_1001/history", &app.token("alice"))
            .await;
        let kinds: Vec<&str> = history
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["kind"].as_str().unwrap())
            .collect();
        kinds == ["requested", "sent", "webhook"]
    })
    .await;
    let (_, history) = app
        .get("/api/payments/ps_usd_1001/history", &app.token("alice"))
        .await;
    assert_eq!(history[0]["agent"], "alice");
    assert_eq!(history[0]["detail"], "gesture");
    assert_eq!(
        history[0]["amount"],
        json!({"amount": 1200, "currency": "usd"})
    );
    assert_eq!(history[2]["state"], "accepted");
}

/// A ticket lives a few minutes; the agent token it was taken with may expire before it is
/// used. Such a ticket opens nothing (the widget renews its token and asks for another), and
/// is not used up by trying.
#[tokio::test]
async fn a_ticket_whose_agent_token_has_expired_opens_no_stream() {
    let app = spawn_app("http://127.0.0.1:9").await;
    let keys = proxy::auth::TokenKeys::new(&signing::Secret::new(TOKEN_SECRET));
    let now = proxy::auth::now_secs();
    let ticket = |until: i64| {
        keys.mint_claims(&proxy::auth::Claims {
            sub: "alice".into(),
            iat: Some(now - 60),
            exp: now + 240,
            jti: Some(format!("ticket-{until}")),
            session_id: Some("ps_usd_1001".into()),
            scope: Some("events".into()),
            until: Some(until),
            ..proxy::auth::Claims::default()
        })
    };
    let url = |ticket: &str| app.url(&format!("/api/payments/ps_usd_1001/events?ticket={ticket}"));
    let expired = ticket(now - 1);
    let (status, body) = read(app.client.get(url(&expired)).send().await.unwrap()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("token_expired"))
    );
    // One whose token is still valid opens.
    let valid = ticket(now + 120);
    let stream = app.client.get(url(&valid)).send().await.unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
}

/// One agent holds at most `max_streams_per_agent` event streams: the next is answered 429
/// (`rate_limited`) until one of theirs closes, and its ticket then opens it; other agents
/// are not counted with them.
#[tokio::test]
async fn an_agent_holds_at_most_max_streams_per_agent_event_streams() {
    let mut options = Options::new("http://127.0.0.1:9");
    options.max_streams_per_agent = 3;
    let app = spawn_app_with(options).await;
    let mut streams = Vec::new();
    for _ in 0..3 {
        streams.push(app.open_events("ps_usd_1001").await);
    }
    let ticket = app.events_ticket("ps_usd_1002").await;
    let refused = app.events_with("ps_usd_1002", &ticket).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("retry-after"));
    let (_, body) = read(refused).await;
    assert_eq!(body["code"], "rate_limited", "{body}");
    // Another agent is not counted with alice.
    let (status, body) = app
        .post(
            "/api/payments/ps_usd_1002/events/ticket",
            &app.token("bob"),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let bobs = app
        .events_with("ps_usd_1002", body["ticket"].as_str().unwrap())
        .await;
    assert_eq!(bobs.status(), StatusCode::OK);
    // One of alice's closes: she may open another (once the proxy has seen it close), with
    // the ticket she was refused, as its `Retry-After` asked: a refusal used none up.
    drop(streams.pop());
    eventually(5, "alice's place is free again", || async {
        app.events_with("ps_usd_1002", &ticket).await.status() == StatusCode::OK
    })
    .await;
}

/// A stop (SIGTERM) does not wait out its drain for event streams, which never end by
/// themselves: they end at once, the widget reconnecting elsewhere, and the proxy is done in
/// moments (a supervisor's grace period, shorter than the drain, would otherwise kill it
/// before its ledger closed).
#[tokio::test]
async fn a_stop_ends_the_event_streams_at_once() {
    let mut app = spawn_app("http://127.0.0.1:9").await;
    let mut streams = Vec::new();
    for _ in 0..3 {
        streams.push(app.open_events("ps_usd_1001").await);
    }
    let started = std::time::Instant::now();
    app.stop().await;
    let took = started.elapsed();
    assert!(
        took < proxy::serve::DRAIN / 2,
        "the stop took {took:?} with streams open"
    );
    for stream in streams {
        // The stream's body ends (the read finishes rather than waiting for ever).
        let read = tokio::time::timeout(std::time::Duration::from_secs(5), stream.bytes()).await;
        assert!(read.is_ok(), "the stream is still open after the stop");
    }
}

/// An event stream's answer carries what a stream needs (its type, `no-store`, `nosniff`, its
/// request id, CORS's allowed origin) and no more than `STREAM_HEADERS_AT_MOST` headers: hyper
/// keeps each connection's header map for its life, and one of more than six holds twice
/// the room, for every open stream. A document's headers (CSP, framing, referrer) stay on
/// every other answer.
#[tokio::test]
async fn an_event_streams_answer_carries_what_it_needs_and_no_more() {
    let app = spawn_app("http://127.0.0.1:9").await;
    let ticket = app.events_ticket("ps_usd_1001").await;
    let stream = app
        .client
        .get(app.url(&format!("/api/payments/ps_usd_1001/events?ticket={ticket}")))
        .header("origin", "http://widget.test")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let headers = stream.headers();
    for (name, value) in [
        ("content-type", "text/event-stream"),
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
        ("access-control-allow-origin", "http://widget.test"),
    ] {
        assert_eq!(headers[name], value, "{name}");
    }
    assert!(headers.contains_key("x-request-id"));
    // hyper writes these two itself, from outside the map.
    let in_the_map = headers
        .keys()
        .filter(|name| !matches!(name.as_str(), "transfer-encoding" | "date"))
        .count();
    assert!(
        in_the_map <= proxy::security::STREAM_HEADERS_AT_MOST,
        "{headers:?}"
    );
    // Any other answer on the same route family keeps a document's headers.
    let history = app
        .client
        .get(app.url("/api/payments/ps_usd_1001/history"))
        .header("origin", "http://widget.test")
        .bearer_auth(app.token("alice"))
        .send()
        .await
        .unwrap();
    for name in [
        "content-security-policy",
        "referrer-policy",
        "x-frame-options",
        "access-control-expose-headers",
    ] {
        assert!(history.headers().contains_key(name), "{name}");
    }
}

/// A stream refused for what its request says besides the ticket (a `Last-Event-ID` that is
/// no event id; a `HEAD`, which reads nothing) leaves the ticket unused: the same ticket then
/// opens the stream, once.
#[tokio::test]
async fn a_stream_refused_for_its_request_leaves_its_ticket_unused() {
    let (_sandbox, app) = sandbox_and_app().await;
    let ticket = app.events_ticket("ps_usd_1001").await;
    let url = app.url(&format!("/api/payments/ps_usd_1001/events?ticket={ticket}"));
    let bad_id = app
        .client
        .get(&url)
        .header("last-event-id", "x")
        .send()
        .await
        .unwrap();
    let (status, body) = read(bad_id).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let head = app.client.head(&url).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::METHOD_NOT_ALLOWED);

    let stream = app.events_with("ps_usd_1001", &ticket).await;
    assert_eq!(
        stream.status(),
        StatusCode::OK,
        "the ticket still opens its stream"
    );
    drop(stream);
    let again = app.events_with("ps_usd_1001", &ticket).await;
    let (status, body) = read(again).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("token_invalid"))
    );
}
