//! Connection limits of a public endpoint: a client that does not finish sending its request
//! headers in time is disconnected (slowloris), while normal requests and long-lived event
//! streams are not affected.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

const TIMEOUT_MS: u64 = 1000;

/// Reads until the server closes the connection; how long after `since` that was.
async fn closed_after(mut stream: TcpStream, since: Instant, limit: Duration) -> Option<Duration> {
    let started = since;
    let mut buffer = [0u8; 1024];
    loop {
        match tokio::time::timeout_at((started + limit).into(), stream.read(&mut buffer)).await {
            Err(_) => return None, // still open at the limit
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()), // closed (or reset)
            Ok(Ok(_)) => continue, // e.g. a 408 before closing
        }
    }
}

#[tokio::test]
async fn a_client_too_slow_with_its_headers_is_disconnected_and_others_are_served() {
    let mut options = Options::new("http://127.0.0.1:9");
    options.header_read_timeout_ms = TIMEOUT_MS;
    let app = spawn_app_with(options).await;

    // Half a request, then silence (and a drip that never completes the headers).
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: proxy\r\n")
        .await
        .unwrap();
    let mut idle = TcpStream::connect(app.addr).await.unwrap();
    idle.write_all(b"G").await.unwrap();
    let sent = Instant::now();

    // Meanwhile a whole request on another connection is answered at once.
    let started = Instant::now();
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert!(started.elapsed() < Duration::from_millis(TIMEOUT_MS));

    for stream in [slow, idle] {
        let closed = closed_after(stream, sent, Duration::from_secs(5)).await;
        let closed = closed.expect("the slow connection is closed by the proxy");
        assert!(
            closed >= Duration::from_millis(TIMEOUT_MS / 2),
            "not before the timeout: {closed:?}"
        );
    }
}

#[tokio::test]
async fn a_client_too_slow_with_its_body_is_answered_408_and_disconnected() {
    let mut options = Options::new("http://127.0.0.1:9");
    options.header_read_timeout_ms = TIMEOUT_MS;
    let app = spawn_app_with(options).await;
    // Headers announcing a body, then a trickle that never completes it: on the webhook route
    // (no login) and on a refund's.
    let mut trickles = Vec::new();
    for path in [
        "/webhooks/smart-glocal".to_owned(),
        "/api/payments/ps_usd_1001/refunds".to_owned(),
    ] {
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        stream
            .write_all(
                format!(
                    "POST {path} HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\n\
                     Authorization: Bearer {}\r\nContent-Length: 1000\r\n\r\n{{\"a\":",
                    app.token("alice")
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        trickles.push(stream);
    }
    let sent = Instant::now();
    for mut stream in trickles {
        // A byte every 300 ms: each well within the timeout, the whole never.
        let mut answer = Vec::new();
        let mut buffer = [0u8; 1024];
        let closed = loop {
            tokio::select! {
                read = stream.read(&mut buffer) => match read {
                    Ok(0) | Err(_) => break sent.elapsed(),
                    Ok(n) => answer.extend_from_slice(&buffer[..n]),
                },
                () = tokio::time::sleep(Duration::from_millis(300)) => {
                    let _ = stream.write_all(b" ").await;
                }
            }
            assert!(sent.elapsed() < Duration::from_secs(6), "still open");
        };
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("\"request_timeout\""), "{answer}");
        assert!(
            closed >= Duration::from_millis(TIMEOUT_MS / 2),
            "not before the timeout: {closed:?}"
        );
    }
    // A whole body sent at once is served as ever.
    let (status, _) = app
        .refund("ps_usd_1001", &submission(Some(100), "usd", &fresh_key()))
        .await;
    assert_ne!(status, StatusCode::REQUEST_TIMEOUT);
}

#[tokio::test]
async fn an_event_stream_outlives_the_header_timeout() {
    let mut options = Options::new("http://127.0.0.1:9");
    options.header_read_timeout_ms = TIMEOUT_MS;
    let app = spawn_app_with(options).await;
    let mut stream = app.open_events("ps_usd_1001").await;
    // Five header timeouts later, the stream still answers (nothing ended it).
    let open_until = Instant::now() + Duration::from_millis(TIMEOUT_MS * 5);
    while Instant::now() < open_until {
        match tokio::time::timeout_at(open_until.into(), stream.chunk()).await {
            Err(_) => break,
            Ok(chunk) => assert!(chunk.unwrap().is_some(), "the stream was closed"),
        }
    }
    // A keep-alive request on a fresh connection still works too.
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}
